/**
 * The processes of one Chromium profile, found through /proc (Linux): a browser started with
 * `--user-data-dir=DIR` carries DIR on its command line, and its helpers share its process group.
 * Used to kill a browser on purpose (the SIGKILL case) and to clean up after a driver that died.
 *
 * @module
 */

/** A live process, as /proc shows it. */
export interface ProcessInfo {
  /** Process id. */
  readonly pid: number;
  /** Process group id. */
  readonly pgid: number;
  /** Its command line, arguments separated by NUL. */
  readonly cmdline: string;
}

/** Every live (not zombie) process. */
export async function processes(): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // After "pid (comm) ": state, ppid, pgrp. A zombie (Z) has exited already.
      const [state, , pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state !== "Z") found.push({ pid: Number(entry.name), pgid: Number(pgid), cmdline });
    } catch {
      // The process exited while we looked.
    }
  }
  return found;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * SIGKILL every process of the browser using `profile`, all at once, and wait (up to 10 s) until
 * they are gone. With `requireBrowser`, throws when no browser process is found.
 */
export async function killProfileProcesses(
  profile: string,
  requireBrowser = false,
): Promise<number> {
  // Only Chromium's own processes name the profile this way (a driver passing the path on its
  // own command line does not match), and never this process.
  const flag = `--user-data-dir=${profile}`;
  const all = (await processes()).filter((p) => p.pid !== Deno.pid);
  const main = all.find((p) => p.cmdline.includes(flag) && !p.cmdline.includes("--type="));
  if (main === undefined && requireBrowser) {
    throw new Error(`found no Chromium browser process for profile ${profile}`);
  }
  // Playwright starts Chromium in a process group of its own, with the storage service, the
  // renderers and the GPU process inside (not all of which name the profile); kill the group.
  const ownGroup = main !== undefined && main.pgid === main.pid;
  const targets = all.filter((p) => p.cmdline.includes(flag) || (ownGroup && p.pgid === main.pgid));
  for (const { pid } of targets) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  const pids = new Set(targets.map((p) => p.pid));
  const deadline = Date.now() + 10_000;
  while ((await processes()).some((p) => pids.has(p.pid))) {
    if (Date.now() > deadline) throw new Error("Chromium processes still alive 10 s after SIGKILL");
    await sleep(50);
  }
  return targets.length;
}
