/**
 * What the Chromium driver (`run_in_chromium.ts`, a separate Deno process) reports to the test
 * module (`indexeddb_test.ts`): one line per case on stdout, `RESULT_MARK` followed by a JSON
 * `CaseResult`, in the order of `caseNames()`.
 *
 * @module
 */
import { catalogue, type StorageFactory } from "./catalogue.ts";

/** Starts every result line, so stray output on stdout is never mistaken for one. */
export const RESULT_MARK = "floe-browser-result ";

/** The check of the bundle itself, reported before the page's cases. */
export const BUNDLE_CASE = "the page bundle carries no server module";

/** One case's result. */
export interface CaseResult {
  /** The case's name, as `caseNames()` lists it. */
  readonly name: string;
  /** Whether it passed. */
  readonly ok: boolean;
  /** How long it took, in milliseconds. */
  readonly ms: number;
  /** Why it failed, with the page's output. */
  readonly error?: string;
}

/** Every case the driver runs, in order; the contract cases are listed, never run, here. */
export function caseNames(): string[] {
  const unused = (): never => {
    throw new Error("cases listed outside the page cannot run");
  };
  const factory: StorageFactory = { open: unused, reopen: unused };
  const { page, phased } = catalogue(factory);
  return [BUNDLE_CASE, ...page.map((c) => c.name), ...phased.map((c) => c.name)];
}

/** Parse one stdout line: a result, or undefined for any other output. */
export function parseResult(line: string): CaseResult | undefined {
  if (!line.startsWith(RESULT_MARK)) return undefined;
  const value: unknown = JSON.parse(line.slice(RESULT_MARK.length));
  if (
    typeof value !== "object" || value === null || !("name" in value) || !("ok" in value) ||
    typeof value.name !== "string" || typeof value.ok !== "boolean"
  ) {
    throw new Error(`malformed browser result line: ${line}`);
  }
  const ms = "ms" in value && typeof value.ms === "number" ? value.ms : 0;
  const error = "error" in value && typeof value.error === "string" ? value.error : undefined;
  return { name: value.name, ok: value.ok, ms, error };
}
