/**
 * The handshake that opens every peer connection: mutual challenge-response over a shared cluster
 * secret, with HMAC-SHA256 from WebCrypto (so a browser runs the same code as a server).
 *
 * ```
 * dialer D                                         acceptor A
 *   hello     {hs, v, cluster, from: D, to: A, nonce: nD}  ->
 *             <-  challenge {hs, v, cluster, from: A, to: D, nonce: nA, mac: MAC("acceptor", nD, nA)}
 *   auth      {hs, mac: MAC("dialer", nD, nA)}             ->
 *             <-  welcome {hs}            (or, from either side at any step: refuse {hs, reason})
 * ```
 *
 * Each MAC covers the protocol version, the cluster id, both node ids in the order of the sender's
 * role and both fresh 32-byte nonces, so a MAC cannot be replayed on another connection, reflected
 * back to its sender, or moved to another cluster or pair of nodes. Each side proves it holds the
 * secret over a nonce the other side chose. Until `welcome`, the connection carries nothing else:
 * no Raft frame from an unauthenticated socket reaches the core.
 *
 * Handshake messages are small CBOR maps, decoded under the same scan as Raft frames.
 *
 * @module
 */
import { Decoder, Encoder } from "../../deps.ts";
import type { NodeId } from "../core/types.ts";
import { CBOR_OPTIONS } from "./codec.ts";
import { FrameError, isValidId, scanCbor } from "./frame_validation.ts";

/** The handshake protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** Versions an acceptor accepts by default. */
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];
/** Largest handshake message in bytes; anything longer is refused unread. */
export const MAX_HANDSHAKE_BYTES = 1024;
const NONCE_BYTES = 32;
const MAC_BYTES = 32;
const MAC_LABEL = "floe-handshake";

/** Why a handshake was refused. */
export type RefusalReason =
  | "malformed"
  | "unexpected"
  | "unsupported-version"
  | "wrong-cluster"
  | "wrong-receiver"
  | "unknown-peer"
  | "bad-mac"
  | "refused-by-peer"
  | "timeout"
  | "closed";

/** The outcome of a handshake that did not complete. */
export interface Refusal {
  /** Classifies the refusal, for metrics. */
  readonly reason: RefusalReason;
  /** Human-readable detail for the log. */
  readonly detail: string;
}

/**
 * The HMAC key both sides derive from the cluster secret. Create once per transport; WebCrypto
 * keeps the raw secret out of JavaScript afterwards.
 */
export class HandshakeKey {
  private constructor(readonly key: CryptoKey) {}

  /**
   * Import `secret` (text as UTF-8, or raw bytes) as an HMAC-SHA256 key.
   *
   * @throws {RangeError} when the secret is shorter than 16 bytes: a short shared secret is
   * guessable offline from one recorded handshake.
   */
  static async create(secret: string | Uint8Array): Promise<HandshakeKey> {
    const raw = HandshakeKey.check(secret);
    const key = await crypto.subtle.importKey(
      "raw",
      new Uint8Array(raw),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    return new HandshakeKey(key);
  }

  /**
   * The secret's bytes, after checking its length (synchronously, so a constructor can refuse a
   * bad secret before any key import starts).
   *
   * @throws {RangeError} when the secret is shorter than 16 bytes.
   */
  static check(secret: string | Uint8Array): Uint8Array {
    const raw = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
    if (!(raw instanceof Uint8Array) || raw.length < 16) {
      throw new RangeError("the cluster secret must be at least 16 bytes");
    }
    return raw;
  }
}

/** What a handshake step asks its connection to do. */
export type HandshakeStep =
  /** Send `send` and wait for the next message. */
  | { readonly kind: "continue"; readonly send: Uint8Array }
  /** Authenticated: send `send` if present, then carry Raft frames with `peer`. */
  | { readonly kind: "done"; readonly peer: NodeId; readonly send?: Uint8Array }
  /** Refused: send `send` (a refusal to tell the other side why) if present, then close. */
  | { readonly kind: "refused"; readonly refusal: Refusal; readonly send?: Uint8Array };

/** What both sides of a handshake know about themselves. */
export interface HandshakeOptions {
  /** The shared secret's key (or its import in progress). */
  readonly key: HandshakeKey | Promise<HandshakeKey>;
  /** The cluster id both sides must agree on. */
  readonly cluster: string;
  /** This node's id. */
  readonly self: NodeId;
  /** Protocol version this side speaks (tests set others). Default `PROTOCOL_VERSION`. */
  readonly version?: number;
}

const encoder = new Encoder(CBOR_OPTIONS);
const decoder = new Decoder(CBOR_OPTIONS);

function encode(value: Record<string, unknown>): Uint8Array {
  return encoder.encode(value);
}

type Decoded =
  | { readonly ok: true; readonly msg: Record<string, unknown> }
  | { readonly ok: false; readonly detail: string };

/** Decode a handshake message: a map of scalars, nothing nested. */
function decodeMessage(bytes: Uint8Array): Decoded {
  if (bytes.length > MAX_HANDSHAKE_BYTES) {
    return { ok: false, detail: `handshake message of ${bytes.length} bytes` };
  }
  try {
    scanCbor(bytes, 1);
    const value: unknown = decoder.decode(bytes);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return { ok: false, detail: "handshake message is not a map" };
    }
    return { ok: true, msg: value as Record<string, unknown> };
  } catch (e) {
    const detail = e instanceof FrameError ? e.message : `undecodable: ${String(e).slice(0, 80)}`;
    return { ok: false, detail };
  }
}

function refusalMessage(r: Refusal): Uint8Array {
  return encode({ hs: "refuse", reason: r.reason });
}

function refuse(reason: RefusalReason, detail: string, tell = true): HandshakeStep {
  const refusal = { reason, detail };
  return { kind: "refused", refusal, send: tell ? refusalMessage(refusal) : undefined };
}

/**
 * Run one handshake step so that it never throws: anything it throws (WebCrypto failing, a bug)
 * ends the handshake, through `end`, as a refusal.
 */
async function neverThrowing(
  step: () => Promise<HandshakeStep>,
  end: () => void,
): Promise<HandshakeStep> {
  try {
    return await step();
  } catch (e) {
    end();
    return refuse("malformed", `handshake failed: ${String(e).slice(0, 80)}`);
  }
}

/** What both sides do first with every message: decode it, and stop if the peer refused. */
function readMessage(
  bytes: Uint8Array,
): { readonly msg: Record<string, unknown> } | { readonly refused: HandshakeStep } {
  const decoded = decodeMessage(bytes);
  if (!decoded.ok) return { refused: refuse("malformed", decoded.detail) };
  const refused = peerRefused(decoded.msg);
  return refused ? { refused } : { msg: decoded.msg };
}

/** The other side's refusal message, as a refusal of ours to report. */
function peerRefused(msg: Record<string, unknown>): HandshakeStep | undefined {
  if (msg.hs !== "refuse") return undefined;
  const why = typeof msg.reason === "string" ? msg.reason.slice(0, 64) : "no reason given";
  return refuse("refused-by-peer", `the peer refused: ${why}`, false);
}

function nonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

function bytesField(v: unknown, length: number): Uint8Array<ArrayBuffer> | undefined {
  return v instanceof Uint8Array && v.length === length ? new Uint8Array(v) : undefined;
}

function macInput(
  role: "dialer" | "acceptor",
  version: number,
  cluster: string,
  sender: NodeId,
  receiver: NodeId,
  dialerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
): Uint8Array<ArrayBuffer> {
  // CBOR of a fixed-shape array is an unambiguous encoding of the tuple, unlike concatenation.
  return new Uint8Array(
    encoder.encode([
      MAC_LABEL,
      role,
      version,
      cluster,
      sender,
      receiver,
      dialerNonce,
      acceptorNonce,
    ]),
  );
}

async function sign(
  key: HandshakeKey | Promise<HandshakeKey>,
  data: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", (await key).key, data));
}

async function verify(
  key: HandshakeKey | Promise<HandshakeKey>,
  mac: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  // subtle.verify compares in constant time.
  return await crypto.subtle.verify("HMAC", (await key).key, mac, data);
}

/**
 * The dialing side of one handshake. `start()` gives the hello to send; then feed each message
 * that arrives to `receive` until it returns `done` or `refused`.
 */
export class DialerHandshake {
  readonly #o: HandshakeOptions;
  readonly #peer: NodeId;
  readonly #version: number;
  readonly #nonce = nonce();
  #state: "new" | "hello" | "auth" | "over" = "new";

  /** `peer` is the node this dialer expects to reach. */
  constructor(options: HandshakeOptions, peer: NodeId) {
    this.#o = options;
    this.#peer = peer;
    this.#version = options.version ?? PROTOCOL_VERSION;
  }

  /** The hello message to send first. */
  start(): Uint8Array {
    if (this.#state !== "new") throw new Error("DialerHandshake.start called twice");
    this.#state = "hello";
    const o = this.#o;
    return encode({
      hs: "hello",
      v: this.#version,
      cluster: o.cluster,
      from: o.self,
      to: this.#peer,
      nonce: this.#nonce,
    });
  }

  /** Handle one message from the acceptor. Never throws. */
  receive(bytes: Uint8Array): Promise<HandshakeStep> {
    return neverThrowing(() => this.#receive(bytes), () => (this.#state = "over"));
  }

  async #receive(bytes: Uint8Array): Promise<HandshakeStep> {
    const read = readMessage(bytes);
    if ("refused" in read) {
      this.#state = "over";
      return read.refused;
    }
    const msg = read.msg;
    const o = this.#o;
    if (this.#state === "hello" && msg.hs === "challenge") {
      this.#state = "over"; // until proven otherwise
      if (msg.v !== this.#version) {
        return refuse("unsupported-version", `the peer answered in version ${String(msg.v)}`);
      }
      if (msg.cluster !== o.cluster) {
        return refuse("wrong-cluster", "the peer is in another cluster");
      }
      if (msg.from !== this.#peer || msg.to !== o.self) {
        return refuse("wrong-receiver", `expected ${this.#peer}, reached ${String(msg.from)}`);
      }
      const theirNonce = bytesField(msg.nonce, NONCE_BYTES);
      const mac = bytesField(msg.mac, MAC_BYTES);
      if (!theirNonce || !mac) return refuse("malformed", "challenge lacks a nonce or a mac");
      const expected = macInput(
        "acceptor",
        this.#version,
        o.cluster,
        this.#peer,
        o.self,
        this.#nonce,
        theirNonce,
      );
      if (!(await verify(o.key, mac, expected))) {
        return refuse("bad-mac", "the peer does not hold the cluster secret");
      }
      const ours = await sign(
        o.key,
        macInput("dialer", this.#version, o.cluster, o.self, this.#peer, this.#nonce, theirNonce),
      );
      this.#state = "auth";
      return { kind: "continue", send: encode({ hs: "auth", mac: ours }) };
    }
    if (this.#state === "auth" && msg.hs === "welcome") {
      this.#state = "over";
      return { kind: "done", peer: this.#peer };
    }
    this.#state = "over";
    return refuse("unexpected", `unexpected handshake message ${String(msg.hs).slice(0, 16)}`);
  }
}

/** What an acceptor knows beyond `HandshakeOptions`. */
export interface AcceptorOptions extends HandshakeOptions {
  /** Whether `id` may connect (a member of the cluster this node knows). */
  readonly isPeer: (id: NodeId) => boolean;
  /** Versions accepted. Default `SUPPORTED_VERSIONS`. */
  readonly versions?: readonly number[];
}

/** The accepting side of one handshake: feed each message to `receive`. */
export class AcceptorHandshake {
  readonly #o: AcceptorOptions;
  readonly #nonce = nonce();
  #state: "hello" | "auth" | "over" = "hello";
  #peer: NodeId = "";
  #claimed: NodeId = "";
  #version = 0;
  #theirNonce: Uint8Array<ArrayBuffer> = new Uint8Array();

  /** Start waiting for a hello. */
  constructor(options: AcceptorOptions) {
    this.#o = options;
  }

  /**
   * The node that said hello: once the hello was accepted, or when it was refused but named a
   * known peer (unauthenticated then: it only says whom a refusal concerns). Empty otherwise.
   */
  get peer(): NodeId {
    return this.#peer || this.#claimed;
  }

  /** Handle one message from the dialer. Never throws. */
  receive(bytes: Uint8Array): Promise<HandshakeStep> {
    return neverThrowing(() => this.#receive(bytes), () => (this.#state = "over"));
  }

  async #receive(bytes: Uint8Array): Promise<HandshakeStep> {
    const read = readMessage(bytes);
    if ("refused" in read) {
      this.#state = "over";
      return read.refused;
    }
    const msg = read.msg;
    const o = this.#o;
    if (this.#state === "hello" && msg.hs === "hello") {
      this.#state = "over";
      // Whom the dialer claims to be, when that is a peer: refusals are counted against it.
      if (isValidId(msg.from) && msg.from !== o.self && o.isPeer(msg.from)) {
        this.#claimed = msg.from;
      }
      const versions = o.versions ?? SUPPORTED_VERSIONS;
      if (typeof msg.v !== "number" || !versions.includes(msg.v)) {
        return refuse(
          "unsupported-version",
          `version ${String(msg.v).slice(0, 16)} (accepted: ${versions.join(", ")})`,
        );
      }
      if (msg.cluster !== o.cluster) {
        return refuse(
          "wrong-cluster",
          `cluster ${JSON.stringify(String(msg.cluster).slice(0, 64))}`,
        );
      }
      if (msg.to !== o.self) {
        return refuse(
          "wrong-receiver",
          `addressed to ${JSON.stringify(String(msg.to).slice(0, 64))}`,
        );
      }
      if (!isValidId(msg.from) || msg.from === o.self || !o.isPeer(msg.from)) {
        return refuse(
          "unknown-peer",
          `${JSON.stringify(String(msg.from).slice(0, 64))} is not a peer`,
        );
      }
      const theirNonce = bytesField(msg.nonce, NONCE_BYTES);
      if (!theirNonce) return refuse("malformed", "hello lacks a nonce");
      this.#peer = msg.from;
      this.#version = msg.v;
      this.#theirNonce = theirNonce;
      const mac = await sign(
        o.key,
        macInput("acceptor", msg.v, o.cluster, o.self, msg.from, theirNonce, this.#nonce),
      );
      this.#state = "auth";
      return {
        kind: "continue",
        send: encode({
          hs: "challenge",
          v: msg.v,
          cluster: o.cluster,
          from: o.self,
          to: msg.from,
          nonce: this.#nonce,
          mac,
        }),
      };
    }
    if (this.#state === "auth" && msg.hs === "auth") {
      this.#state = "over";
      const mac = bytesField(msg.mac, MAC_BYTES);
      if (!mac) return refuse("malformed", "auth lacks a mac");
      const expected = macInput(
        "dialer",
        this.#version,
        o.cluster,
        this.#peer,
        o.self,
        this.#theirNonce,
        this.#nonce,
      );
      if (!(await verify(o.key, mac, expected))) {
        return refuse("bad-mac", `${this.#peer} does not hold the cluster secret`);
      }
      return { kind: "done", peer: this.#peer, send: encode({ hs: "welcome" }) };
    }
    this.#state = "over";
    return refuse("unexpected", `unexpected handshake message ${String(msg.hs).slice(0, 16)}`);
  }
}
