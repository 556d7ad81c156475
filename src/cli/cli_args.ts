/**
 * Command-line flags for the `floe` subcommands: `--name value`, `--name=value` and boolean
 * `--name`, mixed with positional arguments in any order; `--` ends the flags. Anything the
 * command does not declare is a `UsageError`, which the CLI reports with the command's usage and
 * exit code 2.
 *
 * @module
 */
import { NODE_CONFIG_FLAGS } from "../service/node_config.ts";

/** A mistake in how a command was called: exit 2 with the message and the usage. */
export class UsageError extends Error {
  /** `message` says what is wrong; `usage` is the command's usage text. */
  constructor(message: string, readonly usage: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The flags a command accepts: each takes a value (`string`) or not (`boolean`). */
export type FlagSpec = Readonly<Record<string, "string" | "boolean">>;

/** What `parseArgs` found. */
export interface ParsedArgs {
  /** Flag values by name (without dashes); a boolean flag that is present maps to "true". */
  readonly flags: ReadonlyMap<string, string>;
  /** The arguments that are not flags, in order. */
  readonly positional: readonly string[];
  /** Whether `--help` or `-h` was given. */
  readonly help: boolean;
}

/**
 * Parse `args` against `spec`. `-h`/`--help` are always accepted. A lone `-` is positional (it
 * conventionally means stdin).
 *
 * @throws {UsageError} for an unknown flag, a value flag without its value, a repeated flag, or
 *   a value given to a boolean flag.
 */
export function parseArgs(args: readonly string[], spec: FlagSpec, usage: string): ParsedArgs {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const body = arg.startsWith("--") ? arg.slice(2) : "";
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    const kind = name === "" ? undefined : spec[name];
    if (kind === undefined) {
      throw new UsageError(`unknown flag ${inline === undefined ? arg : `--${name}`}`, usage);
    }
    if (flags.has(name)) throw new UsageError(`--${name} given twice`, usage);
    if (kind === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`, usage);
      flags.set(name, "true");
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`, usage);
    flags.set(name, value);
  }
  return { flags, positional, help };
}

/** A positive integer flag value, or a `UsageError` naming the flag. */
export function integerFlag(
  name: string,
  value: string,
  usage: string,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${name} must be an integer from ${min} to ${max}, got "${value}"`,
      usage,
    );
  }
  return n;
}

/**
 * The flags of `floe node`, under Deno and Node alike: one string flag per setting of
 * node_config.ts, `--config FILE`, and `--stop-with-stdin`.
 */
export const NODE_FLAGS: FlagSpec = {
  ...Object.fromEntries(Object.values(NODE_CONFIG_FLAGS).map((f) => [f, "string"])),
  config: "string",
  "stop-with-stdin": "boolean",
};
