/**
 * Runs a scenario from a seed: `FLOE_SEED` overrides the default, and a failure names the seed
 * and how to replay it.
 *
 * @module
 */
import { SimCluster, type SimClusterOptions } from "../../src/testing/sim_cluster.ts";

/** The seed to use: `FLOE_SEED` when set, else `fallback`. */
export function scenarioSeed(fallback: number): number {
  // Without --allow-env the default seed is used rather than failing.
  const env = Deno.permissions.querySync({ name: "env", variable: "FLOE_SEED" }).state === "granted"
    ? Deno.env.get("FLOE_SEED")
    : undefined;
  if (env === undefined || env === "") return fallback;
  const seed = Number(env);
  if (!Number.isInteger(seed)) throw new Error(`FLOE_SEED must be an integer, got ${env}`);
  return seed;
}

/**
 * Builds a cluster from the scenario's seed, runs `body`, always cleans up, and on failure
 * prints the seed with the replay command.
 */
export async function withCluster(
  name: string,
  options: Omit<SimClusterOptions, "seed"> & { seed?: number },
  body: (c: SimCluster) => Promise<void>,
): Promise<void> {
  const seed = scenarioSeed(options.seed ?? 1);
  const c = await SimCluster.create({ ...options, seed });
  try {
    await body(c);
  } catch (e) {
    console.error(
      `${name}: failed with seed ${seed}; replay with FLOE_SEED=${seed} deno test --allow-env --filter "${name}"`,
    );
    throw e;
  } finally {
    await c.cleanup();
  }
}
