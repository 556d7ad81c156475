// Backup files: round trip, damage detection, and restoring into a data directory.
import assert from "node:assert/strict";
import { encodeKvCommand } from "../../src/kv/kv_command.ts";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import {
  decodeSnapshotFile,
  encodeSnapshotFile,
  restoreSnapshot,
  SnapshotFileError,
  writeFileAtomically,
} from "../../src/service/snapshot_file.ts";
import { FileStorage } from "../../src/storage/file_storage.ts";

function kvWith(n: number): KvStateMachine {
  const kv = new KvStateMachine();
  for (let i = 1; i <= n; i++) {
    kv.apply(
      encodeKvCommand({ op: "put", key: `k${i}`, value: new TextEncoder().encode(`v${i}`), ts: i }),
      i,
    );
  }
  return kv;
}

Deno.test("snapshot file: round trip, and every damage is refused", () => {
  const data = kvWith(3).snapshot();
  const bytes = encodeSnapshotFile(data, 3, 2, new Date(0));
  const back = decodeSnapshotFile(bytes);
  assert.deepEqual(back.data, data);
  assert.equal(back.header.index, 3);
  assert.equal(back.header.term, 2);
  assert.equal(back.header.createdAt, "1970-01-01T00:00:00.000Z");
  assert.throws(() => decodeSnapshotFile(bytes.subarray(0, bytes.length - 1)), /truncated/);
  const flipped = bytes.slice();
  flipped[flipped.length - 1] ^= 1;
  assert.throws(() => decodeSnapshotFile(flipped), /checksum/);
  assert.throws(
    () => decodeSnapshotFile(new TextEncoder().encode("hello\n")),
    /not a floe snapshot/,
  );
  const badHeader = new TextEncoder().encode('floe-snapshot 1\n{"index":0,"term":1}\n');
  assert.throws(() => decodeSnapshotFile(badHeader), SnapshotFileError);
});

Deno.test("snapshot file: restore makes a FileStorage directory holding it, voters as given", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-restore-" });
  try {
    const kv = kvWith(5);
    const file = `${dir}/backup.snap`;
    await writeFileAtomically(file, encodeSnapshotFile(kv.snapshot(), 5, 3));
    const snapshot = decodeSnapshotFile(await Deno.readFile(file));
    await restoreSnapshot({ snapshot, dataDir: `${dir}/n1`, voters: ["x", "y", "z"] });
    const storage = await FileStorage.open(`${dir}/n1`, { onWarning: () => {} });
    try {
      const state = await storage.load();
      assert.equal(state.snapshot?.index, 5);
      assert.equal(state.snapshot?.term, 3);
      assert.deepEqual(state.snapshot?.voters, ["x", "y", "z"]);
      assert.equal(state.entries.length, 0);
      assert.equal(state.hardState.term, 3);
      const restored = new KvStateMachine();
      restored.restore(state.snapshot!.data, 5);
      assert.equal(restored.appliedIndex, 5);
    } finally {
      await storage.close();
    }
    await assert.rejects(
      restoreSnapshot({ snapshot, dataDir: `${dir}/n1`, voters: ["x"] }),
      /not empty/,
    );
    await assert.rejects(
      restoreSnapshot({
        snapshot: { header: snapshot.header, data: new Uint8Array([1, 2, 3]) },
        dataDir: `${dir}/n2`,
        voters: ["x"],
      }),
      /does not load/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
