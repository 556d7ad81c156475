// A node's configuration: flags over environment over config file over defaults, and a clear
// error for each mistake.
import assert from "node:assert/strict";
import {
  loadNodeConfig,
  NodeConfigError,
  parseHostPort,
  parsePeers,
  resolveNodeConfig,
} from "../../src/service/node_config.ts";

const PEERS = "n1=127.0.0.1:7401,n2=127.0.0.1:7402,n3=127.0.0.1:7403";
const SECRET = "sixteen-bytes-or-more";

Deno.test("node config: flags win over environment, environment over the file", () => {
  const file = {
    name: "floe.json",
    value: { id: "n3", peers: PEERS, secret: SECRET, cluster: "fromfile", token: "filetoken" },
  };
  const env = { FLOE_ID: "n2", FLOE_CLUSTER: "fromenv" };
  const flags = new Map([["id", "n1"]]);
  const c = resolveNodeConfig({ flags, env, file });
  assert.equal(c.id, "n1");
  assert.equal(c.cluster, "fromenv");
  assert.equal(c.token, "filetoken");
  assert.equal(c.secret, SECRET);
  // --listen defaults to this node's entry in the peers.
  assert.deepEqual(c.listen, { hostname: "127.0.0.1", port: 7401 });
  assert.equal(c.dataDir, "./data/n1");
  assert.deepEqual(c.peers.map((p) => p.id), ["n1", "n2", "n3"]);
  const fromEnv = resolveNodeConfig({ env, file });
  assert.equal(fromEnv.id, "n2");
  assert.deepEqual(fromEnv.listen, { hostname: "127.0.0.1", port: 7402 });
  // An empty variable counts as unset.
  assert.equal(resolveNodeConfig({ env: { FLOE_ID: "" }, file }).id, "n3");
});

Deno.test("node config: a lone node needs no peers or secret; defaults fill the rest", () => {
  const c = resolveNodeConfig({ flags: new Map([["id", "solo"]]) });
  assert.deepEqual(c.listen, { hostname: "127.0.0.1", port: 7401 });
  assert.deepEqual(c.peers, [{ id: "solo", address: c.listen }]);
  assert.equal(c.cluster, "floe");
  assert.equal(c.secret, undefined);
  assert.equal(c.clientListen, undefined);
});

Deno.test("node config: the JSON file takes peers as text, object or array", () => {
  for (
    const peers of [
      PEERS,
      { n1: "127.0.0.1:7401", n2: "127.0.0.1:7402", n3: "127.0.0.1:7403" },
      [
        { id: "n1", address: "127.0.0.1:7401" },
        { id: "n2", address: "127.0.0.1:7402" },
        { id: "n3", address: "127.0.0.1:7403" },
      ],
    ]
  ) {
    const c = resolveNodeConfig({
      file: { name: "f.json", value: { id: "n2", peers, secret: SECRET, listen: 9000 } },
    });
    assert.deepEqual(c.peers.map((p) => `${p.id}@${p.address.port}`), [
      "n1@7401",
      "n2@7402",
      "n3@7403",
    ]);
    assert.deepEqual(c.listen, { hostname: "127.0.0.1", port: 9000 });
  }
});

Deno.test("node config: each mistake is named with where it came from", () => {
  const err = (sources: Parameters<typeof resolveNodeConfig>[0], pattern: RegExp) =>
    assert.throws(() => resolveNodeConfig(sources), (e: unknown) => {
      assert.ok(e instanceof NodeConfigError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  err({}, /node id is required/);
  err({ flags: new Map([["id", "n1"], ["peers", PEERS]]) }, /needs a shared secret/);
  err({ flags: new Map([["id", "n1"], ["secret", "short"]]) }, /--secret: .*16 bytes/);
  err(
    { flags: new Map([["id", "n9"], ["peers", PEERS], ["secret", SECRET]]) },
    /must list this node \(n9\)/,
  );
  err(
    { flags: new Map([["id", "n1"]]), env: { FLOE_LISTEN: "nowhere" } },
    /FLOE_LISTEN must be host:port/,
  );
  err({ flags: new Map([["id", "bad id"]]) }, /--id: node id "bad id"/);
  err(
    { flags: new Map([["id", "n1"], ["peers", "n1=127.0.0.1:1,n1=127.0.0.1:2"]]) },
    /listed twice/,
  );
  err(
    { file: { name: "x.json", value: { id: "n1", colour: "red" } } },
    /x.json: unknown setting "colour"/,
  );
  err({ file: { name: "x.json", value: [] } }, /x.json: expected a JSON object/);
  err(
    { flags: new Map([["id", "n1"], ["listen", "127.0.0.1:70000"]]) },
    /--listen must be host:port/,
  );
});

Deno.test("node config: host:port forms", () => {
  assert.deepEqual(parseHostPort("7401"), { hostname: "127.0.0.1", port: 7401 });
  assert.deepEqual(parseHostPort(":7401"), { hostname: "127.0.0.1", port: 7401 });
  assert.deepEqual(parseHostPort("0.0.0.0:80"), { hostname: "0.0.0.0", port: 80 });
  assert.deepEqual(parseHostPort("[::1]:9"), { hostname: "::1", port: 9 });
  assert.deepEqual(parseHostPort("node-a.local:0"), { hostname: "node-a.local", port: 0 });
  for (const bad of ["", "host", "host:", "a b:1", "h:99999", "h:-1"]) {
    assert.throws(() => parseHostPort(bad), NodeConfigError, bad);
  }
  assert.throws(() => parsePeers(" , "), /empty/);
});

Deno.test("node config: loadNodeConfig reads --config or FLOE_CONFIG, and reports bad files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-config-" });
  try {
    const good = `${dir}/floe.json`;
    await Deno.writeTextFile(good, JSON.stringify({ id: "n2", peers: PEERS, secret: SECRET }));
    assert.equal((await loadNodeConfig(new Map([["config", good]]), {})).id, "n2");
    assert.equal((await loadNodeConfig(new Map(), { FLOE_CONFIG: good })).id, "n2");
    const broken = `${dir}/broken.json`;
    await Deno.writeTextFile(broken, "{ id: n1");
    await assert.rejects(loadNodeConfig(new Map([["config", broken]]), {}), /not valid JSON/);
    await assert.rejects(
      loadNodeConfig(new Map([["config", `${dir}/missing.json`]]), {}),
      /cannot read the config file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
