// Read the file, parse it keeping node positions, interpolate ${VAR}, validate it against the
// schema, normalise it, and report every problem at once as FILE:LINE:COL: message.

import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { Document, LineCounter, Node as YamlNode, Pair, Scalar } from "yaml";
import type { ValidateFunction } from "ajv";
import { ConfigError, formatProblem, TopoError, type ConfigProblem } from "../errors.js";
import { placesOf, type DesiredState } from "../model.js";
import type { Redactor } from "../redact.js";
import { normalize, type PathProblem } from "./normalize.js";
import { interpolateValue, namingVariables, pathsOf, schemaTypesAt, UNINTERPOLATED, userinfoVariables, writesUserinfo, type Env } from "./interpolate.js";
import { literalPasswordWarning, lonePasswordVariable, nameLikePasswords, shownWords } from "./literal-secrets.js";
import { maybeYaml11Number, numberProblem, numberTextProblem } from "./numbers.js";
import { SAVED_PLAN_FORMAT_NAME } from "../core/naming.js";
import { displayPath, holdsSecrets, holdsSecretValue, isMergeKey, isObject, nodeAt, offsetIn, pathKey, placePathProblem, yaml, yamlPath, type Path } from "./places.js";
import { refusedPath, underAny, wellFormed } from "./refused.js";
import { relevantErrors, schemaProblem } from "./schema-errors.js";
import { tlsFileProblems, unusedTls } from "./tls-files.js";
import { userinfoSpan } from "./url.js";
import { tagWarnings } from "./user-tags.js";
import { MAX_ALIAS_COUNT, QUOTE_IT, SECRET_WITH_SYNTAX, STARTS_WITH_SYNTAX, UNCLOSED_FLOW, unclosedFlowAt, yamlMessage, yamlReadMessage } from "./yaml-errors.js";
import { shellPath } from "../core/words.js";
import { packageFile } from "./package-files.js";

export type { Env };

/** Larger files are refused before parsing: a topology of 100,000 services is well under this. */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Deeper YAML is refused: the real shape is 6 levels deep. */
export const MAX_DEPTH = 64;

export interface LoadResult {
  file: string;
  desired: DesiredState;
  /**
   * With passwordsOptional: a warning for each users.NAME.password (or password_hash) and each
   * cluster URL's user-info whose variable is not set, naming the variables and the commands that
   * need them.
   */
  unsetPasswords: string[];
  /** Of those, the clusters' URLs, unworded ("clusters.sync.url: ${PW} is not set"): what a command that connects refuses. */
  unsetUrls: string[];
  /** FILE:LINE:COL: a password written in the file (literal-secrets.ts), each at its place. */
  warnings: string[];
}

export interface LoadOptions {
  /**
   * For the commands that never use a user's password (validate, graph, route, export celery),
   * so they run in a CI job that holds no secrets: a users.NAME.password whose ${VAR} is not set
   * stands for a password and is listed in unsetPasswords, instead of refusing the file. plan,
   * apply and export definitions need the password and refuse.
   */
  passwordsOptional?: boolean;
}

let validator: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  // ajv's standalone code for the schema, generated at build time (scripts/build-validator.mjs):
  // compiling the schema at run time cost more than everything else `topo validate` does.
  validator ??= packageFile<ValidateFunction>("schemas/topology.validate.cjs");
  return validator;
}

/** `redactor`, when given, learns every password the file holds, before any problem is thrown. */
export function loadConfig(file: string, env: Env = process.env, redactor?: Redactor, options: LoadOptions = {}): LoadResult {
  let text: string;
  // An empty name (-f "" from an unset variable) names no file: said so, not ":1:1: no such file".
  if (file === "") throw new TopoError(`-f was given an empty file name (an unset variable in -f "$FILE"?); pass the topology file with -f FILE`);
  try {
    // Read from a file only: its problems are placed by line and column, a saved plan keeps its
    // digest, and plan and apply read it again (a pipe or stdin can be read once).
    const fromAFile = "topo reads the topology from a file: write it to one and pass -f FILE";
    if (file === "-") throw problemsError(file, [{ line: 1, col: 1, message: `"-" is not standard input here; ${fromAFile}` }]);
    const st = statSync(file);
    if (!st.isFile()) throw problemsError(file, [{ line: 1, col: 1, message: st.isDirectory() ? "a directory, not a file; pass the topology file with -f FILE" : `not a regular file (a pipe, a device or a socket); ${fromAFile}` }]);
    if (st.size > MAX_FILE_BYTES) {
      throw problemsError(file, [{ line: 1, col: 1, message: `file is ${st.size} bytes; topo reads at most ${MAX_FILE_BYTES}` }]);
    }
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? // A relative name is read from where topo runs, which in a CI job or a script is not always where the file is.
          `no such file${isAbsolute(file) ? "" : ` in ${process.cwd()}, the directory topo runs in (a relative name is read from there)`}; pass the topology file with -f FILE`
        : code === "EACCES" || code === "EPERM"
          ? "permission denied: the user topo runs as may not read it (ls -l shows who may; chmod or run as its owner)"
          : code === "ELOOP"
            ? "its symbolic links lead round in a loop (ls -l shows where each points); pass the file itself with -f FILE"
            : code === "ENAMETOOLONG"
              ? "the file name is too long for the file system"
              : String((e as Error).message);
    throw problemsError(file, [{ line: 1, col: 1, message: why }]);
  }
  const unset = options.passwordsOptional ? new Set<string>() : undefined;
  const warnings: ConfigProblem[] = [];
  const desired = parseConfig(text, file, env, redactor, unset, warnings);
  const isUrl = (u: string) => u.startsWith("clusters.");
  const need = (u: string) => (isUrl(u) ? "plan, apply, import and route --live connect with it" : "plan, apply and export definitions need it");
  const all = [...(unset ?? [])];
  return { file, desired, unsetPasswords: all.map((u) => `${u}; ${need(u)}`), unsetUrls: all.filter(isUrl), warnings: warnings.map(formatProblem) };
}

/**
 * For a command that connects after loading with passwordsOptional (import, route --live): the
 * clusters' URLs whose user name or password variables are unset stop it, named. `clusters`: the
 * clusters it connects to (all when undefined).
 */
export function refuseUnsetUrls(unsetUrls: readonly string[], file: string, command: string, clusters?: readonly string[]): void {
  const urls = unsetUrls.filter((u) => !clusters || clusters.some((c) => u.startsWith(`clusters.${c}.`)));
  if (!urls.length) return;
  // config_invalid, as plan and apply say of the same unset variable, and each at its place.
  const find = placeFinder(file);
  throw new ConfigError(
    urls.map((u) => {
      const [, cluster, key] = /^clusters\.(.+)\.(url|management):/.exec(u) ?? [];
      const place = cluster !== undefined && key !== undefined ? find(["clusters", cluster, key]) : undefined;
      return { file, line: place?.line ?? 1, col: place?.col ?? 1, message: `${u}, and ${command} connects with it: export the variable, then run it again (a URL's user name or password, never written in the file)` };
    }),
  );
}

/** A line counter for the parser, and the line and column of an offset in the text. */
function lineColumns(text: string): { lc: LineCounter; at: (offset: number) => { line: number; col: number } } {
  const lc = new (yaml().LineCounter)();
  // A byte order mark is no column an editor shows: the first line counts from after it.
  const bom = text.startsWith("\ufeff") ? 1 : 0;
  const at = (offset: number): { line: number; col: number } => {
    const o = Math.min(Math.max(0, offset), text.length);
    const p = lc.linePos(o);
    const col = columnAt(text, o - (p.col - 1), o);
    return p.line === 1 && bom ? { line: 1, col: Math.max(1, col - bom) } : { line: p.line, col };
  };
  return { lc, at };
}

/**
 * The column of `offset` on the line that starts at `lineStart`, in characters as an editor
 * counts them: a character beyond the 16-bit range (an emoji, 😀) is one column, not the two
 * UTF-16 units JavaScript's strings hold it in.
 */
function columnAt(text: string, lineStart: number, offset: number): number {
  let col = offset - lineStart + 1;
  for (let i = lineStart + 1; i < offset; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) {
      const before = text.charCodeAt(i - 1);
      if (before >= 0xd800 && before <= 0xdbff) col--;
    }
  }
  return col;
}

/**
 * Where keys of the file are, as FILE:LINE:COL at the key itself (users.NAME), for problems only
 * the broker reveals once the file has loaded (a user that exists without topo's tag, what the
 * broker cannot do). The file is read again and parsed once, on the first question. Each key's
 * place, or undefined where the file cannot be read or no longer holds the key (then the caller
 * names the key's path). A list's item (services[3], written as a plain name) is placed at the item.
 */
export function placeFinder(file: string): (path: Path) => { file: string; line: number; col: number } | undefined {
  let parsed: { doc: Document.Parsed; at: (offset: number) => { line: number; col: number } } | null | undefined;
  return (path) => {
    try {
      if (parsed === undefined) {
        const text = readFileSync(file, "utf8");
        const { lc, at } = lineColumns(text);
        parsed = { doc: yaml().parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false, merge: true }), at };
      }
    } catch {
      parsed = null;
    }
    if (!parsed || nodeAt(parsed.doc, path) === undefined) return undefined;
    const { line, col } = placePathProblem({ path, message: "", atKey: true }, parsed.doc, parsed.at, file, true);
    return { file, line, col };
  };
}

/**
 * Parse, validate and normalise a file's text. Throws ConfigError with every problem found. With
 * `unsetPasswords` (LoadOptions' passwordsOptional), a user's password whose variable is unset is
 * added there instead of being a problem.
 */
export function parseConfig(text: string, file: string, env: Env = process.env, redactor?: Redactor, unsetPasswords?: Set<string>, warnings?: ConfigProblem[]): DesiredState {
  const fail = (problems: { line: number; col: number; message: string }[]): never => {
    throw problemsError(file, problems);
  };

  const binary = text.search(/[\u0000-\u0008\u000e-\u001f\ufffd]/);
  if (binary >= 0) {
    const lineOf = text.slice(0, binary).split("\n").length;
    const col = columnAt(text, text.lastIndexOf("\n", binary - 1) + 1, binary);
    // The text is decoded already: a byte UTF-8 cannot read is U+FFFD, and the place is a character's.
    const c = text.charCodeAt(binary);
    const what = c === 0xfffd ? "bytes that are not UTF-8 text (binary data, or a file saved as Latin-1 or UTF-16?)" : `the control character U+${c.toString(16).toUpperCase().padStart(4, "0")}${c === 0 ? " (binary data, or a file saved as UTF-16?)" : ""}`;
    fail([{ line: lineOf, col, message: `file contains ${what} here; a topology is UTF-8 YAML text: save it as UTF-8` }]);
  }
  if (text.trim() === "") fail([{ line: 1, col: 1, message: `file is empty; a topology needs version, clusters and services` }]);
  // A carriage return that ends a line alone (classic Mac OS, or a tool that turned every LF into
  // CR): the YAML library read such a file as one line, and its error, at 1:10, was about
  // mappings. Every line of it is line 1 to an editor's line count too. CRLF is read as it is.
  const lone = text.search(/\r(?!\n)/);
  if (lone >= 0) {
    const line = text.slice(0, lone).split("\n").length;
    fail([{ line, col: columnAt(text, text.lastIndexOf("\n", lone - 1) + 1, lone), message: `a line ends here with a carriage return alone (CR, not LF or CRLF), which topo does not read as a line end; save the file with LF (or CRLF) line ends` }]);
  }

  return fromJson(text, file, env, redactor, unsetPasswords) ?? fromYaml(text, file, env, redactor, unsetPasswords, warnings);
}

/**
 * The alias that repeats the most values (the first of them in the file), counting what the
 * aliases inside what it repeats repeat: where a file that grows without end is best shown. Each
 * anchor's size is worked out once, so this stays quick for the file the guard refused.
 */
function largestAlias(doc: Document): { offset: number; name: string; values: number } | undefined {
  const { isAlias, isCollection, isPair, visit } = yaml();
  const sizes = new Map<unknown, number>();
  const sizeOf = (node: unknown, seen: Set<unknown>): number => {
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target || seen.has(target)) return 0;
      let n = sizes.get(target);
      if (n === undefined) {
        seen.add(target);
        n = sizeOf(target, seen);
        seen.delete(target);
        sizes.set(target, n);
      }
      return n;
    }
    if (isPair(node)) return sizeOf(node.key, seen) + sizeOf(node.value, seen);
    if (isCollection(node)) {
      let n = 1;
      for (const item of node.items) n += sizeOf(item, seen);
      return n;
    }
    return node === null || node === undefined ? 0 : 1;
  };
  let best: { offset: number; name: string; values: number } | undefined;
  visit(doc, {
    Alias(_, node) {
      const values = sizeOf(node, new Set());
      if (!best || values > best.values) best = { offset: node.range?.[0] ?? 0, name: node.source, values };
    },
  });
  return best;
}

/** The first character at or after `offset` on its line that is not a space, or `offset`. */
function firstNonSpace(text: string, offset: number): number {
  let i = offset;
  while (text[i] === " ") i++;
  return text[i] === "\n" || text[i] === "\r" || i >= text.length ? offset : i;
}

/**
 * The YAML path: every node keeps its position, so every problem is reported at its line and
 * column. Used for every YAML file, and for a JSON file in which fromJson found a problem.
 */
function fromYaml(text: string, file: string, env: Env, redactor: Redactor | undefined, unsetPasswords?: Set<string>, warnings?: ConfigProblem[], duplicatesSaid = false): DesiredState {
  const { isMap, isSeq, parseDocument, visit } = yaml();
  const { lc, at } = lineColumns(text);
  const fail = (problems: { line: number; col: number; message: string }[]): never => {
    throw problemsError(file, problems);
  };

  let doc: Document.Parsed;
  try {
    // merge: YAML 1.1 merge keys (`<<: *conn`), how people share one cluster's settings with another.
    // uniqueKeys: keys given twice are found below (duplicateKeys), since the parser's own check
    // compares each key with every one before it in its mapping.
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false, merge: true });
  } catch (e) {
    // The parser recurses; absurd nesting exhausts the stack before any rule applies.
    fail([{ line: 1, col: 1, message: `cannot parse YAML: ${e instanceof RangeError ? "nesting is too deep" : (e as Error).message}` }]);
    throw e;
  }
  const twice = duplicatesSaid ? [] : duplicateKeys(doc, text, (o) => at(o).line);
  if (doc.errors.length > 0 || twice.length > 0) {
    const yamlProblems = inOrder(
      doc.errors.map((e) => {
        // A [ or { left open: placed at it, saying where YAML stopped, not only at the line that stopped it.
        const flowEnd = UNCLOSED_FLOW.exec(e.message);
        const opened = flowEnd ? unclosedFlowAt(text, e.pos[0], flowEnd[2] as "]" | "}") : undefined;
        if (opened !== undefined) {
          const stopped = at(e.pos[0]);
          const what = flowEnd?.[2] === "]" ? "list" : "mapping";
          const fix = `close it with ${flowEnd?.[2]} where the ${what} ends`;
          const said = e.pos[0] >= text.trimEnd().length ? `is never closed: the file ends first; ${fix}` : `is not closed before line ${stopped.line}, column ${stopped.col}, where the ${what} it opens must end: ${fix}, or, if it continues on that line, indent that line and every line of it further than the key above it`;
          return { offset: e.pos[0], ...at(opened), message: `YAML: this ${text[opened]} ${said}` };
        }
        return {
          offset: e.pos[0],
          // A block scalar header's error points past its | or >, at the text that follows; a
          // quote left open, at the end of the file, where the reader cannot see which it was.
          // An item indented unlike its siblings, at its first character, not at the spaces before it.
          ...at(/^Block scalar header/.test(e.message) ? Math.max(text.lastIndexOf("|", e.pos[0]), text.lastIndexOf(">", e.pos[0]), text.lastIndexOf("\n", e.pos[0]) + 1) : /^All (mapping|sequence) items must start at the same column/.test(e.message) ? firstNonSpace(text, e.pos[0]) : openQuote(text, e.message, e.pos[0]) ?? e.pos[0]),
          message:
            e.code === "MULTIPLE_DOCS"
              ? `a second YAML document starts here ("---"); topo reads one YAML document per file: remove the "---", or split the file`
              : yamlMessage(e.code, e.message),
        };
      }),
      twice.map((d) => ({ ...d, ...at(d.offset) })),
    );
    const placed = (ps: typeof yamlProblems) => ps.map(({ line, col, message }) => ({ line, col, message }));
    // ${VAR} unquoted in a flow collection breaks it into a cascade of errors: one problem instead.
    const flow = text.includes("${") ? flowReferences(text) : undefined;
    if (flow?.length) {
      const before = yamlProblems.filter((p) => p.offset < (flow[0] as { collection: number }).collection);
      fail([...placed(before), ...flow.map((f) => ({ ...at(f.offset), message: flowReference(text, f.offset) }))]);
    }
    // Only keys given twice: the file still reads (the later one counts), so every other problem
    // is found too, in the same run, and said with them.
    if (doc.errors.length === 0) {
      let rest: ConfigProblem[] = [];
      try {
        // Unset passwords as the first reading takes them (warned of, where validate allows them).
        fromYaml(text, file, env, redactor, unsetPasswords, undefined, true);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        rest = e.problems;
      }
      // Not those placed in a key that no longer counts: their path finds the first of the two,
      // whose value is not the one read (a problem of "20" was placed at 10 and said "10").
      const before = (a: { line: number; col: number }, b: { line: number; col: number }) => a.line < b.line || (a.line === b.line && a.col <= b.col);
      const shadows = twice.flatMap((d) => (d.shadowed ? [[at(d.shadowed[0]), at(d.shadowed[1])] as const] : []));
      const counted = rest.filter((p) => !shadows.some(([from, to]) => before(from, p) && before(p, to)));
      throw new ConfigError(sortProblems([...placed(yamlProblems).map((p) => ({ file, ...p })), ...counted]));
    }
    fail(placed(yamlProblems));
  }
  const depthProblem = tooDeep(doc.contents as YamlNode | null, 0);
  if (depthProblem) fail([{ ...at(depthProblem.range?.[0] ?? 0), message: `nesting deeper than ${MAX_DEPTH} levels; a topology is a few levels deep` }]);

  if (!isMap(doc.contents)) {
    const node = doc.contents as YamlNode | null;
    const what = node === null ? "empty" : isSeq(node) ? "a list" : "a single value";
    fail([{ ...at(node?.range?.[0] ?? 0), message: `the file must be a mapping (version:, clusters:, services:), not ${what}` }]);
  }

  // ${VAR} and ${VAR:-default} in values, each problem at its scalar. A scalar that cannot be
  // interpolated is refused like a value the schema refuses, and the checks go on without it.
  const problems: ConfigProblem[] = [];
  // Marked while the document becomes data, to find every place an alias or merge key takes them.
  const unread = new Map<Scalar, string>();
  // The text of every value with a ${VAR} in it, by its path: a problem found in it later names
  // its variables (a value that is exactly one ${VAR}, when the schema refuses what it became).
  const putIn = new Map<string, string>();
  // An unknown tag (topo knows none) is reported, not read past: `password: !Secret123` is "".
  const unknownTags = doc.warnings.filter((w) => w.code === "TAG_RESOLVE_FAILED" || w.code === "BAD_COLLECTION_TYPE").map((w) => w.pos[0]);
  // An alias is checked here, before toJS() throws at the first one with no anchor (naming it).
  const anchors = new Set<string>();
  const { Scalar: ScalarNode } = yaml();
  const refuse = (node: Scalar, offset: number, message: string) => {
    problems.push({ file, ...at(offset), message });
    unread.set(node, node.value as string);
    node.value = UNINTERPOLATED;
  };
  visit(doc, {
    Pair(_key, pair, ancestors) {
      if (isMergeKey(pair.key)) {
        // toJS() throws at a merge source that is not a mapping, and overflows the stack (or
        // counts an alias bomb) at one that holds the mapping it merges into: said here, at it.
        const bad = mergeProblem(doc, pair.value, [...ancestors, pair]);
        if (bad === undefined) return undefined;
        problems.push({ file, ...at(bad.offset), message: `${displayPath(yamlPath(ancestors, pair))}: ${bad.message}` });
        return visit.REMOVE;
      }
      const problem = keyProblem(pair.key);
      if (problem === undefined) return undefined;
      const keyNode = pair.key as YamlNode;
      problems.push({ file, ...at(keyNode.range?.[0] ?? 0), message: `${displayPath(yamlPath(ancestors, pair))}: ${problem}` });
      // A scalar key goes on as the text written, so nothing else is said about another name;
      // a list or a mapping as a key goes.
      if (!yaml().isScalar(keyNode)) return visit.REMOVE;
      (keyNode as Scalar).value = (keyNode as Scalar).source ?? "";
      return undefined;
    },
    Collection(_key, node, ancestors) {
      if (node.anchor) anchors.add(node.anchor);
      // The YAML library knows !!omap, !!set and !!pairs, and makes of them a Map or a Set that
      // the schema took for an empty mapping: every setting under one was lost unsaid (users:
      // !!omap [...] planned to delete the users it lists). topo reads plain mappings and lists.
      const tag = otherTag(node.tag);
      if (tag === undefined) return undefined;
      const stand = new ScalarNode(null);
      stand.range = node.range;
      refuse(stand, propsStart(text, ancestors[ancestors.length - 1], node), `${displayPath(yamlPath(ancestors, node))}: ${otherTagMessage(tag)}`);
      return stand;
    },
    Alias(_key, node, ancestors) {
      const path = yamlPath(ancestors, node);
      const message = holdsSecretValue(path)
        ? `${displayPath(path)}: ${SECRET_WITH_SYNTAX}`
        : !anchors.has(node.source)
          ? NO_ANCHOR
          : ancestors.includes(node.resolve(doc) as never)
            ? `${displayPath(path)}: ${HOLDS_ITSELF}`
            : undefined;
      if (message === undefined) return;
      // In its place a value that counts as refused, so nothing else is said about it.
      const stand = new ScalarNode(null);
      stand.range = node.range;
      refuse(stand, node.range?.[0] ?? 0, message);
      return stand;
    },
    Scalar(key, node, ancestors) {
      if (node.anchor) anchors.add(node.anchor);
      if (key === "key") return;
      let path: Path | undefined;
      const pathOf = () => (path ??= yamlPath(ancestors, node));
      // !!binary and !!timestamp make bytes and a date of the text: neither is a value topo takes.
      const tag = otherTag(node.tag);
      if (tag !== undefined && !holdsSecretValue(pathOf())) return void refuse(node, propsStart(text, ancestors[ancestors.length - 1], node), `${displayPath(pathOf())}: ${otherTagMessage(tag)}`);
      if ((node.anchor || node.tag) && holdsSecretValue(pathOf())) {
        const start = propsStart(text, ancestors[ancestors.length - 1], node);
        for (let i = unknownTags.length - 1; i >= 0; i--) if ((unknownTags[i] as number) >= start && (unknownTags[i] as number) <= (node.range?.[0] ?? start)) unknownTags.splice(i, 1);
        refuse(node, start, `${displayPath(pathOf())}: ${SECRET_WITH_SYNTAX}`);
        return;
      }
      if (typeof node.value === "number" || (node.type === "PLAIN" && typeof node.value === "string" && maybeYaml11Number(node.value))) {
        const written = node.source ?? String(node.value);
        const types = schemaTypesAt(pathOf());
        const wrong = typeof node.value === "number" ? numberProblem(written, node.value, types, holdsSecrets(pathOf())) : numberTextProblem(written, types);
        if (wrong !== undefined) return void refuse(node, node.range?.[0] ?? 0, `${displayPath(pathOf())}: ${wrong}`);
      }
      if (typeof node.value !== "string") return;
      const source = node.value;
      // A block scalar (| or >) keeps its last line break unless written |- or >-: in a password it
      // was sent as part of it, and a URL was refused as holding a control character in its vhost.
      if ((node.type === "BLOCK_LITERAL" || node.type === "BLOCK_FOLDED") && source.endsWith("\n") && holdsSecretValue(pathOf())) {
        return void refuse(node, propsStart(text, ancestors[ancestors.length - 1], node), `${displayPath(pathOf())}: ${BLOCK_LINE_BREAK}`);
      }
      if (warnings) for (const index of bareDollarNames(source)) warnings.push({ file, ...at(offsetIn(text, node, index)), message: `${displayPath(pathOf())}: ${BARE_DOLLAR}` });
      const r = interpolateValue(source, env, pathOf, unsetPasswords);
      if ("errors" in r) {
        for (const { message, index } of r.errors) problems.push({ file, ...at(offsetIn(text, node, index)), message });
        unread.set(node, source);
        node.value = UNINTERPOLATED;
        return;
      }
      node.value = r.value;
      if (source.includes("${")) putIn.set(pathKey(pathOf()), source);
      const lone = typeof r.value === "string" ? lonePasswordVariable(source, r.value, pathOf()) : undefined;
      if (lone) problems.push({ file, ...at(node.range?.[0] ?? 0), message: `${displayPath(pathOf())}: ${lone}` });
      if (warnings && typeof r.value === "string" && holdsSecretValue(pathOf())) {
        const literal = literalPasswordWarning(source, r.value, pathOf(), env);
        if (literal) warnings.push({ file, ...at(node.range?.[0] ?? 0), message: `${displayPath(pathOf())}: ${literal}` });
      }
    },
  });

  for (const offset of unknownTags) problems.push({ file, ...at(offset), message: STARTS_WITH_SYNTAX });

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const bomb = largestAlias(doc);
    fail([{ ...at(bomb?.offset ?? 0), message: yamlReadMessage((e as Error).message, bomb && { name: bomb.name, values: bomb.values }) }]);
  }
  // A saved plan given as the topology file (topo apply -f plan.json) is JSON that fails the schema
  // at every key: one problem says what it is, and how it is applied.
  if (isObject(data) && data.format === SAVED_PLAN_FORMAT_NAME) {
    fail([{ line: 1, col: 1, message: `this is a plan saved by topo plan -o, not a topology file: apply it with topo apply ${shellPath(file)} (no -f), or print it with topo show ${shellPath(file)}` }]);
  }
  const uninterpolated = pathsOf(data, UNINTERPOLATED);
  for (const [node, source] of unread) node.value = source;
  // Users' passwords and hashes are secrets from here on, whatever else is wrong with the file,
  // and so are the clusters' URLs' passwords, also where a URL does not parse.
  for (const secret of fileSecrets(data)) redactor?.add(secret);

  // The schema, then the cross-checks on what the schema did not refuse: every problem in one run.
  const refusedPaths = [...uninterpolated];
  const validate = schemaValidator();
  if (!validate(data)) {
    const notRead = underAny(uninterpolated);
    for (const err of relevantErrors(validate.errors ?? [])) {
      const path = refusedPath(err, data);
      // The text of an uninterpolated ${VAR} is no value to judge; but a key the schema does not
      // know is wrong whatever its value: "pasword: ${PW}" with PW unset is said as a misspelt key
      // too, not found only once the variable is exported.
      const unknownKey = err.keyword === "additionalProperties" || err.keyword === "propertyNames";
      if (notRead(unknownKey ? path.slice(0, -1) : path)) continue;
      problems.push(schemaProblem(err, doc, at, file, putIn, data));
      refusedPaths.push(path);
    }
  }
  const { raw, refused } = wellFormed(data as Record<string, unknown>, refusedPaths);
  const { desired, problems: crossProblems } = normalize(raw, refused);
  for (const p of crossProblems) problems.push(namingVariables(placePathProblem(p, doc, at, file, false, text), putIn.get(pathKey(p.path))));
  for (const p of resolveTlsFiles(desired, file)) problems.push(placePathProblem(p, doc, at, file));
  const words = shownWords(desired);
  for (const p of nameLikePasswords(desired, userPasswords(data), words)) warnings?.push(placePathProblem(p, doc, at, file));
  for (const p of tagWarnings(data)) warnings?.push(placePathProblem(p, doc, at, file));
  for (const p of unusedTls(desired.clusters.map((c) => c.target))) warnings?.push(placePathProblem(p, doc, at, file, true));
  // Before any problem is thrown: nothing printed after this may show them.
  learnPasswords(desired, redactor, words);
  // A value without a ${VAR} is in the data as written.
  loginVariables(desired, (cluster, key) => putIn.get(pathKey(["clusters", cluster, key])) ?? clusterValue(data, cluster, key));
  if (problems.length) throw new ConfigError(sortProblems(problems), sortProblems(warnings ?? []));
  return desired;
}

/**
 * The JSON path. A topology generated by a script is often JSON, and JSON.parse reads it many
 * times faster than the YAML parser, which builds a node with a position for every value. A
 * position is only needed to report a problem, so at the first problem of any kind this gives up
 * (undefined) and fromYaml reads the file again, finding and placing every problem. JSON is YAML:
 * both paths read the same data (a quoted "<<" is not a YAML merge key), except that JSON.parse
 * keeps the last of a key given twice, where YAML refuses it: a file with a repeated key, or
 * nested deeper than MAX_DEPTH, takes the YAML path too.
 */
export function fromJson(text: string, file: string, env: Env, redactor: Redactor | undefined, unsetPasswords?: Set<string>): DesiredState | undefined {
  if (!/^\s*\{/.test(text)) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  // As written: interpolateData puts the variables in in place.
  const written = isObject(data) && isObject(data.clusters) ? Object.fromEntries(Object.keys(data.clusters).map((c) => [c, { url: clusterValue(data, c, "url"), management: clusterValue(data, c, "management") }])) : {};
  const { separators, plainNumbers } = scanJson(text);
  const members = membersOf(data, 0);
  // A number written 1.0 or 1e3 (numbers.ts), or one JSON.parse rounded, is placed by the YAML path.
  if (members === undefined || members !== separators || !plainNumbers) return undefined;
  const interpolated = interpolateData(data, [], env, unsetPasswords);
  if (interpolated === FAILED) return undefined;
  data = interpolated;
  for (const secret of fileSecrets(data)) redactor?.add(secret);
  if (!schemaValidator()(data)) return undefined;
  const { raw, refused } = wellFormed(data as Record<string, unknown>, []);
  const { desired, problems } = normalize(raw, refused);
  if (problems.length || resolveTlsFiles(desired, file).length) return undefined;
  const words = shownWords(desired);
  // A password that is also a name, or a tag that reaches past the rights or is misspelt, is
  // warned about at its place, which the YAML path finds.
  if (nameLikePasswords(desired, userPasswords(data), words).length || tagWarnings(data).length || unusedTls(desired.clusters.map((c) => c.target)).length) return undefined;
  learnPasswords(desired, redactor, words);
  loginVariables(desired, (cluster, key) => (Object.hasOwn(written, cluster) ? written[cluster]?.[key] : undefined));
  return desired;
}

/** clusters.NAME.KEY of the data, when it is a string. */
function clusterValue(data: unknown, cluster: string, key: string): string | undefined {
  const c = isObject(data) && isObject(data.clusters) ? data.clusters[cluster] : undefined;
  const value = isObject(c) ? c[key] : undefined;
  return typeof value === "string" ? value : undefined;
}

/**
 * Each cluster's hints for a refused login name the ${VAR}s its user name and password are put in
 * from, as well as the key: "check them in clusters.sync.url" sent a deploy job's reader to a file
 * that shows ${SYNC_PASSWORD} and no more, when what was wrong is what the variable holds (which
 * CI secret, which .env line). `sourceOf` gives a URL as written, before its ${VAR}s were put in.
 */
function loginVariables(desired: DesiredState, sourceOf: (cluster: string, key: "url" | "management") => string | undefined): void {
  for (const c of desired.clusters) {
    const url = sourceOf(c.target.name, "url");
    const management = sourceOf(c.target.name, "management");
    const fromUrl = url === undefined ? [] : userinfoVariables(url);
    // The management API logs in with its own URL's user-info when it has one, else with the url's.
    const fromManagement = management !== undefined && writesUserinfo(management) ? userinfoVariables(management) : fromUrl;
    if (!fromUrl.length && !fromManagement.length) continue;
    const what = (names: string[]) => ` and in what ${names.map((n) => `\${${n}}`).join(" and ")} ${names.length === 1 ? "holds" : "hold"} (put in as it is set, percent-encoded where a URL needs it)`;
    const places = placesOf(c.target);
    c.target.places = {
      ...places,
      login: fromUrl.length ? `${places.url}${what(fromUrl)}` : places.url,
      credentials: fromManagement.length ? `${places.credentials}${what(fromManagement)}` : places.credentials,
    };
  }
}

/**
 * TLS files are named relative to the topology file, like every path a config file holds: made
 * absolute in place, with a problem for each that is not there, not readable, or not what its
 * key says (tls-files.ts), so that validate finds it rather than a connection.
 */
function resolveTlsFiles(desired: DesiredState, file: string): PathProblem[] {
  const problems: PathProblem[] = [];
  for (const c of desired.clusters) {
    const tls = c.target.tls;
    for (const field of ["ca", "cert", "key"] as const) {
      const path = tls[field];
      if (path !== undefined) tls[field] = resolve(dirname(file), path);
    }
    for (const p of tlsFileProblems(tls)) problems.push({ path: ["clusters", c.target.name, "tls", p.field], message: p.message });
  }
  return problems;
}

/**
 * The redactor learns the clusters' passwords (the users' are learnt as soon as the data is read),
 * and the words output shows by design, which it does not mask in free text (Redactor.spare).
 */
function learnPasswords(desired: DesiredState, redactor: Redactor | undefined, words: Iterable<string>): void {
  for (const c of desired.clusters) {
    redactor?.add(c.target.amqp.password);
    redactor?.add(c.target.management.password);
  }
  redactor?.spare(words);
}

/** Each user's password as read, by user name. */
function userPasswords(data: unknown): Record<string, string> {
  if (!isObject(data) || !isObject(data.users)) return {};
  const out: Record<string, string> = {};
  for (const [name, u] of Object.entries(data.users)) if (isObject(u) && typeof u.password === "string") out[name] = u.password;
  return out;
}

/** The members of every object in parsed JSON; undefined when nested deeper than MAX_DEPTH. */
function membersOf(v: unknown, depth: number): number | undefined {
  if (typeof v !== "object" || v === null) return 0;
  if (depth > MAX_DEPTH) return undefined;
  const children = Array.isArray(v) ? v : Object.values(v);
  let n = Array.isArray(v) ? 0 : children.length;
  for (const c of children) {
    const m = membersOf(c, depth + 1);
    if (m === undefined) return undefined;
    n += m;
  }
  return n;
}

/**
 * The colons outside strings of a text JSON.parse accepted: exactly one per object member as
 * written, so more colons than members the parse kept means a key given twice. And whether every
 * number is plain digits: no "." or exponent after a digit (true, false and null hold no digit).
 */
function scanJson(text: string): { separators: number; plainNumbers: boolean } {
  let n = 0;
  let plainNumbers = true;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x3a) n++;
    else if ((c === 0x2e || c === 0x65 || c === 0x45) && i > 0 && text.charCodeAt(i - 1) >= 0x30 && text.charCodeAt(i - 1) <= 0x39) plainNumbers = false;
  }
  return { separators: n, plainNumbers };
}

const FAILED = Symbol("failed");

/** ${VAR} in every string value (not in keys), as fromYaml interpolates scalars; FAILED at the first problem. */
function interpolateData(v: unknown, path: Path, env: Env, unsetPasswords?: Set<string>): unknown {
  if (typeof v === "string") {
    if (!v.includes("$") && !holdsSecretValue(path)) return v;
    const r = interpolateValue(v, env, () => path, unsetPasswords);
    if ("errors" in r) return FAILED;
    // A password written in the file is warned about at its place, which the YAML path finds.
    if (typeof r.value === "string" && holdsSecretValue(path) && literalPasswordWarning(v, r.value, path, env)) return FAILED;
    if (typeof r.value === "string" && lonePasswordVariable(v, r.value, path)) return FAILED;
    return r.value;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = interpolateData(v[i], [...path, i], env, unsetPasswords);
      if (x === FAILED) return FAILED;
      v[i] = x;
    }
  } else if (isObject(v)) {
    for (const k of Object.keys(v)) {
      const x = interpolateData(v[k], [...path, k], env, unsetPasswords);
      if (x === FAILED) return FAILED;
      v[k] = x;
    }
  }
  return v;
}

/**
 * The file's secrets as soon as it is read, before the schema and before any URL is parsed: each
 * user's password and hash, and the password of each cluster's `url` and `management` as written
 * after ${VAR} interpolation (learnPasswords adds the parsed ones). A URL that does not parse (a
 * "/" or "#" left unencoded in its password, a bad port) gives its cluster no password to learn,
 * and the same ${VAR} used elsewhere in the file would be shown in that value's problem.
 */
function fileSecrets(data: unknown): string[] {
  if (!isObject(data)) return [];
  const users = isObject(data.users) ? Object.values(data.users).flatMap((u) => (isObject(u) ? [u.password, u.password_hash] : [])) : [];
  const urls = isObject(data.clusters) ? Object.values(data.clusters).flatMap((c) => (isObject(c) ? [c.url, c.management] : [])) : [];
  return [...users.filter((v): v is string => typeof v === "string"), ...urls.flatMap((u) => (typeof u === "string" ? writtenUrlPassword(u) : []))];
}

/** A URL's password as written (from its user-info's first ":"), and decoded when it decodes. */
function writtenUrlPassword(url: string): string[] {
  const span = userinfoSpan(url);
  const userinfo = span ? url.slice(span.start, span.end) : "";
  const colon = userinfo.indexOf(":");
  if (colon < 0) return [];
  const password = userinfo.slice(colon + 1);
  try {
    return [password, decodeURIComponent(password)];
  } catch {
    return [password];
  }
}

// ---------------------------------------------------------------------------------------------

function problemsError(file: string, ps: { line: number; col: number; message: string }[]): ConfigError {
  return new ConfigError(ps.map((p) => ({ file, ...p })));
}

/** ${VAR} unquoted inside { } or [ ]: the words, with the reference as written at `offset` (its name, never a value). */
function flowReference(text: string, offset: number): string {
  // Not its default, which may be a password: "${PW:-...}".
  const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-)?/.exec(text.slice(offset));
  const ref = m ? `\${${m[1]}${m[2] ? `${m[2]}...` : ""}}` : "${NAME}";
  return `\${...} inside { } or [ ] must be quoted: write "${ref}" (or use block style, one key per line), since there YAML reads { and } as a mapping's start and end`;
}

/**
 * Every "${" outside quotes inside a flow collection ({ } or [ ]), where YAML reads its "{" as a
 * mapping: where it is, and where its outermost collection starts. The lexer tells a flow
 * indicator from a "{" inside a plain scalar ("a{b}" is one token) and from quoted text.
 */
function flowReferences(text: string): { offset: number; collection: number }[] {
  const out: { offset: number; collection: number }[] = [];
  let offset = 0;
  let depth = 0;
  let collection = 0;
  let previous: { token: string; offset: number } | undefined;
  for (const token of new (yaml().Lexer)().lex(text)) {
    // The lexer's markers of document, scalar and flow end are not text of the file.
    if (token === "\x02" || token === "\x18" || token === "\x1f") continue;
    if (token === "{" && depth > 0 && previous?.token.endsWith("$")) out.push({ offset: previous.offset + previous.token.length - 1, collection });
    if (token === "{" || token === "[") {
      if (depth === 0) collection = offset;
      depth++;
    } else if ((token === "}" || token === "]") && depth > 0) depth--;
    previous = { token, offset };
    offset += token.length;
  }
  return out;
}

/**
 * Every key given twice in one mapping, at the second (and each later) one, with the words for
 * it: the key (unless it looks like a URL, or holds a password) and the line of its first
 * occurrence. Two keys are one when JavaScript names them alike (16 and "16", true and "true"):
 * the parser's own check (uniqueKeys) compares values, and toJS() would keep the second silently.
 * Each mapping's keys are indexed once: the parser's check compares every key with each one before
 * it, minutes for a mapping of 10,000 users.
 */
function duplicateKeys(doc: Document.Parsed, text: string, lineOf: (o: number) => number): { offset: number; message: string; shadowed?: [number, number] }[] {
  const { isScalar, visit } = yaml();
  const out: { offset: number; message: string; shadowed?: [number, number] }[] = [];
  visit(doc, {
    Map(_key, map, ancestors) {
      const seen = new Map<string, Scalar>();
      /** Each first occurrence's value, from its start to its end. */
      const values = new Map<string, [number, number]>();
      for (const { key, value } of map.items as Pair[]) {
        // A list or a mapping as a key is refused on its own (keyProblem); it names nothing.
        if (!isScalar(key)) continue;
        // A merge key (<<) is no name: two of them merge both, as the parser's check lets them.
        const name = keyName(key.value);
        if (name === undefined) continue;
        const firstKey = seen.get(name);
        if (firstKey === undefined) {
          seen.set(name, key);
          const r = (value as YamlNode | null)?.range;
          if (r) values.set(name, [r[0], r[1]]);
          continue;
        }
        const path = yamlPath(ancestors, map).map(String);
        // Inside a cluster's or a user's section, a key that is no plain key name may be a piece of
        // a password a slip made a key (schema-errors.ts SECRET_KEY).
        const secret = path.some((p) => p === "password" || p === "password_hash" || p === "url" || p === "management") || (holdsSecrets(path) && path.length >= 2 && !/^[a-z_]+$/.test(name));
        const hidden = secret || /@|:\/\//.test(`${name}${firstKey.source ?? ""}`);
        const shown = hidden ? "a key" : `the key ${JSON.stringify(name)}`;
        // 0x10 then "16": the first is written otherwise, and the reader looks for "16" in vain.
        const written = !hidden && firstKey.source !== undefined && firstKey.source !== name ? `, where YAML reads ${firstKey.source} as ${name}` : "";
        // An empty key (": 2") is placed at its ":", as the parser places it.
        const start = key.range?.[0] ?? 0;
        const offset = key.range && start === key.range[1] ? Math.max(start, text.indexOf(":", start)) : start;
        out.push({
          offset,
          message: `${shown} is given twice in this mapping (first on line ${lineOf(firstKey.range?.[0] ?? 0)}${written}); remove one`,
          // The value that no longer counts: what is read is the later one. (A problem of the
          // first key itself, 0x10 read as 16, is its own.)
          shadowed: values.get(name),
        });
      }
      return undefined;
    },
  });
  // Mappings are visited outside in; the problems are told in the order of the file.
  return out.sort((a, b) => a.offset - b.offset);
}

/**
 * Where the quote opens that the parser found never closed ("Missing closing "quote", which it
 * places at the end of the file): the last quote of that kind before there that no backslash
 * escapes (double quotes) or that is not one of a doubled pair (single quotes), since a quoted
 * value that never closes runs to the end and holds none. Undefined for any other error.
 */
function openQuote(text: string, message: string, end: number): number | undefined {
  const m = /^Missing closing (["'])quote/.exec(message);
  if (!m) return undefined;
  const q = m[1] as string;
  for (let i = Math.min(end, text.length) - 1; i >= 0; i--) {
    if (text[i] !== q) continue;
    if (q === '"') {
      let slashes = 0;
      for (let j = i - 1; j >= 0 && text[j] === "\\"; j--) slashes++;
      if (slashes % 2 === 0) return i;
    } else if (text[i - 1] === "'") i--;
    else return i;
  }
  return undefined;
}

/** Two lists, each in the order of its offsets, as one in that order; at one offset, `a`'s first. */
function inOrder<T extends { offset: number }>(a: T[], b: T[]): T[] {
  const out: T[] = [];
  let j = 0;
  for (const x of a) {
    while (j < b.length && b[j]!.offset < x.offset) out.push(b[j++]!);
    out.push(x);
  }
  return out.concat(b.slice(j));
}

/**
 * The name JavaScript gives a key YAML read as this value (toJS(): null is "", 16 is "16");
 * undefined for a merge key (<<), which is no name.
 */
function keyName(value: unknown): string | undefined {
  if (typeof value === "symbol") return undefined;
  return value === null || value === undefined ? "" : String(value);
}

/**
 * What is wrong with a key, if anything. Every key of a topology is a name, and YAML reads a
 * plain 007, 0x10, 1e3, True or ~ as a number, a boolean or null, which JavaScript then names
 * "7", "16", "1000", "true" or "": a user written 007 would be made as user 7. A key that reads
 * back as written (16, true) is that name; a list or a mapping is no name at all.
 */
function keyProblem(key: unknown): string | undefined {
  const { isAlias, isMap, isScalar, isSeq } = yaml();
  if (isSeq(key) || isMap(key) || isAlias(key)) {
    return `a key must be a name, not ${isSeq(key) ? "a list" : isMap(key) ? "a mapping" : "an alias (*name)"}; write the name as text`;
  }
  // ${VAR} is read in values only: a key is the name as written (a cluster's, a user's).
  if (isScalar(key) && typeof key.value === "string" && /\$\{/.test(key.value)) return `\${...} is read in values only, not in keys: write the name itself`;
  if (!isScalar(key) || typeof key.value === "string" || typeof key.value === "symbol") return undefined;
  const written = key.source ?? "";
  const name = keyName(key.value);
  if (name === written) return undefined;
  if (written === "") return `a key is empty; write the name`;
  const as = key.value === null ? "null (no value)" : typeof key.value === "number" ? `the number ${name}` : typeof key.value === "boolean" ? `the boolean ${name}` : `a ${typeof key.value}`;
  const shown = /@|:\/\//.test(written) ? "this key" : `the key ${written}`;
  return `YAML reads ${shown} as ${as}, not as the text written; put it in quotes (${/@|:\/\//.test(written) ? '"..."' : JSON.stringify(written)}) to mean the text`;
}

/**
 * Where a value's anchor or tag starts: after its key's ":" (they come before the value's own
 * range); the value's start when that cannot be found.
 */
function propsStart(text: string, parent: unknown, node: YamlNode): number {
  const valueStart = node.range?.[0] ?? 0;
  const keyEnd = (yaml().isPair(parent) ? (parent.key as YamlNode | null)?.range?.[1] : undefined) ?? valueStart;
  const colon = text.indexOf(":", keyEnd);
  if (colon < 0 || colon >= valueStart) return valueStart;
  const m = /[&!]/.exec(text.slice(colon + 1, valueStart));
  return m ? colon + 1 + m.index : valueStart;
}

function formatKey(p: ConfigProblem): string {
  return `${p.line}:${p.col}:${p.message}`;
}

/** By place, each once: a rule broken in defaults is found once per service that inherits it. */
function sortProblems(ps: ConfigProblem[]): ConfigProblem[] {
  const unique = new Map(ps.map((p) => [formatKey(p), p]));
  return [...unique.values()].sort((a, b) => a.line - b.line || a.col - b.col);
}

function tooDeep(node: YamlNode | null, depth: number): YamlNode | undefined {
  const { isMap, isPair, isSeq } = yaml();
  if (!node) return undefined;
  if (depth > MAX_DEPTH) return node;
  if (isMap(node) || isSeq(node)) {
    for (const item of node.items as unknown[]) {
      const child = isPair(item) ? (item.value as YamlNode | null) : (item as YamlNode | null);
      const deep = tooDeep(child, depth + 1);
      if (deep) return deep;
    }
  }
  return undefined;
}

/**
 * The tags the YAML library resolves (so no warning says so) to something other than the core
 * schema's values. Any other tag it cannot resolve, and says so (unknownTags above).
 */
const OTHER_TAGS = new Set(["omap", "pairs", "set", "binary", "timestamp"].map((t) => `tag:yaml.org,2002:${t}`));

/** Such a tag, shown as written (!!omap); undefined for any other. */
function otherTag(tag: string | undefined): string | undefined {
  return tag !== undefined && OTHER_TAGS.has(tag) ? `!!${tag.slice("tag:yaml.org,2002:".length)}` : undefined;
}

function otherTagMessage(tag: string): string {
  const plain = tag === "!!omap" || tag === "!!pairs" ? " (as a plain mapping: key: value lines)" : "";
  return `the tag ${tag} makes YAML read this as something other than text, a number, true/false, a mapping or a list, the only values a topology file holds, so what it holds would be lost: write it without the tag${plain}`;
}

const BLOCK_LINE_BREAK = `a block scalar (| or >) keeps its last line break, which would be part of the value: write |- or >- to leave it out, or put the value on the line of its key`;
const BARE_DOLLAR = `a $ followed by a name is not read as a variable: topo reads \${NAME} (and \${NAME:-default}); if the $ is part of the value, write it $$, which reads as one $`;

/** Where a value written as it is has "$" then a name (not "$$", not "\${"): meant as a variable, it is not one. */
function bareDollarNames(source: string): number[] {
  const out: number[] = [];
  for (const m of source.matchAll(/\$\$|\$\{|\$([A-Za-z_][A-Za-z0-9_]*)/g)) if (m[1] !== undefined) out.push(m.index ?? 0);
  return out;
}

const NO_ANCHOR = `YAML reads this value as an alias (*name), and no anchor (&name) of that name is set before it; ${QUOTE_IT}`;
const HOLDS_ITSELF = `this alias (*name) is inside the node its anchor names, so it would hold itself; YAML cannot read that: write the values out`;
const MERGE_TAKES = `a merge key (<<) takes a mapping, an alias of one (<<: *name) or a list of them ([*a, *b])`;

/**
 * What is wrong with a merge key's value, and where: each source must be a mapping (or an alias
 * of one) that does not hold the merge key itself. `chain` is the merge key's pair and what holds it.
 */
function mergeProblem(doc: Document.Parsed, value: unknown, chain: readonly unknown[]): { offset: number; message: string } | undefined {
  const { isAlias, isMap, isSeq } = yaml();
  const check = (v: unknown, inList: boolean): { offset: number; message: string } | undefined => {
    const offset = (v as YamlNode | null)?.range?.[0] ?? (chain[chain.length - 1] as Pair<YamlNode>).key?.range?.[0] ?? 0;
    const source = isAlias(v) ? (v.resolve(doc) as unknown) : v;
    if (isAlias(v) && source !== undefined && chain.includes(source)) return { offset, message: HOLDS_ITSELF };
    if (isMap(source)) return undefined;
    if (isAlias(v) && source === undefined) return { offset, message: NO_ANCHOR };
    if (isSeq(source) && !inList) {
      for (const item of source.items) {
        const bad = check(item, true);
        if (bad) return bad;
      }
      return undefined;
    }
    const what = isSeq(source) ? "a list" : source === null || source === undefined || (source as Scalar).value === null ? "empty" : "a single value";
    return { offset, message: `${MERGE_TAKES}, not ${what}` };
  };
  return check(value, false);
}
