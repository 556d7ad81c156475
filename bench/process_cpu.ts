/**
 * CPU time used by a set of processes (Linux /proc), so a benchmark can report CPU per
 * operation: on a shared machine that figure drifts far less than throughput does.
 *
 * @module
 */

let ticksPerSecond: number | undefined;

/** The kernel's clock ticks per second (`getconf CLK_TCK`; 100 if that cannot be run). */
export async function clockTicks(): Promise<number> {
  if (ticksPerSecond !== undefined) return ticksPerSecond;
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    ticksPerSecond = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  } catch {
    ticksPerSecond = 100;
  }
  return ticksPerSecond;
}

/**
 * User plus system CPU seconds used so far by `pids` (processes that exited count 0), given
 * `ticks` per second from `clockTicks`.
 */
export function cpuSeconds(pids: readonly number[], ticks: number): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      // Fields after "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // Gone.
    }
  }
  return total;
}
