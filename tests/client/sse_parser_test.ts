/**
 * The event-stream reader: line endings, multi-line data, comments, and events split across
 * chunks at every byte.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readSseStream, type SseMessage } from "../../src/client/sse_parser.ts";
import { formatSseComment, formatSseEvent } from "../../src/http/sse.ts";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      c.close();
    },
  });
}

async function read(chunks: Uint8Array[]): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for await (const m of readSseStream(streamOf(chunks))) out.push(m);
  return out;
}

const TEXT = ": hello\n\n" +
  'id: 1\nevent: put\ndata: {"a":1}\n\n' +
  "data: line one\r\ndata:line two\r\n\r\n" +
  "event: x\rdata: cr only\r\r" +
  "id: 7\nevent: ignored-without-data\n\n" +
  "retry: 10\nunknown: field\ndata\n\n" +
  "data: é\n\n";

const EXPECTED: SseMessage[] = [
  { event: "put", data: '{"a":1}', id: "1" },
  { event: "message", data: "line one\nline two" },
  { event: "x", data: "cr only" },
  { event: "message", data: "" },
  { event: "message", data: "é" },
];

Deno.test("sse parser: fields, line endings and comments as the standard says", async () => {
  assert.deepEqual(await read([new TextEncoder().encode(TEXT)]), EXPECTED);
});

Deno.test("sse parser: the same events however the bytes are split", async () => {
  const bytes = new TextEncoder().encode(TEXT);
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(
      await read([bytes.subarray(0, cut), bytes.subarray(cut)]),
      EXPECTED,
      `cut ${cut}`,
    );
  }
  assert.deepEqual(await read([...bytes].map((b) => new Uint8Array([b]))), EXPECTED);
});

Deno.test("sse writer and reader agree, newlines in data included", async () => {
  const text = formatSseComment("keep\nalive") +
    formatSseEvent({ id: "3", event: "delete", data: "a\nb\r\nc" });
  assert.deepEqual(await read([new TextEncoder().encode(text)]), [
    { event: "delete", data: "a\nb\nc", id: "3" },
  ]);
});
