/**
 * One HTTP/1.1 keep-alive connection over `Deno.connect`, one request at a time: the load
 * generator's client. `fetch` measured 12–26% fewer requests/s than this on the same server, which
 * would make the generator, not the server, the bottleneck.
 *
 * It understands what servers send back: `Content-Length` bodies, chunked bodies, and
 * `Connection: close`. Responses without a length (read-until-close) are not supported.
 *
 * @module
 */

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const CRLFCRLF = [13, 10, 13, 10];

/** A response, fully read. */
export interface Http1Response {
  /** The status code. */
  readonly status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  readonly headers: ReadonlyMap<string, string>;
  /** The body. */
  readonly body: Uint8Array;
}

/** The connection broke or the server sent something this client does not read. */
export class Http1Error extends Error {
  override name = "Http1Error";
}

/** A keep-alive connection to one server. */
export class Http1Connection {
  readonly #conn: Deno.TcpConn;
  readonly #host: string;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #busy = false;
  #closed = false;

  private constructor(conn: Deno.TcpConn, host: string) {
    this.#conn = conn;
    this.#host = host;
  }

  /** Connect to `hostname:port` with Nagle's algorithm off. */
  static async open(hostname: string, port: number): Promise<Http1Connection> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return new Http1Connection(conn, `${hostname}:${port}`);
  }

  /** Whether the connection was closed (by `close`, an error, or the server). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Send one request and read its response. `headers` must not include Host or Content-Length.
   * Throws `Http1Error` when the connection breaks; the connection is then closed.
   */
  async request(
    method: string,
    path: string,
    headers: Readonly<Record<string, string>> = {},
    body?: Uint8Array,
  ): Promise<Http1Response> {
    if (this.#closed) throw new Http1Error("connection closed");
    if (this.#busy) throw new Http1Error("one request at a time");
    this.#busy = true;
    try {
      let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.#host}\r\n`;
      for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
      if (body !== undefined || method === "PUT" || method === "POST") {
        head += `content-length: ${body?.length ?? 0}\r\n`;
      }
      head += "\r\n";
      const headBytes = encoder.encode(head);
      let out = headBytes;
      if (body !== undefined && body.length > 0) {
        out = new Uint8Array(headBytes.length + body.length);
        out.set(headBytes);
        out.set(body, headBytes.length);
      }
      await this.#write(out);
      return await this.#readResponse(method === "HEAD");
    } catch (e) {
      this.close();
      throw e instanceof Http1Error ? e : new Http1Error(String(e));
    } finally {
      this.#busy = false;
    }
  }

  /** Close the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async #write(bytes: Uint8Array): Promise<void> {
    for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Read more bytes into the buffer; throws at end of stream. */
  async #fill(): Promise<void> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) throw new Http1Error("connection closed by the server");
    this.#end += n;
  }

  /** Index just past the next CRLFCRLF (or CRLF when `single`) from `start`, or -1. */
  #find(single: boolean): number {
    const b = this.#buf;
    const pattern = single ? CRLFCRLF.slice(2) : CRLFCRLF;
    outer: for (let i = this.#start; i + pattern.length <= this.#end; i++) {
      for (let j = 0; j < pattern.length; j++) if (b[i + j] !== pattern[j]) continue outer;
      return i + pattern.length;
    }
    return -1;
  }

  async #line(single: boolean): Promise<string> {
    let at: number;
    while ((at = this.#find(single)) < 0) await this.#fill();
    const text = latin1.decode(this.#buf.subarray(this.#start, at - (single ? 2 : 4)));
    this.#start = at;
    return text;
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) await this.#fill();
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  async #readResponse(head: boolean): Promise<Http1Response> {
    const text = await this.#line(false);
    const lines = text.split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1]);
    if (!Number.isInteger(status)) throw new Http1Error(`bad status line: ${lines[0]}`);
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon > 0) {
        headers.set(
          lines[i].slice(0, colon).trim().toLowerCase(),
          lines[i].slice(colon + 1).trim(),
        );
      }
    }
    let body: Uint8Array;
    const length = headers.get("content-length");
    if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = new Uint8Array();
    } else if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
      const chunks: Uint8Array[] = [];
      for (;;) {
        const size = parseInt(await this.#line(true), 16);
        if (!Number.isFinite(size)) throw new Http1Error("bad chunk size");
        if (size === 0) {
          while ((await this.#line(true)) !== ""); // trailers
          break;
        }
        chunks.push(await this.#take(size));
        await this.#take(2);
      }
      body = concat(chunks);
    } else if (length !== undefined) {
      body = await this.#take(Number(length));
    } else {
      throw new Http1Error(`response ${status} has no length`);
    }
    if (headers.get("connection")?.toLowerCase() === "close") this.close();
    return { status, headers, body };
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
