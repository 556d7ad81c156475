/**
 * Raft's safety properties (Figure 3 of the paper), checked incrementally as a cluster runs, so a
 * violation is caught at the step that causes it rather than in a final sweep:
 *
 * - Election Safety: at most one leader per term.
 * - Log Matching: an (index, term) pair names one entry, whose predecessor has one term. By
 *   induction over indexes this is the full property, and it is checked entry by entry as servers
 *   persist them.
 * - Leader Completeness: a new leader holds the highest committed entry (and, by Log Matching,
 *   everything before it).
 * - State Machine Safety: no two servers apply different commands at one index; each server
 *   applies every index once, in order, without gaps.
 *
 * @module
 */
import type { Entry, NodeId } from "../core/types.ts";

/** A safety property was violated; the message names the property, servers and indexes. */
export class SafetyViolation extends Error {
  /** `message` describes the violation. */
  constructor(message: string) {
    super(message);
    this.name = "SafetyViolation";
  }
}

interface EntryFact {
  readonly data: string;
  readonly prevTerm: number;
  readonly server: NodeId;
}

/** Byte-exact key of a command, for comparing what servers hold. */
export function commandKey(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i += 4096) {
    s += String.fromCharCode(...data.subarray(i, i + 4096));
  }
  return s;
}

/** Collects observations from every server of one cluster and throws on the first violation. */
export class SafetyChecker {
  readonly #leaders = new Map<number, NodeId>();
  readonly #entries = new Map<string, EntryFact>();
  readonly #applied = new Map<number, { key: string; term: number; server: NodeId }>();
  readonly #nextApply = new Map<NodeId, number>();
  readonly #committedAtCampaign = new Map<string, number>();
  #maxCommitted = 0;

  /** Highest index any server has applied. */
  get maxCommitted(): number {
    return this.#maxCommitted;
  }

  /** The command key and term applied at `index`, if any server applied it. */
  appliedAt(index: number): { key: string; term: number } | undefined {
    return this.#applied.get(index);
  }

  /**
   * `server` became a candidate for `term`. Whatever was committed by then was committed in an
   * earlier term (a leader of `term` or later would hold a quorum this candidate cannot win), so
   * Leader Completeness requires it in the log of this candidate if it wins.
   */
  campaignStarted(server: NodeId, term: number): void {
    this.#committedAtCampaign.set(`${server}:${term}`, this.#maxCommitted);
  }

  /**
   * `server` became leader of `term`; `logTerm` reads its log. Checks Election Safety and
   * Leader Completeness for what was committed before its campaign began (entries committed
   * later, by leaders of later terms, need not be in its log).
   */
  leaderElected(
    server: NodeId,
    term: number,
    logTerm: (index: number) => number | undefined,
    lastIndex: number,
  ): void {
    const other = this.#leaders.get(term);
    if (other !== undefined && other !== server) {
      throw new SafetyViolation(`Election Safety: ${other} and ${server} both lead term ${term}`);
    }
    this.#leaders.set(term, server);
    const key = `${server}:${term}`;
    const c = this.#committedAtCampaign.get(key) ?? this.#maxCommitted;
    this.#committedAtCampaign.delete(key);
    if (c === 0) return;
    const committed = this.#applied.get(c)!;
    if (c > lastIndex) {
      throw new SafetyViolation(
        `Leader Completeness: ${server} leads term ${term} with a log ending at ${lastIndex}, before committed index ${c}`,
      );
    }
    const held = logTerm(c);
    // An index below the server's log start is covered by its snapshot, which holds only
    // committed state; `undefined` there is not a violation.
    if (held !== undefined && held !== committed.term) {
      throw new SafetyViolation(
        `Leader Completeness: ${server} leads term ${term} with term ${held} at committed index ${c} (term ${committed.term})`,
      );
    }
  }

  /**
   * `server` persisted `entries` (contiguous), the first following an entry of term `prevTerm`.
   * Checks Log Matching.
   */
  persisted(server: NodeId, entries: readonly Entry[], prevTerm: number): void {
    let before = prevTerm;
    for (const e of entries) {
      const key = `${e.index}:${e.term}`;
      const data = commandKey(e.data);
      const fact = this.#entries.get(key);
      if (fact === undefined) {
        this.#entries.set(key, { data, prevTerm: before, server });
      } else if (fact.data !== data || fact.prevTerm !== before) {
        throw new SafetyViolation(
          `Log Matching: ${server} and ${fact.server} hold different entries at index ${e.index} term ${e.term}` +
            (fact.prevTerm !== before
              ? ` (preceded by terms ${before} and ${fact.prevTerm})`
              : " (different commands)"),
        );
      }
      before = e.term;
    }
  }

  /** `server` restarted with an empty state machine that resumes after `appliedIndex`. */
  restarted(server: NodeId, appliedIndex = 0): void {
    this.#nextApply.set(server, appliedIndex + 1);
  }

  /**
   * `server` loaded a snapshot of the state through `index`: `state` maps each index to the
   * command key applied there. Checks the snapshot agrees with what servers applied.
   */
  snapshotLoaded(server: NodeId, index: number, state: ReadonlyMap<number, string>): void {
    for (const [i, key] of state) {
      const prior = this.#applied.get(i);
      if (i > index) {
        throw new SafetyViolation(`snapshot at ${index} loaded by ${server} holds index ${i}`);
      }
      if (prior === undefined) {
        throw new SafetyViolation(
          `State Machine Safety: ${server} loaded a snapshot holding index ${i}, which no server applied`,
        );
      }
      if (prior.key !== key) {
        throw new SafetyViolation(
          `State Machine Safety: ${server} loaded a snapshot whose command at index ${i} differs from what ${prior.server} applied`,
        );
      }
    }
    this.#nextApply.set(server, index + 1);
  }

  /** `server` applied `data` at `index`. Checks State Machine Safety and apply order. */
  applied(server: NodeId, index: number, term: number, data: Uint8Array): void {
    const want = this.#nextApply.get(server) ?? 1;
    if (index !== want) {
      throw new SafetyViolation(
        `apply order: ${server} applied index ${index}, expected ${want} (out of order, duplicated or a gap)`,
      );
    }
    this.#nextApply.set(server, index + 1);
    const key = commandKey(data);
    const prior = this.#applied.get(index);
    if (prior === undefined) {
      this.#applied.set(index, { key, term, server });
      if (index > this.#maxCommitted) this.#maxCommitted = index;
    } else if (prior.key !== key || prior.term !== term) {
      throw new SafetyViolation(
        `State Machine Safety: ${server} applied a different command at index ${index} than ${prior.server} (terms ${term} and ${prior.term})`,
      );
    }
  }
}
