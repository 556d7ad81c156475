/**
 * A local etcd cluster for side-by-side benchmarks: `size` members on loopback, each in its own
 * process with its own data directory (WAL fsync on, etcd's default), found on PATH as `etcd`.
 * Clients use the v3 HTTP/JSON gateway on each member's client port.
 *
 * @module
 */
import { freePorts } from "../src/testing/free_port.ts";
import { SpawnedProcess } from "../src/testing/spawned_process.ts";

/** One member. */
export interface EtcdMember {
  /** Its name (e1, e2, ...). */
  readonly name: string;
  /** Client port (HTTP gateway). */
  readonly clientPort: number;
  /** Its process. */
  readonly process: SpawnedProcess;
}

/** Whether an `etcd` binary is on PATH; its version line if so. */
export async function etcdVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("etcd", { args: ["--version"], stdout: "piped" }).output();
    if (!out.success) return undefined;
    return new TextDecoder().decode(out.stdout).split("\n")[0].trim();
  } catch {
    return undefined;
  }
}

/** A running etcd cluster. */
export class EtcdCluster {
  /** The members. */
  readonly members: readonly EtcdMember[];
  readonly #dir: string;

  private constructor(members: EtcdMember[], dir: string) {
    this.members = members;
    this.#dir = dir;
  }

  /** Start `size` members under a new temp directory inside `parentDir` and wait until healthy. */
  static async start(size: number, parentDir?: string): Promise<EtcdCluster> {
    const dir = await Deno.makeTempDir({ dir: parentDir, prefix: "floe-bench-etcd-" });
    const ports = freePorts(size * 2);
    const names = Array.from({ length: size }, (_, i) => `e${i + 1}`);
    const peerUrl = (i: number) => `http://127.0.0.1:${ports[size + i]}`;
    const initial = names.map((n, i) => `${n}=${peerUrl(i)}`).join(",");
    const members: EtcdMember[] = names.map((name, i) => {
      const client = `http://127.0.0.1:${ports[i]}`;
      return {
        name,
        clientPort: ports[i],
        process: SpawnedProcess.spawn({
          name: `etcd ${name}`,
          command: "etcd",
          args: [
            `--name=${name}`,
            `--data-dir=${dir}/${name}`,
            `--listen-client-urls=${client}`,
            `--advertise-client-urls=${client}`,
            `--listen-peer-urls=${peerUrl(i)}`,
            `--initial-advertise-peer-urls=${peerUrl(i)}`,
            `--initial-cluster=${initial}`,
            "--initial-cluster-state=new",
            "--initial-cluster-token=floe-bench",
            "--log-level=error",
          ],
        }),
      };
    });
    const cluster = new EtcdCluster(members, dir);
    try {
      await cluster.#waitHealthy(60_000);
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  /** The client port of the current leader. */
  async leaderPort(): Promise<number> {
    for (const m of this.members) {
      const status = await this.#post(m.clientPort, "/v3/maintenance/status", {});
      const s = status as { header?: { member_id?: string }; leader?: string } | undefined;
      if (s?.leader !== undefined && s.header?.member_id === s.leader) return m.clientPort;
    }
    throw new Error("etcd: no member reports itself leader");
  }

  /** Stop every member (SIGTERM, then SIGKILL) and remove the data. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.process.stop(5000)));
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  async #waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const dead = this.members.find((m) => m.process.exited);
      if (dead) throw new Error(`etcd ${dead.name} exited:\n${dead.process.output()}`);
      const healthy = await Promise.all(this.members.map(async (m) => {
        try {
          const res = await fetch(`http://127.0.0.1:${m.clientPort}/health`);
          const body = await res.json() as { health?: string };
          return body.health === "true";
        } catch {
          return false;
        }
      }));
      if (healthy.every(Boolean)) return;
      if (performance.now() > deadline) {
        throw new Error(
          `etcd not healthy within ${timeoutMs} ms:\n${this.members[0].process.output()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async #post(port: number, path: string, body: unknown): Promise<unknown> {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, {
        method: "POST",
        body: JSON.stringify(body),
      });
      return await res.json();
    } catch {
      return undefined;
    }
  }
}
