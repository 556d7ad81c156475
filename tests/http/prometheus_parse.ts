/**
 * A strict reader of the Prometheus text format 0.0.4 for tests: every line must be a `# HELP`,
 * a `# TYPE` or a sample of the family last declared; histogram buckets must be cumulative and
 * end with `le="+Inf"` equal to `_count`.
 *
 * @module
 */

/** One sample. */
export interface Sample {
  /** Metric name (with any `_bucket`/`_sum`/`_count` suffix). */
  readonly name: string;
  /** Labels. */
  readonly labels: Record<string, string>;
  /** Value. */
  readonly value: number;
}

/** One metric family. */
export interface Family {
  /** `counter`, `gauge`, `histogram`, ... */
  readonly type: string;
  /** Help text. */
  readonly help: string;
  /** Samples in order. */
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

/**
 * The families of `text`.
 *
 * @throws {Error} naming the first line that breaks the format.
 */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  let current: string | undefined;
  if (!text.endsWith("\n")) throw new Error("the text must end with a newline");
  for (const [i, line] of text.slice(0, -1).split("\n").entries()) {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith("# HELP ")) {
      const [name, ...help] = line.slice(7).split(" ");
      if (!NAME.test(name)) throw new Error(`bad name, ${where}`);
      helps.set(name, help.join(" "));
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      if (
        !NAME.test(name) || !["counter", "gauge", "histogram", "summary", "untyped"].includes(type)
      ) {
        throw new Error(`bad TYPE, ${where}`);
      }
      if (families.has(name)) throw new Error(`family declared twice, ${where}`);
      families.set(name, { type, help: helps.get(name) ?? "", samples: [] });
      current = name;
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample, ${where}`);
    const [, name, , labelText, valueText] = m;
    if (current === undefined) throw new Error(`sample before any TYPE, ${where}`);
    const fam = families.get(current)!;
    const ok = fam.type === "histogram"
      ? [`${current}_bucket`, `${current}_sum`, `${current}_count`].includes(name)
      : name === current;
    if (!ok) throw new Error(`sample outside its family ${current}, ${where}`);
    const labels: Record<string, string> = {};
    if (labelText !== undefined && labelText !== "") {
      LABEL.lastIndex = 0;
      let at = 0;
      while (at < labelText.length) {
        LABEL.lastIndex = at;
        const l = LABEL.exec(labelText);
        if (!l) throw new Error(`bad labels, ${where}`);
        labels[l[1]] = l[2];
        at = LABEL.lastIndex;
      }
    }
    const value = valueText === "+Inf"
      ? Infinity
      : valueText === "-Inf"
      ? -Infinity
      : Number(valueText);
    if (Number.isNaN(value) && valueText !== "NaN") throw new Error(`bad value, ${where}`);
    fam.samples.push({ name, labels, value });
  }
  for (const [name, fam] of families) {
    if (fam.type !== "histogram") continue;
    const buckets = fam.samples.filter((s) => s.name === `${name}_bucket`);
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i].value < buckets[i - 1].value) {
        throw new Error(`${name}: buckets not cumulative`);
      }
    }
    const last = buckets[buckets.length - 1];
    const count = fam.samples.find((s) => s.name === `${name}_count`);
    if (last?.labels.le !== "+Inf" || count === undefined || last.value !== count.value) {
      throw new Error(`${name}: the +Inf bucket must equal _count`);
    }
  }
  return families;
}
