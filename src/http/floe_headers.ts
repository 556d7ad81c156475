/**
 * The HTTP header names of floe's node API, shared by the server (`createKvHttpApi`) and the
 * client (`FloeClient`). HTTP header names are case-insensitive; these are the spellings floe
 * writes.
 *
 * @module
 */

/** On every response: the id of the node that answered. */
export const FLOE_NODE = "Floe-Node";
/** On responses when a leader is known: its id. */
export const FLOE_LEADER = "Floe-Leader";
/** On a request a follower passed on to the leader: the follower's id. Never forwarded twice. */
export const FLOE_FORWARDED = "Floe-Forwarded";
/** On writes: the exactly-once session's client id (with `Floe-Sequence`). */
export const FLOE_CLIENT_ID = "Floe-Client-Id";
/** On writes: the write's sequence number in its client's session (a retry reuses it). */
export const FLOE_SEQUENCE = "Floe-Sequence";
/** On a value or write result: the key's revision (also the `ETag`, quoted). */
export const FLOE_REVISION = "Floe-Revision";
/** On a value: the revision that created the key. */
export const FLOE_CREATE_REVISION = "Floe-Create-Revision";
/** On a value: writes to the key since it was created. */
export const FLOE_VERSION = "Floe-Version";
/** On `/snapshot`: the last log index the snapshot covers. */
export const FLOE_SNAPSHOT_INDEX = "Floe-Snapshot-Index";
/** On `/snapshot`: the term of that entry. */
export const FLOE_SNAPSHOT_TERM = "Floe-Snapshot-Term";
/** On a watch response: the revision the watch starts from (where a reconnect resumes). */
export const FLOE_WATCH_FROM = "Floe-Watch-From";
