/**
 * Unit tests of `resolveConfig` (src/core/config.ts): defaults, and a `ConfigError` naming the
 * field for every invalid value — also when it reaches `new RaftCore`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type RaftConfig, resolveConfig } from "../../src/core/config.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { RaftCore } from "../../src/core/raft.ts";

const BASE: RaftConfig = { id: "a", voters: ["a", "b", "c"], seed: 1 };

Deno.test("resolveConfig: fills in the documented defaults", () => {
  const c = resolveConfig(BASE);
  assert.equal(c.electionTicks, 30);
  assert.equal(c.electionTicksMax, 60);
  assert.equal(c.heartbeatTicks, 10);
  assert.equal(c.preVote, true);
  assert.equal(c.checkQuorum, true);
  assert.equal(c.maxInflight, 256);
  assert.equal(c.maxEntriesPerAppend, 4096);
  assert.equal(c.maxAppendBytes, 1 << 20);
  assert.equal(c.maxApplyBytes, 16 << 20);
  assert.equal(c.applied, 0);
  assert.deepEqual(c.voters, ["a", "b", "c"]);
  assert.equal(
    resolveConfig({ ...BASE, electionTicks: 7, heartbeatTicks: 2 }).electionTicksMax,
    14,
  );
});

Deno.test("resolveConfig: keeps valid explicit values and copies voters", () => {
  const voters = ["a", "b"];
  const c = resolveConfig({
    id: "a",
    voters,
    seed: 0,
    electionTicks: 5,
    electionTicksMax: 5,
    heartbeatTicks: 4,
    preVote: false,
    checkQuorum: false,
    maxInflight: 1,
    maxEntriesPerAppend: 1,
    maxAppendBytes: 1,
    maxApplyBytes: 1,
    applied: 3,
  });
  assert.equal(c.electionTicksMax, 5);
  assert.equal(c.preVote, false);
  assert.equal(c.checkQuorum, false);
  assert.equal(c.applied, 3);
  voters.push("z");
  assert.deepEqual(c.voters, ["a", "b"]);
});

const INVALID: [string, Partial<Record<keyof RaftConfig, unknown>>, RegExp][] = [
  ["empty id", { id: "" }, /\bid\b/],
  ["non-string id", { id: 7 }, /\bid\b/],
  ["no voters", { voters: [] }, /voters/],
  ["voters not an array", { voters: "abc" }, /voters/],
  ["empty voter", { voters: ["a", ""] }, /voters/],
  ["duplicate voter", { voters: ["a", "b", "a"] }, /voters.*\ba\b/],
  ["NaN seed", { seed: NaN }, /seed/],
  ["infinite seed", { seed: Infinity }, /seed/],
  ["string seed", { seed: "1" }, /seed/],
  ["zero electionTicks", { electionTicks: 0 }, /electionTicks/],
  ["fractional electionTicks", { electionTicks: 2.5, heartbeatTicks: 1 }, /electionTicks/],
  ["negative electionTicksMax", { electionTicksMax: -1 }, /electionTicksMax/],
  ["electionTicksMax below electionTicks", {
    electionTicks: 10,
    electionTicksMax: 9,
    heartbeatTicks: 1,
  }, /electionTicksMax/],
  ["zero heartbeatTicks", { heartbeatTicks: 0 }, /heartbeatTicks/],
  ["heartbeatTicks = electionTicks", { electionTicks: 5, heartbeatTicks: 5 }, /heartbeatTicks/],
  ["heartbeatTicks above electionTicks", { electionTicks: 5, heartbeatTicks: 8 }, /heartbeatTicks/],
  ["zero maxInflight", { maxInflight: 0 }, /maxInflight/],
  ["fractional maxInflight", { maxInflight: 1.5 }, /maxInflight/],
  ["zero maxEntriesPerAppend", { maxEntriesPerAppend: 0 }, /maxEntriesPerAppend/],
  ["negative maxAppendBytes", { maxAppendBytes: -5 }, /maxAppendBytes/],
  ["NaN maxApplyBytes", { maxApplyBytes: NaN }, /maxApplyBytes/],
  ["negative applied", { applied: -1 }, /applied/],
  ["fractional applied", { applied: 0.5 }, /applied/],
];

for (const [name, patch, field] of INVALID) {
  Deno.test(`resolveConfig: ${name} is a ConfigError naming the field`, () => {
    const config = { ...BASE, ...patch } as unknown as RaftConfig;
    assert.throws(() => resolveConfig(config), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
      assert.equal(e.name, "ConfigError");
      assert.match(e.message, field);
      return true;
    });
    assert.throws(() => new RaftCore(config), ConfigError, "RaftCore validates too");
  });
}
