/**
 * One HTTP/1.1 request over a plain TCP connection, target sent exactly as given (fetch would
 * resolve "." and ".." segments first).
 *
 * @module
 */

/** The response's status and body text. */
export async function rawRequest(
  url: string,
  method: string,
  target: string,
  body = "",
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head = `${method} ${target} HTTP/1.1\r\nHost: ${hostname}\r\n` +
      `Content-Length: ${new TextEncoder().encode(body).length}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head + body));
    let text = "";
    const buf = new Uint8Array(64 * 1024);
    const dec = new TextDecoder();
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}
