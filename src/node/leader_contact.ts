/**
 * When this server last heard from a current leader, for stale reads with a staleness bound.
 * A follower counts the leader's appends, heartbeats and snapshot chunks of the current term;
 * a leader counts the answers of its followers in its term and takes the time by which a quorum
 * (itself included) had answered — the same evidence its check-quorum lease rests on.
 *
 * @module
 */
import type { Message, NodeId } from "../core/types.ts";

/** The parts of the core's state the tracker needs after each message. */
export interface ContactView {
  readonly id: NodeId;
  readonly term: number;
  readonly role: string;
  readonly leader: NodeId;
}

/** Contact times in the node's clock milliseconds. */
export class LeaderContact {
  #term = -1;
  #fromLeader: number | undefined;
  readonly #fromPeers = new Map<NodeId, number>();

  /** Record `m`, just stepped into a core now in state `view`, received at `now`. */
  heard(m: Message, view: ContactView, now: number): void {
    if (m.term !== view.term) return;
    this.#sync(view.term);
    switch (m.type) {
      case "app":
      case "hb":
      case "snap":
        if (view.leader === m.from && view.role === "follower") this.#fromLeader = now;
        return;
      case "appResp":
      case "hbResp":
      case "snapResp":
        this.#fromPeers.set(m.from, now);
        return;
      case "voteResp":
        if (!m.reject) this.#fromPeers.set(m.from, now);
        return;
    }
  }

  /**
   * Milliseconds since the last contact with a current leader as `view` stands, or undefined
   * when there was none in this term (or no leader is known). A leader of `voters` measures
   * from the moment a quorum had last answered in its term.
   */
  sinceContact(view: ContactView, voters: readonly NodeId[], now: number): number | undefined {
    this.#sync(view.term);
    if (view.role === "leader") {
      const times = voters.map((v) => v === view.id ? now : this.#fromPeers.get(v) ?? -Infinity);
      times.sort((a, b) => b - a);
      const quorumTime = times[Math.floor(voters.length / 2)];
      return quorumTime === -Infinity ? undefined : now - quorumTime;
    }
    if (view.leader === "" || this.#fromLeader === undefined) return undefined;
    return now - this.#fromLeader;
  }

  // Contact from an earlier term says nothing about the current one.
  #sync(term: number): void {
    if (term === this.#term) return;
    this.#term = term;
    this.#fromLeader = undefined;
    this.#fromPeers.clear();
  }
}
