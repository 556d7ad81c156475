/**
 * Reads TypeScript source as text for the purity and layering tests: blanks comments (and
 * literals) so prose cannot trigger a rule, and finds import and export specifiers with their
 * lines. Not a test module itself, so importing it registers no tests.
 *
 * @module
 */
/** File names the scanners read. */
export const SOURCE_EXT = /\.(ts|tsx|mts|cts|js|mjs|cjs|jsx)$/;

/** Source with comments blanked (`code`), and also string and regex literal bodies (`bare`). */
export interface StrippedSource {
  /** Comments replaced by spaces; same length and line breaks as the input. */
  readonly code: string;
  /** Like `code`, with string, template-text and regex bodies replaced by spaces too. */
  readonly bare: string;
}

const REGEX_AFTER_WORD = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "instanceof",
  "yield",
  "await",
]);
const REGEX_AFTER_PUNCT = "(,=:[!&|?{};+-*%<>~^";

/**
 * Blank comments (and, in `bare`, literal text) while keeping every other character in place, so
 * an index into the result is an index into the source. A lexer, not a parser: it tracks strings,
 * template literals with nested `${}` and regex literals well enough for TypeScript source.
 */
export function stripSource(src: string): StrippedSource {
  const code: string[] = [];
  const bare: string[] = [];
  const blank = (ch: string) => (ch === "\n" ? "\n" : " ");
  const keep = (ch: string) => {
    code.push(ch);
    bare.push(ch);
  };
  const literal = (ch: string) => {
    code.push(ch);
    bare.push(blank(ch));
  };
  const comment = (ch: string) => {
    code.push(blank(ch));
    bare.push(blank(ch));
  };
  const templates: number[] = []; // open `${` depth per enclosing template literal
  let prev = ""; // last significant token, to tell a regex literal from a division
  let i = 0;
  const n = src.length;

  // Template text from i up to and including the closing backtick, or up to an opening `${`.
  const templateText = () => {
    while (i < n) {
      const ch = src[i];
      if (ch === "\\") {
        literal(ch);
        if (i + 1 < n) literal(src[i + 1]);
        i += 2;
      } else if (ch === "`") {
        keep(ch);
        i++;
        prev = "`";
        return;
      } else if (ch === "$" && src[i + 1] === "{") {
        keep("$");
        keep("{");
        i += 2;
        templates.push(0);
        prev = "{";
        return;
      } else {
        literal(ch);
        i++;
      }
    }
  };

  while (i < n) {
    const ch = src[i];
    const next = src[i + 1];
    if (ch === "/" && next === "/") {
      while (i < n && src[i] !== "\n") comment(src[i++]);
    } else if (ch === "/" && next === "*") {
      comment(src[i++]);
      comment(src[i++]);
      while (i < n && !(src[i] === "*" && src[i + 1] === "/")) comment(src[i++]);
      if (i < n) {
        comment(src[i++]);
        comment(src[i++]);
      }
    } else if (ch === "'" || ch === '"') {
      keep(ch);
      i++;
      while (i < n && src[i] !== ch && src[i] !== "\n") {
        if (src[i] === "\\" && i + 1 < n) literal(src[i++]);
        literal(src[i++]);
      }
      if (i < n && src[i] === ch) keep(src[i++]);
      prev = '"';
    } else if (ch === "`") {
      keep(ch);
      i++;
      templateText();
    } else if (
      ch === "/" && (prev === "" || REGEX_AFTER_WORD.has(prev) ||
        (prev.length === 1 && REGEX_AFTER_PUNCT.includes(prev)))
    ) {
      keep(ch);
      i++;
      let inClass = false;
      while (i < n && src[i] !== "\n") {
        const c = src[i];
        if (c === "\\" && i + 1 < n) {
          literal(src[i++]);
        } else if (c === "[") {
          inClass = true;
        } else if (c === "]") {
          inClass = false;
        } else if (c === "/" && !inClass) {
          break;
        }
        literal(src[i++]);
      }
      if (i < n && src[i] === "/") keep(src[i++]);
      prev = "/re/";
    } else if (/[\w$]/.test(ch)) {
      let word = "";
      while (i < n && /[\w$]/.test(src[i])) {
        word += src[i];
        keep(src[i++]);
      }
      prev = word;
    } else {
      keep(ch);
      i++;
      if (templates.length > 0 && ch === "{") {
        templates[templates.length - 1]++;
      } else if (templates.length > 0 && ch === "}") {
        if (templates[templates.length - 1] === 0) {
          templates.pop();
          templateText();
          continue;
        }
        templates[templates.length - 1]--;
      }
      if (!/\s/.test(ch)) prev = ch;
    }
  }
  return { code: code.join(""), bare: bare.join("") };
}

/** A module specifier found in source, with the 1-based line it is on. */
export interface Specifier {
  /** The specifier text, or `null` for a dynamic import of a computed value. */
  readonly specifier: string | null;
  /** 1-based line number. */
  readonly line: number;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let k = 0; k < index; k++) if (text.charCodeAt(k) === 10) line++;
  return line;
}

/** Every static, side-effect, re-export, dynamic and `require` specifier in `src`. */
export function findSpecifiers(src: string): Specifier[] {
  const { code, bare } = stripSource(src);
  const found: Specifier[] = [];
  const patterns = [
    /(?<![\w$.])from\s*(["'])([^"'\n]*)\1/g,
    /(?<![\w$.])import\s*(["'])([^"'\n]*)\1/g,
    /(?<![\w$.])import\s*\(\s*(["'`])([^"'`\n$]*)\1\s*[,)]/g,
    /(?<![\w$.])require\s*\(\s*(["'`])([^"'`\n$]*)\1\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const m of code.matchAll(pattern)) {
      // The keyword must be code, not text inside a string literal.
      if (bare[m.index] === " ") continue;
      found.push({ specifier: m[2], line: lineOf(src, m.index) });
    }
  }
  for (const m of bare.matchAll(/(?<![\w$.])import\s*\(/g)) {
    const after = code.slice(m.index + m[0].length).trimStart();
    const literal = /^(["'`])([^"'`\n$]*)\1\s*[,)]/.test(after);
    if (!literal) found.push({ specifier: null, line: lineOf(src, m.index) });
  }
  // Triple-slash directives live in comments, so look at the raw source.
  for (const m of src.matchAll(/^[ \t]*\/\/\/\s*<reference\s+(\w+)\s*=\s*["']([^"']*)["']/gm)) {
    const spec = m[1] === "path" ? m[2] : `${m[1]}:${m[2]}`;
    found.push({ specifier: spec, line: lineOf(src, m.index) });
  }
  return found.sort((a, b) => a.line - b.line);
}

/** Source files under `dir` (relative to `root`, ending in "/"), sorted, without .d.ts files. */
export async function listSources(root: URL, dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(dir, root))) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory) files.push(...await listSources(root, `${path}/`));
    else if (entry.isFile && SOURCE_EXT.test(entry.name) && !entry.name.endsWith(".d.ts")) {
      files.push(path);
    }
  }
  return files.sort();
}
