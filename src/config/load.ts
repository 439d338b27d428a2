// Read the file, parse it keeping node positions, interpolate ${VAR}, validate it against the
// schema, normalise it, and report every problem at once as FILE:LINE:COL: message.

import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import type { Document, Node as YamlNode, Pair, Scalar, YAMLMap } from "yaml";
import type { ErrorObject, ValidateFunction } from "ajv";
import { ConfigError, type ConfigProblem } from "../errors.js";
import { TRAFFIC, type DesiredState, type Traffic } from "../model.js";
import type { Redactor } from "../redact.js";
import { argumentValueMessage } from "./arguments.js";
import { normalize, type PathProblem, type RawConfig, type Refused } from "./normalize.js";
import { ENV_NAME_SOURCE, prefixProblem } from "../core/naming.js";
import { PERCENT_ENCODE, userinfoSpan } from "./url.js";
import { tlsFileProblems } from "./tls-files.js";
import { QUOTE_IT, SECRET_WITH_SYNTAX, STARTS_WITH_SYNTAX, yamlMessage, yamlReadMessage } from "./yaml-errors.js";

/** Larger files are refused before parsing: a topology of 100,000 services is well under this. */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Deeper YAML is refused: the real shape is 6 levels deep. */
export const MAX_DEPTH = 64;

export type Env = Record<string, string | undefined>;

export interface LoadResult {
  file: string;
  desired: DesiredState;
  /**
   * With passwordsOptional: a warning for each users.NAME.password whose variable is not set,
   * naming the variables and the commands that need them.
   */
  unsetPasswords: string[];
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

const require = createRequire(import.meta.url);
let validator: ValidateFunction | undefined;
let yamlLibrary: typeof import("yaml") | undefined;

/**
 * The YAML library, loaded on first use: a JSON file that holds no problem never needs it.
 * Loading its seventy-odd modules and building a node for every value was about a sixth of a
 * 1,000-service plan's CPU (0.11 s of 0.66 s, measured against reading the same file as JSON).
 */
function yaml(): typeof import("yaml") {
  yamlLibrary ??= require("yaml") as typeof import("yaml");
  return yamlLibrary;
}

function schemaValidator(): ValidateFunction {
  // ajv's standalone code for the schema, generated at build time (scripts/build-validator.mjs):
  // compiling the schema at run time cost more than everything else `topo validate` does.
  validator ??= require("../../schemas/topology.validate.cjs") as ValidateFunction;
  return validator;
}

/** `redactor`, when given, learns every password the file holds, before any problem is thrown. */
export function loadConfig(file: string, env: Env = process.env, redactor?: Redactor, options: LoadOptions = {}): LoadResult {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw problemsError(file, [{ line: 1, col: 1, message: `not a regular file` }]);
    if (st.size > MAX_FILE_BYTES) {
      throw problemsError(file, [{ line: 1, col: 1, message: `file is ${st.size} bytes; topo reads at most ${MAX_FILE_BYTES}` }]);
    }
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file; pass the file with -f FILE" : code === "EACCES" ? "permission denied" : String((e as Error).message);
    throw problemsError(file, [{ line: 1, col: 1, message: why }]);
  }
  const unset = options.passwordsOptional ? new Set<string>() : undefined;
  const desired = parseConfig(text, file, env, redactor, unset);
  return { file, desired, unsetPasswords: [...(unset ?? [])].map((u) => `${u}; plan, apply and export definitions need it`) };
}

/**
 * Parse, validate and normalise a file's text. Throws ConfigError with every problem found. With
 * `unsetPasswords` (LoadOptions' passwordsOptional), a user's password whose variable is unset is
 * added there instead of being a problem.
 */
export function parseConfig(text: string, file: string, env: Env = process.env, redactor?: Redactor, unsetPasswords?: Set<string>): DesiredState {
  const fail = (problems: { line: number; col: number; message: string }[]): never => {
    throw problemsError(file, problems);
  };

  const binary = text.search(/[\u0000-\u0008\u000e-\u001f\ufffd]/);
  if (binary >= 0) {
    const lineOf = text.slice(0, binary).split("\n").length;
    const col = binary - text.lastIndexOf("\n", binary - 1);
    fail([{ line: lineOf, col, message: `file contains binary data (byte ${binary}); a topology is UTF-8 YAML text` }]);
  }
  if (text.trim() === "") fail([{ line: 1, col: 1, message: `file is empty; a topology needs version, clusters and services` }]);

  return fromJson(text, file, env, redactor, unsetPasswords) ?? fromYaml(text, file, env, redactor, unsetPasswords);
}

/**
 * The YAML path: every node keeps its position, so every problem is reported at its line and
 * column. Used for every YAML file, and for a JSON file in which fromJson found a problem.
 */
function fromYaml(text: string, file: string, env: Env, redactor: Redactor | undefined, unsetPasswords?: Set<string>): DesiredState {
  const { isMap, isSeq, LineCounter, parseDocument, visit } = yaml();
  const lc = new LineCounter();
  // A byte order mark is no column an editor shows: the first line counts from after it.
  const bom = text.startsWith("\ufeff") ? 1 : 0;
  const at = (offset: number): { line: number; col: number } => {
    const p = lc.linePos(Math.max(0, offset));
    return p.line === 1 && bom ? { line: 1, col: Math.max(1, p.col - bom) } : p;
  };
  const fail = (problems: { line: number; col: number; message: string }[]): never => {
    throw problemsError(file, problems);
  };

  let doc: Document.Parsed;
  try {
    // merge: YAML 1.1 merge keys (`<<: *conn`), how people share one cluster's settings with another.
    // uniqueKeys: two keys are one when JavaScript names them alike (16 and "16", true and "true"):
    // the library's own test compares values, and toJS() would keep the second silently.
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: sameKey, merge: true });
  } catch (e) {
    // The parser recurses; absurd nesting exhausts the stack before any rule applies.
    fail([{ line: 1, col: 1, message: `cannot parse YAML: ${e instanceof RangeError ? "nesting is too deep" : (e as Error).message}` }]);
    throw e;
  }
  if (doc.errors.length > 0) {
    // ${VAR} unquoted in a flow collection breaks it into a cascade of errors: one problem instead.
    const flow = text.includes("${") ? flowReferences(text) : undefined;
    if (flow?.length) {
      const before = doc.errors.filter((e) => e.pos[0] < (flow[0] as { collection: number }).collection);
      fail([...before.map((e) => ({ ...at(e.pos[0]), message: yamlMessage(e.code, e.message) })), ...flow.map((f) => ({ ...at(f.offset), message: FLOW_REFERENCE }))]);
    }
    fail(
      doc.errors.map((e) => ({
        // A block scalar header's error points past its | or >, at the text that follows.
        ...at(/^Block scalar header/.test(e.message) ? Math.max(text.lastIndexOf("|", e.pos[0]), text.lastIndexOf(">", e.pos[0]), text.lastIndexOf("\n", e.pos[0]) + 1) : e.pos[0]),
        message:
          e.code === "MULTIPLE_DOCS"
            ? `a second YAML document starts here ("---"); topo reads one YAML document per file: remove the "---", or split the file`
            : e.code === "DUPLICATE_KEY"
              ? duplicateKeyMessage(doc, e.pos[0], (o) => at(o).line) ?? yamlMessage(e.code, e.message)
              : yamlMessage(e.code, e.message),
      })),
    );
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
    Collection(_key, node) {
      if (node.anchor) anchors.add(node.anchor);
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
      if ((node.anchor || node.tag) && holdsSecretValue(pathOf())) {
        const start = propsStart(text, ancestors[ancestors.length - 1], node);
        for (let i = unknownTags.length - 1; i >= 0; i--) if ((unknownTags[i] as number) >= start && (unknownTags[i] as number) <= (node.range?.[0] ?? start)) unknownTags.splice(i, 1);
        refuse(node, start, `${displayPath(pathOf())}: ${SECRET_WITH_SYNTAX}`);
        return;
      }
      if (typeof node.value !== "string") return;
      const source = node.value;
      const r = interpolateValue(source, env, pathOf, unsetPasswords);
      if ("errors" in r) {
        for (const { message, index } of r.errors) problems.push({ file, ...at(offsetIn(text, node, index)), message });
        unread.set(node, source);
        node.value = UNINTERPOLATED;
        return;
      }
      node.value = r.value;
      if (source.includes("${")) putIn.set(pathKey(pathOf()), source);
    },
  });

  for (const offset of unknownTags) problems.push({ file, ...at(offset), message: STARTS_WITH_SYNTAX });

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    fail([{ line: 1, col: 1, message: yamlReadMessage((e as Error).message) }]);
  }
  const uninterpolated = pathsOf(data, UNINTERPOLATED);
  for (const [node, source] of unread) node.value = source;
  // Users' passwords and hashes are secrets from here on, whatever else is wrong with the file.
  for (const secret of userSecrets(data)) redactor?.add(secret);

  // The schema, then the cross-checks on what the schema did not refuse: every problem in one run.
  const refusedPaths = [...uninterpolated];
  const validate = schemaValidator();
  if (!validate(data)) {
    for (const err of relevantErrors(validate.errors ?? [])) {
      const path = refusedPath(err);
      // The text of an uninterpolated ${VAR} is no value to judge.
      if (uninterpolated.some((u) => startsWith(path, u))) continue;
      problems.push(schemaProblem(err, doc, at, file, putIn));
      refusedPaths.push(path);
    }
  }
  const { raw, refused } = wellFormed(data as Record<string, unknown>, refusedPaths);
  const { desired, problems: crossProblems } = normalize(raw, refused);
  for (const p of crossProblems) problems.push(namingVariables(placePathProblem(p, doc, at, file, false, text), putIn.get(pathKey(p.path))));
  for (const p of resolveTlsFiles(desired, file)) problems.push(placePathProblem(p, doc, at, file));
  // Before any problem is thrown: nothing printed after this may show them.
  learnPasswords(desired, redactor);
  if (problems.length) throw new ConfigError(sortProblems(problems));
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
  const members = membersOf(data, 0);
  if (members === undefined || members !== separatorsOf(text)) return undefined;
  const interpolated = interpolateData(data, [], env, unsetPasswords);
  if (interpolated === FAILED) return undefined;
  data = interpolated;
  for (const secret of userSecrets(data)) redactor?.add(secret);
  if (!schemaValidator()(data)) return undefined;
  const { raw, refused } = wellFormed(data as Record<string, unknown>, []);
  const { desired, problems } = normalize(raw, refused);
  if (problems.length || resolveTlsFiles(desired, file).length) return undefined;
  learnPasswords(desired, redactor);
  return desired;
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

/** The redactor learns the clusters' passwords (the users' are learnt as soon as the data is read). */
function learnPasswords(desired: DesiredState, redactor: Redactor | undefined): void {
  for (const c of desired.clusters) {
    redactor?.add(c.target.amqp.password);
    redactor?.add(c.target.management.password);
  }
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
 * written, so more colons than members the parse kept means a key given twice.
 */
function separatorsOf(text: string): number {
  let n = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x3a) n++;
  }
  return n;
}

const FAILED = Symbol("failed");

/** ${VAR} in every string value (not in keys), as fromYaml interpolates scalars; FAILED at the first problem. */
function interpolateData(v: unknown, path: Path, env: Env, unsetPasswords?: Set<string>): unknown {
  if (typeof v === "string") {
    if (!v.includes("$")) return v;
    const r = interpolateValue(v, env, () => path, unsetPasswords);
    return "errors" in r ? FAILED : r.value;
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

/** Every string under users.<name>.password and .password_hash, however malformed the rest is. */
function userSecrets(data: unknown): string[] {
  if (!isObject(data) || !isObject(data.users)) return [];
  return Object.values(data.users).flatMap((u) => (isObject(u) ? [u.password, u.password_hash].filter((v): v is string => typeof v === "string") : []));
}

// ---------------------------------------------------------------------------------------------

function problemsError(file: string, ps: { line: number; col: number; message: string }[]): ConfigError {
  return new ConfigError(ps.map((p) => ({ file, ...p })));
}

/**
 * Where the character at `index` of a scalar's value is in the file, when the value is written
 * as it reads up to there (plain, or quoted with no escape before it); else the scalar's start.
 */
function offsetIn(text: string, node: YamlNode, index: number | undefined): number {
  const start = node.range?.[0] ?? 0;
  const value = (node as Scalar).value;
  if (index === undefined || typeof value !== "string") return start;
  const quote = text[start] === '"' || text[start] === "'" ? 1 : 0;
  return text.slice(start + quote, start + quote + index + 2) === value.slice(0, index + 2) ? start + quote + index : start;
}

const FLOW_REFERENCE = `\${...} inside { } or [ ] must be quoted: write "\${NAME}" (or use block style, one key per line), since there YAML reads { and } as a mapping's start and end`;

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
 * The words for a key given twice: the key (unless it looks like a URL, or holds a password) and
 * the line of its first occurrence. Undefined when the duplicate cannot be found.
 */
function duplicateKeyMessage(doc: Document.Parsed, offset: number, lineOf: (o: number) => number): string | undefined {
  const { isScalar, visit } = yaml();
  let message: string | undefined;
  visit(doc, {
    Map(_key, map, ancestors) {
      const i = map.items.findIndex((it: Pair) => (it.key as YamlNode | null)?.range?.[0] === offset);
      if (i < 0) return undefined;
      const key = map.items[i]?.key;
      const first = isScalar(key) ? map.items.slice(0, i).find((it: Pair) => sameKey(it.key, key)) : undefined;
      const firstKey = first?.key as Scalar | undefined;
      const firstAt = firstKey?.range?.[0];
      if (!isScalar(key) || firstKey === undefined || firstAt === undefined) return visit.BREAK;
      const path = yamlPath(ancestors, map).map(String);
      const secret = path.some((p) => p === "password" || p === "password_hash" || p === "url" || p === "management");
      const name = keyName(key.value);
      const hidden = secret || /@|:\/\//.test(`${name ?? ""}${firstKey.source ?? ""}`);
      const shown = hidden ? "a key" : `the key ${JSON.stringify(name)}`;
      // 0x10 then "16": the first is written otherwise, and the reader looks for "16" in vain.
      const written = !hidden && firstKey.source !== undefined && firstKey.source !== name ? `, where YAML reads ${firstKey.source} as ${name}` : "";
      message = `${shown} is given twice in this mapping (first on line ${lineOf(firstAt)}${written}); remove one`;
      return visit.BREAK;
    },
  });
  return message;
}

/**
 * The name JavaScript gives a key YAML read as this value (toJS(): null is "", 16 is "16");
 * undefined for a merge key (<<), which is no name.
 */
function keyName(value: unknown): string | undefined {
  if (typeof value === "symbol") return undefined;
  return value === null || value === undefined ? "" : String(value);
}

/** Whether two keys of one mapping name the same member once read: the parser's uniqueKeys. */
function sameKey(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const { isScalar } = yaml();
  if (!isScalar(a) || !isScalar(b)) return false;
  if (a.value === b.value) return true;
  const name = keyName(a.value);
  return name !== undefined && name === keyName(b.value);
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
  if (!isScalar(key) || typeof key.value === "string" || typeof key.value === "symbol") return undefined;
  const written = key.source ?? "";
  const name = keyName(key.value);
  if (name === written) return undefined;
  if (written === "") return `a key is empty; write the name`;
  const as = key.value === null ? "null (no value)" : typeof key.value === "number" ? `the number ${name}` : typeof key.value === "boolean" ? `the boolean ${name}` : `a ${typeof key.value}`;
  const shown = /@|:\/\//.test(written) ? "this key" : `the key ${written}`;
  return `YAML reads ${shown} as ${as}, not as the text written; put it in quotes (${/@|:\/\//.test(written) ? '"..."' : JSON.stringify(written)}) to mean the text`;
}

/** The values that hold a password: users' passwords and hashes, and the clusters' URLs. */
function holdsSecretValue(path: Path): boolean {
  if (path.length !== 3) return false;
  if (path[0] === "users") return path[2] === "password" || path[2] === "password_hash";
  return path[0] === "clusters" && (path[2] === "url" || path[2] === "management");
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

// ---------------------------------------------------------------------------------------------
// ${VAR}

/** A value that is one reference and nothing else: `${LEN}` or `${LEN:-100}`. */
const WHOLE_VAR = new RegExp(`^\\$\\{(${ENV_NAME_SOURCE})(?::-[^}]*)?\\}$`);

/** Stands in for a value that could not be interpolated, until its places in the data are known. */
const UNINTERPOLATED = Symbol("uninterpolated");

/** Every path at which `data` holds `marker`. */
function pathsOf(data: unknown, marker: unknown, path: Path = [], out: Path[] = []): Path[] {
  if (data === marker) out.push(path);
  else if (Array.isArray(data)) data.forEach((v, i) => pathsOf(v, marker, [...path, i], out));
  else if (isObject(data)) for (const [k, v] of Object.entries(data)) pathsOf(v, marker, [...path, k], out);
  return out;
}

function pathKey(path: Path): string {
  return JSON.stringify(path.map(String));
}

interface SchemaNode {
  type?: string | string[];
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  const?: unknown;
  enum?: unknown[];
  then?: SchemaNode;
  else?: SchemaNode;
  definitions?: Record<string, SchemaNode>;
}
let schemaRoot: SchemaNode | undefined;

/** The types the schema allows at a path (both branches of an if/then/else). */
function schemaTypesAt(path: Path): Set<string> {
  schemaRoot ??= require("../../schemas/topology.schema.json") as SchemaNode;
  const root = schemaRoot;
  const expand = (n: SchemaNode | undefined, seen = 0): SchemaNode[] => {
    if (!n || seen > 8) return [];
    if (n.$ref) return expand(root.definitions?.[n.$ref.replace("#/definitions/", "")], seen + 1);
    return [n, ...expand(n.then, seen + 1), ...expand(n.else, seen + 1)];
  };
  let here = expand(root);
  for (const seg of path) {
    here = here.flatMap((n) => {
      if (typeof seg === "number") return expand(n.items);
      const p = n.properties?.[seg];
      if (p) return expand(p);
      return typeof n.additionalProperties === "object" ? expand(n.additionalProperties) : [];
    });
  }
  // `version: 1` is a const, `x-queue-version: 1 or 2` an enum: their values' types.
  const typeOf = (n: SchemaNode): string[] =>
    n.type !== undefined ? [n.type].flat() : n.const !== undefined ? [typeof n.const] : n.enum !== undefined ? n.enum.map((v) => typeof v) : [];
  return new Set(here.flatMap(typeOf));
}

/**
 * One value's ${VAR}s put in, as both paths interpolate: a value that is exactly one ${VAR} is
 * also typed as the schema wants at its place (environment variables are strings;
 * `x-max-length: ${LEN}` means the number LEN holds). `pathOf` is asked for the value's place
 * only then. With `unsetPasswords` (LoadOptions'
 * passwordsOptional), a users.NAME.password whose only problem is unset variables becomes
 * UNSET_PASSWORD, and the set learns which.
 */
function interpolateValue(
  source: string,
  env: Env,
  pathOf: () => Path,
  unsetPasswords?: Set<string>,
): { errors: VarProblem[] } | { value: string | number | boolean } {
  const r = substitute(source, env, () => (holdsSecretValue(pathOf()) ? displayPath(pathOf()) : undefined));
  if ("errors" in r) {
    if (!unsetPasswords || !r.onlyUnset) return { errors: r.errors };
    const path = pathOf();
    if (!(path.length === 3 && path[0] === "users" && path[2] === "password")) return { errors: r.errors };
    unsetPasswords.add(`${displayPath(path)}: ${r.unset.map((n) => `\${${n}}`).join(", ")} ${r.unset.length === 1 ? "is" : "are"} not set`);
    return { value: UNSET_PASSWORD };
  }
  if (!WHOLE_VAR.test(source)) return r;
  return { value: typedScalar(r.value, schemaTypesAt(pathOf())) ?? r.value };
}

/**
 * The variables a URL as written puts into its user name or password, each once, in order: the
 * references in its user-info (url.ts userinfoSpan) once they are blanked ($$ is no variable).
 */
function userinfoVariables(source: string): string[] {
  const refs = [...source.matchAll(VAR)].filter((m) => m[1] !== undefined);
  // The URL's own marks, with each reference blanked (a :-default may hold "@" or "://").
  let bare = source;
  for (const m of refs) bare = bare.slice(0, m.index) + " ".repeat(m[0].length) + bare.slice((m.index ?? 0) + m[0].length);
  const span = userinfoSpan(bare);
  if (!span) return [];
  const names = new Set<string>();
  for (const m of refs) {
    const name = VAR_NAME.exec(m[1] as string)?.[1];
    if (name && (m.index ?? 0) >= span.start && (m.index ?? 0) < span.end) names.add(name);
  }
  return [...names];
}

/**
 * A URL refused for how its password is written, with ${VAR}s put into its user name or
 * password: the file's text does not show the password, so the message names those variables
 * (never what they hold) and says where to encode it. A variable's value goes in as it is set.
 */
function namingVariables(p: ConfigProblem, source: string | undefined): ConfigProblem {
  if (source === undefined || !p.message.includes(PERCENT_ENCODE)) return p;
  const names = userinfoVariables(source);
  if (!names.length) return p;
  const refs = names.map((n) => `\${${n}}`).join(", ");
  const one = names.length === 1;
  return { ...p, message: `${p.message}; ${refs} ${one ? "goes" : "go"} in as ${one ? "it is" : "they are"} set: percent-encode the password in ${one ? "its" : "the"} value (or in a :-default)` };
}

/** A variable's text as the type the schema wants there, when it reads as one; else undefined. */
function typedScalar(text: string, types: Set<string>): number | boolean | undefined {
  if (types.has("string")) return undefined;
  const t = text.trim();
  if ((types.has("integer") || types.has("number")) && /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(t)) return Number(t);
  if (types.has("boolean") && (t === "true" || t === "false")) return t === "true";
  return undefined;
}

const VAR = /\$\$|\$\{([^}]*)\}|\$\{/g;

/** What a password whose variable is unset stands for, with passwordsOptional. Never sent. */
const UNSET_PASSWORD = "(password variable not set)";

const VAR_NAME = new RegExp(`^(${ENV_NAME_SOURCE})(?::-(.*))?$`, "s");

/** Compose-style interpolation: ${VAR}, ${VAR:-default} (default when unset or empty), $$ for $. */
export function interpolate(value: string, env: Env): { value: string } | { error: string } {
  const r = interpolateAll(value, env);
  return "errors" in r ? { error: r.errors[0] as string } : r;
}

/** interpolate, with every problem of the value rather than the first. */
export function interpolateAll(value: string, env: Env): { value: string } | { errors: string[] } {
  const r = substitute(value, env);
  return "errors" in r ? { errors: r.errors.map((e) => e.message) } : r;
}

/** A problem of a value's ${VAR}s; `index`, where in the value a "${" is not a reference. */
interface VarProblem {
  message: string;
  index?: number;
}

/**
 * interpolateAll, also saying which variables are unset (or empty) without a default, and
 * whether they are the value's only problems (what passwordsOptional lets through). `secretAt`
 * names the value's place when it holds a password (a user's password, a cluster's URL): a
 * "${" there that is no reference may be a piece of the password, so it is never quoted.
 */
function substitute(
  value: string,
  env: Env,
  secretAt: () => string | undefined = () => undefined,
): { value: string } | { errors: VarProblem[]; unset: string[]; onlyUnset: boolean } {
  const errors: VarProblem[] = [];
  const unset = new Set<string>();
  let onlyUnset = true;
  const out = value.replace(VAR, (m, body: string | undefined, index: number) => {
    if (m === "$$") return "$";
    if (body === undefined) {
      onlyUnset = false;
      const where = secretAt();
      errors.push({ message: `${where ? `${where}: ` : ""}unterminated "\${" in value; write \${NAME} or \${NAME:-default} (use $$ for a literal $)`, index });
      return m;
    }
    const parsed = VAR_NAME.exec(body);
    if (!parsed) {
      onlyUnset = false;
      const where = secretAt();
      errors.push({
        message: where
          ? `${where}: the "\${" here starts no variable reference (a name, then } or :-default); write \${NAME} or \${NAME:-default}, or $$ for a literal $`
          : notAReference(body),
        index,
      });
      return m;
    }
    const [, name, fallback] = parsed as unknown as [string, string, string | undefined];
    const v = env[name];
    if (v !== undefined && v !== "") return v;
    if (fallback !== undefined) return fallback;
    unset.add(name);
    errors.push({
      message:
        v === ""
          ? `environment variable ${name} is set but empty, and has no default; give ${name} a value or write \${${name}:-default}`
          : `environment variable ${name} is not set and has no default; export ${name} or write \${${name}:-default}`,
      // Inside a longer value (a URL's password), at its "${"; a value that is only the reference, at the value.
      index: m.length === value.length ? undefined : index,
    });
    return m;
  });
  // Each message once (a variable used twice is one problem), at its first place.
  const seen = new Set<string>();
  const once = errors.filter((e) => !seen.has(e.message) && seen.add(e.message));
  return errors.length ? { errors: once, unset: [...unset], onlyUnset } : { value: out };
}

/**
 * The message for "${...}" that is not a reference. Its text is shown only when it is one word (a
 * mistyped name): anything else may be a default, or a password that happens to hold "${".
 */
function notAReference(body: string): string {
  if (/^\w+$/.test(body)) return `"\${${body}}" is not a variable reference; write \${NAME} or \${NAME:-default}`;
  const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body)?.[0];
  if (name) return `"\${${name}..." is not a variable reference (after the name comes } or :-default); write \${${name}} or \${${name}:-default} (use $$ for a literal $)`;
  return `"\${..." is not a variable reference (it starts with a name); write \${NAME} or \${NAME:-default} (use $$ for a literal $)`;
}

// ---------------------------------------------------------------------------------------------
// What is still well-formed once refused values are taken out

type Path = (string | number)[];

/** The keys and indexes from the document down to a node, as ajv's instancePath names them. */
function yamlPath(ancestors: readonly unknown[], node: unknown): Path {
  const { isPair, isScalar, isSeq } = yaml();
  const chain = [...ancestors, node];
  const out: Path = [];
  for (let i = 0; i < chain.length - 1; i++) {
    const a = chain[i];
    // What a merge key (<<) brings in is read as the mapping's own: no step of the path, nor
    // the index in a list of merged mappings.
    if (isPair(a) && isMergeKey(a.key)) {
      if (isSeq(chain[i + 1])) i++;
    } else if (isPair(a)) out.push(isScalar(a.key) ? String((a.key as Scalar).value) : String(a.key));
    else if (isSeq(a)) out.push(a.items.indexOf(chain[i + 1] as never));
  }
  return out;
}

/** A YAML merge key, `<<`, as the parser marks it (merge: true). */
function isMergeKey(key: unknown): boolean {
  return yaml().isScalar(key) && typeof (key as Scalar).value === "symbol";
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

function startsWith(path: Path, head: Path): boolean {
  return head.length <= path.length && head.every((h, i) => String(h) === String(path[i]));
}

/** The part of the data a schema error refuses: the extra key, the value, or the incomplete object. */
function refusedPath(err: ErrorObject): Path {
  const path = jsonPointerToPath(err.instancePath);
  const params = err.params as Record<string, unknown>;
  if (err.keyword === "additionalProperties") return [...path, String(params.additionalProperty)];
  if (err.keyword === "propertyNames") return [...path, String(params.propertyName)];
  return path;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function removeAt(data: unknown, path: Path): void {
  if (path.length === 0) return;
  let node = data;
  for (const k of path.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(k)] : isObject(node) ? node[String(k)] : undefined;
    if (node === undefined) return;
  }
  const last = path[path.length - 1] as string | number;
  // A hole, not a splice: services[i] keeps its index for the messages that name it.
  if (Array.isArray(node)) delete node[Number(last)];
  else if (isObject(node)) delete node[String(last)];
}

/**
 * The file without the values refused, as normalize reads it, and what was refused: a broken
 * cluster still counts as a known name, a broken service entry is checked only by its name, a
 * kind whose defaults are broken is not resolved, a bad version stops nothing.
 */
function wellFormed(data: Record<string, unknown>, paths: Path[]): { raw: RawConfig; refused: Refused } {
  const at = (head: string) => paths.filter((p) => String(p[0]) === head);
  const clusterNames = isObject(data.clusters) ? Object.keys(data.clusters) : undefined;
  for (const p of paths) removeAt(data, p);

  const clusters = isObject(data.clusters) ? data.clusters : {};
  const readable = Object.fromEntries(Object.entries(clusters).filter(([, c]) => isObject(c) && typeof c.url === "string")) as RawConfig["clusters"];
  const clustersRefused = !clusterNames || at("clusters").some((p) => p.length === 1);

  // How much a refusal takes with it: an argument's value only itself; another setting of a
  // service's queue that queue; the entry itself or its name the whole entry.
  const isKind = (k: unknown): k is Traffic => TRAFFIC.includes(k as Traffic);
  const argumentsRefused: Record<string, string[]> = {};
  const refuseArgument = (key: string, name: string) => (argumentsRefused[key] = [...(argumentsRefused[key] ?? []), name]);
  const brokenQueues = new Set<string>();
  const brokenServices = new Set<number>();
  for (const p of at("services")) {
    if (p.length < 2) continue;
    const i = Number(p[1]);
    if (p.length >= 3 && isKind(p[2])) {
      if (p.length === 5 && p[3] === "arguments") refuseArgument(`${i}.${p[2]}`, String(p[4]));
      else brokenQueues.add(`${i}.${p[2]}`);
    } else brokenServices.add(i);
  }
  const brokenDefaults = new Set<Traffic>();
  for (const p of at("defaults")) {
    if (p.length >= 2 && isKind(p[1]) && p.length === 4 && p[2] === "arguments") refuseArgument(`defaults.${p[1]}`, String(p[3]));
    else if (p.length >= 2 && isKind(p[1])) brokenDefaults.add(p[1]);
    else TRAFFIC.forEach((k) => brokenDefaults.add(k));
  }
  const services: RawConfig["services"] = [];
  if (Array.isArray(data.services)) {
    data.services.forEach((entry: unknown, i) => {
      if (!brokenServices.has(i)) services[i] = entry as RawConfig["services"][number];
      // Pruned down to what the name checks need; a refused name leaves a hole.
      else if (isObject(entry) && typeof entry.name === "string") services[i] = { name: entry.name };
    });
  }
  services.length = Array.isArray(data.services) ? data.services.length : 0;

  // A refused setting of a user refuses that user (its rights would be guessed otherwise).
  const usersRefused = at("users").some((p) => p.length === 1) || (data.users !== undefined && !isObject(data.users));
  const brokenUsers = [...new Set(at("users").filter((p) => p.length >= 2).map((p) => String(p[1])))];
  const raw: RawConfig = {
    version: 1,
    prefix: typeof data.prefix === "string" ? data.prefix : undefined,
    clusters: readable,
    defaults: isObject(data.defaults) ? (data.defaults as RawConfig["defaults"]) : undefined,
    services,
    users: isObject(data.users) ? (data.users as RawConfig["users"]) : undefined,
  };
  const refused: Refused = {
    clusters: clustersRefused || !clusterNames ? "any" : clusterNames,
    prefix: at("prefix").length > 0,
    defaults: [...brokenDefaults],
    services: [...brokenServices],
    queues: [...brokenQueues],
    arguments: argumentsRefused,
    users: usersRefused ? ["*"] : brokenUsers,
  };
  return { raw, refused };
}

// ---------------------------------------------------------------------------------------------
// Schema errors → places and words

/**
 * Drop the noise ajv adds: the "if" of if/then/else, and the inner pattern error of a
 * propertyNames failure (the propertyNames error itself says it better).
 */
function relevantErrors(errors: ErrorObject[]): ErrorObject[] {
  return errors.filter((e) => e.keyword !== "if" && (e as ErrorObject & { propertyName?: string }).propertyName === undefined);
}

function jsonPointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

export function displayPath(path: (string | number)[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out || "(top level)";
}

function schemaProblem(
  err: ErrorObject,
  doc: Document.Parsed,
  at: (o: number) => { line: number; col: number },
  file: string,
  putIn: ReadonlyMap<string, string> = new Map(),
): ConfigProblem {
  const path = jsonPointerToPath(err.instancePath);
  const source = putIn.get(pathKey(path));
  const variable = source === undefined ? undefined : WHOLE_VAR.exec(source)?.[1];
  const where = displayPath(path);
  const params = err.params as Record<string, unknown>;
  let message: string;
  let atKey = false;
  let target = path;
  switch (err.keyword) {
    case "additionalProperties": {
      const extra = String(params.additionalProperty);
      target = [...path, extra];
      atKey = true;
      const known = Object.keys(propertiesAt(err.parentSchema));
      const guess = closest(extra, known);
      const isArgs = path[path.length - 1] === "arguments";
      if (isArgs && extra === "x-queue-type") message = `${where}: set the queue type with type: (classic, quorum, stream), not x-queue-type`;
      else if (isArgs) message = `${where}: unknown queue argument ${shownKey(extra)}${guess ? `; did you mean "${guess}"?` : ""} (RabbitMQ knows: ${known.join(", ")})`;
      else message = `${where}: unknown key ${shownKey(extra)}${guess ? `; did you mean "${guess}"?` : ""} (allowed: ${known.join(", ")})`;
      break;
    }
    case "required":
      message = `${where}: missing required key "${String(params.missingProperty)}"`;
      break;
    case "type": {
      // A services entry is either a name or a mapping (if/then/else in the schema).
      const isServiceEntry = path.length === 2 && path[0] === "services" && typeof path[1] === "number";
      const wanted = isServiceEntry ? "a service name or a mapping with name:" : article(String(params.type));
      const value = valueAt(doc, path);
      message = variable
        ? `${where}: \${${variable}} is ${typeof value === "string" && !holdsSecrets(path) ? JSON.stringify(value) : describeValue(value, path)}, not ${wanted}`
        : `${where}: must be ${wanted}, not ${describeValue(value, path)}${typeHint(String(params.type), value, path)}`;
      break;
    }
    case "minProperties":
    case "minLength":
    case "minItems":
      message = `${where}: must not be empty`;
      break;
    case "enum": {
      const allowed = (params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ");
      const value = describeValue(valueAt(doc, path), path);
      message = variable ? `${where}: \${${variable}} is ${value}, not one of ${allowed}` : `${where}: must be one of ${allowed}, not ${value}`;
      break;
    }
    case "const":
      message = `${where}: must be ${JSON.stringify(params.allowedValue)}`;
      break;
    case "pattern": {
      const value = valueAt(doc, path);
      // The prefix's rule has reasons worth saying (an empty one would own the whole vhost).
      const why = path.length === 1 && path[0] === "prefix" && typeof value === "string" ? prefixProblem(value) : undefined;
      message = `${where}: ${why ?? argumentMessage(err, path, doc) ?? `${holdsSecrets(path) ? "the value" : JSON.stringify(value)} must match ${String(params.pattern)}`}`;
      break;
    }
    case "maximum":
      message = `${where}: ${argumentMessage(err, path, doc) ?? err.message ?? "is too large"}`;
      break;
    case "propertyNames":
      target = [...path, String(params.propertyName)];
      atKey = true;
      // users' names have a rule of their own (RabbitMQ's user names), the clusters' another.
      message =
        path.length === 1 && path[0] === "users"
          ? `${where}: user name ${shownKey(String(params.propertyName))} must be 1 to 128 letters, digits, _ . @ and - (starting with a letter or a digit)`
          : `${where}: name ${shownKey(String(params.propertyName))} must be lowercase letters, digits, - and _ (starting with a letter)`;
      break;
    default:
      message = `${where}: ${err.message ?? "is invalid"}`;
  }
  return placePathProblem({ path: target, message, atKey }, doc, at, file, true);
}

/** The argument table's words for a value the schema refused, when it has better ones than ajv. */
function argumentMessage(err: ErrorObject, path: (string | number)[], doc: Document.Parsed): string | undefined {
  if (path.length < 2 || path[path.length - 2] !== "arguments") return undefined;
  return argumentValueMessage(String(path[path.length - 1]), err.keyword, valueAt(doc, path));
}

function propertiesAt(schema: unknown): Record<string, unknown> {
  const s = schema as { properties?: Record<string, unknown> } | undefined;
  return s?.properties ?? {};
}

/**
 * What to write instead, for the two values YAML 1.2 reads as text where people mean otherwise:
 * yes/no/on/off (booleans in YAML 1.1) and a number in quotes. Never quotes a value that may be secret.
 */
function typeHint(wanted: string, value: unknown, path: (string | number)[]): string {
  if (typeof value !== "string") return "";
  if (wanted === "boolean" && /^(?:y|yes|n|no|on|off)$/i.test(value)) return ` (YAML 1.2 reads yes, no, on and off as text); write true or false`;
  if ((wanted === "integer" || wanted === "number") && /^\s*[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*$/.test(value)) {
    const key = path[path.length - 1];
    return holdsSecrets(path) || typeof key !== "string" ? "; write it without quotes" : `; write it without quotes (${key}: ${value.trim()})`;
  }
  return "";
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describeValue(v: unknown, path: (string | number)[]): string {
  if (v === null || v === undefined) return "empty";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  // A string under clusters, or one that looks like a URL or user@host, may hold a password.
  if (typeof v === "string" && (holdsSecrets(path) || /@|:\/\//.test(v))) return "a string";
  // A users value may be a password given as a number (password: 12345).
  if (path[0] === "users") return typeof v;
  // JSON has no infinity: .inf would be "null".
  if (typeof v === "number" && !Number.isFinite(v)) return Number.isNaN(v) ? ".nan (not a number)" : `${v < 0 ? "-" : ""}.inf (infinity)`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Values under clusters (URLs with passwords) and users (passwords, hashes) are never echoed. */
function holdsSecrets(path: readonly (string | number)[]): boolean {
  return path[0] === "clusters" || path[0] === "users";
}

/** A key as safe to show: one that looks like a URL or user@host may hold a password. */
function shownKey(key: string): string {
  return /@|:\/\//.test(key) ? "(a key not shown, it looks like a URL)" : JSON.stringify(key);
}

/**
 * The node a path names, as toJS() reads the document: through aliases, and into the maps a
 * `<<` merge key brings in, so a problem in shared settings points at the line that holds it.
 */
function nodeAt(doc: Document.Parsed, path: readonly (string | number)[]): YamlNode | undefined {
  const { isAlias, isMap, isSeq } = yaml();
  let node = doc.contents as YamlNode | null | undefined;
  const deref = (n: unknown): YamlNode | undefined => (isAlias(n) ? (n.resolve(doc) as YamlNode | undefined) : (n as YamlNode | undefined)) ?? undefined;
  for (const seg of path) {
    node = deref(node);
    if (isSeq(node)) node = node.items[Number(seg)] as YamlNode | undefined;
    else if (isMap(node)) node = pairIn(doc, node, String(seg), deref)?.value as YamlNode | undefined;
    else return undefined;
  }
  return deref(node);
}

/** The pair of a key in a map, or in what its merge keys bring in (own keys first, then merges in order). */
function pairIn(doc: Document.Parsed, map: YAMLMap, key: string, deref: (n: unknown) => YamlNode | undefined, depth = 0): Pair | undefined {
  const { isMap, isScalar, isSeq } = yaml();
  const own = map.items.find((it: Pair) => isScalar(it.key) && String((it.key as Scalar).value) === key);
  if (own || depth > 8) return own;
  for (const it of map.items) {
    if (!(isScalar(it.key) && typeof (it.key as Scalar).value === "symbol")) continue; // `<<`
    const v = deref(it.value);
    const sources = isSeq(v) ? v.items.map(deref) : [v];
    for (const src of sources) {
      const found = isMap(src) ? pairIn(doc, src, key, deref, depth + 1) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

function valueAt(doc: Document.Parsed, path: (string | number)[]): unknown {
  const { isMap, isScalar, isSeq } = yaml();
  const node = nodeAt(doc, path);
  if (node && isScalar(node)) return (node as Scalar).value;
  if (isMap(node)) return {};
  if (isSeq(node)) return [];
  return node;
}

/** The nearest known name, for "did you mean"; only when it is close. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= Math.max(1, Math.floor(word.length / 4)) ? best : undefined;
}

/**
 * Edits from a to b, where two neighbouring letters swapped count as one (optimal string
 * alignment): "tpye" is one slip from "type", as "typ" is, not two.
 */
function editDistance(a: string, b: string): number {
  let before = Array.from({ length: b.length + 1 }, () => 0);
  let last = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(last[j]! + 1, row[j - 1]! + 1, last[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    before = last;
    last = row;
  }
  return last[b.length]!;
}

/** Find the node a path names (its key, when asked) and turn it into FILE:LINE:COL. */
function placePathProblem(
  p: PathProblem,
  doc: Document.Parsed,
  at: (o: number) => { line: number; col: number },
  file: string,
  messageHasPath = false,
  /** The file's text, to place a problem at p.index of its value. */
  text = "",
): ConfigProblem {
  const { isAlias, isMap } = yaml();
  let offset = 0;
  // Walk down as far as the path exists; a missing key is reported at its parent.
  for (let n = p.path.length; n >= 0; n--) {
    const prefix = p.path.slice(0, n);
    if (p.atKey && n === p.path.length && n > 0) {
      const parent = nodeAt(doc, prefix.slice(0, -1));
      if (isMap(parent)) {
        const deref = (x: unknown): YamlNode | undefined => (isAlias(x) ? (x.resolve(doc) as YamlNode | undefined) : (x as YamlNode | undefined));
        const pair = pairIn(doc, parent as YAMLMap, String(prefix[prefix.length - 1]), deref);
        const keyNode = pair?.key as YamlNode | undefined;
        if (keyNode?.range) {
          offset = keyNode.range[0];
          break;
        }
      }
      continue;
    }
    const node = n === 0 ? (doc.contents as YamlNode | null) : nodeAt(doc, prefix);
    if (node?.range) {
      offset = node.range[0];
      break;
    }
  }
  const message = messageHasPath || p.path.length === 0 ? p.message : `${displayPath(p.path)}: ${p.message}`;
  if (p.index !== undefined) {
    const node = nodeAt(doc, p.path);
    if (node?.range?.[0] === offset) offset = offsetIn(text, node, p.index);
  }
  return { file, ...at(offset), message };
}
