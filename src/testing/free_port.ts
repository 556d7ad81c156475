/**
 * Free TCP ports on loopback for tests and benchmarks that start servers in other processes and
 * must tell each one its peers' addresses before any of them listens. Deno only.
 *
 * @module
 */

/**
 * `count` distinct ports that were free a moment ago on `hostname` (default 127.0.0.1). All are
 * held open together while they are picked, so they differ; each is released before returning,
 * so another process could take one in between (rare with the kernel's ephemeral allocator).
 */
export function freePorts(count: number, hostname = "127.0.0.1"): number[] {
  const listeners: Deno.TcpListener[] = [];
  try {
    for (let i = 0; i < count; i++) listeners.push(Deno.listen({ hostname, port: 0 }));
    return listeners.map((l) => l.addr.port);
  } finally {
    for (const l of listeners) l.close();
  }
}
