/**
 * The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then one
 * sample per line; histograms as cumulative `_bucket{le="..."}` samples, `_sum` and `_count`.
 *
 * @module
 */

/** The content type of the format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * A histogram as the node keeps it: bucket upper bounds in ascending order (seconds), counts
 * per bucket (not cumulative; one more than `bounds`, the last for +Inf), and the sum and count
 * of observations.
 */
export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending. */
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; `bounds.length + 1` of them. */
  readonly counts: readonly number[];
  /** Sum of the observations. */
  readonly sum: number;
  /** Number of observations. */
  readonly count: number;
}

/** Labels of one sample. */
export type Labels = Readonly<Record<string, string>>;

/** Builds a page of metrics, one family at a time. */
export class PrometheusText {
  #out = "";

  /** A gauge family: one sample per labelled value. */
  gauge(name: string, help: string, samples: number | readonly [Labels, number][]): this {
    return this.#family(name, help, "gauge", samples);
  }

  /** A counter family (`name` should end in `_total`). */
  counter(name: string, help: string, samples: number | readonly [Labels, number][]): this {
    return this.#family(name, help, "counter", samples);
  }

  /** A histogram family. */
  histogram(name: string, help: string, h: HistogramSnapshot): this {
    this.#head(name, help, "histogram");
    let cumulative = 0;
    for (let i = 0; i < h.bounds.length; i++) {
      cumulative += h.counts[i] ?? 0;
      this.#sample(`${name}_bucket`, { le: formatNumber(h.bounds[i]) }, cumulative);
    }
    this.#sample(`${name}_bucket`, { le: "+Inf" }, h.count);
    this.#sample(`${name}_sum`, {}, h.sum);
    this.#sample(`${name}_count`, {}, h.count);
    return this;
  }

  /** The page. */
  toString(): string {
    return this.#out;
  }

  #family(
    name: string,
    help: string,
    type: string,
    samples: number | readonly [Labels, number][],
  ): this {
    this.#head(name, help, type);
    if (typeof samples === "number") this.#sample(name, {}, samples);
    else for (const [labels, v] of samples) this.#sample(name, labels, v);
    return this;
  }

  #head(name: string, help: string, type: string): void {
    this.#out += `# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`;
    this.#out += `# TYPE ${name} ${type}\n`;
  }

  #sample(name: string, labels: Labels, value: number): void {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    const set = pairs.length > 0 ? `{${pairs.join(",")}}` : "";
    this.#out += `${name}${set} ${formatNumber(value)}\n`;
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
