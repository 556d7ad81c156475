/**
 * Server-sent events (the `text/event-stream` format of the HTML standard), the writing side:
 * one event is `id:`, `event:` and `data:` lines and a blank line; a line starting with `:` is a
 * comment (floe's keep-alive).
 *
 * @module
 */

/** One event to send. */
export interface SseEvent {
  /** The event's id (what `Last-Event-ID` carries back on a reconnect). */
  readonly id?: string;
  /** The event's type. */
  readonly event?: string;
  /** The payload; newlines split it over several `data:` lines. */
  readonly data: string;
}

/** `event` in the wire format, ending with its blank line. */
export function formatSseEvent(event: SseEvent): string {
  let out = "";
  if (event.id !== undefined) out += `id: ${singleLine(event.id)}\n`;
  if (event.event !== undefined) out += `event: ${singleLine(event.event)}\n`;
  for (const line of event.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + "\n";
}

/** A comment line (ignored by readers; keeps proxies from timing the stream out). */
export function formatSseComment(text: string): string {
  return `: ${singleLine(text)}\n\n`;
}

function singleLine(text: string): string {
  return text.replace(/[\r\n]/g, " ");
}
