/**
 * Server-sent events, the reading side (the HTML standard's event stream interpretation): lines
 * end in CRLF, LF or CR; `data` lines join with LF; a blank line dispatches; comments and
 * unknown fields are ignored. Works on any byte stream, so it runs where `EventSource` does not
 * (Deno, Node) and with request headers `EventSource` cannot send.
 *
 * @module
 */

/** One dispatched event. */
export interface SseMessage {
  /** The `event` field, "message" when absent. */
  readonly event: string;
  /** The `data` lines, joined with "\n". */
  readonly data: string;
  /** The `id` field of this event, when it had one. */
  readonly id?: string;
}

/** The events of an event-stream body, as they arrive. */
export async function* readSseStream(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      while (true) {
        const m = /\r\n|\r|\n/.exec(buffer);
        // A lone CR at the end may be the first half of CRLF: wait for more.
        if (!m || (m[0] === "\r" && m.index === buffer.length - 1)) break;
        const line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line === "") {
          if (data.length > 0) {
            yield {
              event: event || "message",
              data: data.join("\n"),
              ...(id !== undefined && { id }),
            };
          }
          event = "";
          data = [];
          id = undefined;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") event = v;
        else if (field === "data") data.push(v);
        else if (field === "id" && !v.includes("\0")) id = v;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
