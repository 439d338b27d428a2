// Places in the file: a path of keys and indexes (as ajv's instancePath names a value), how a
// message shows it, and where it is in the YAML document, as FILE:LINE:COL. It holds the one
// handle on the YAML library, loaded on first use, that finding a place needs.

import { createRequire } from "node:module";
import type { Document, Node as YamlNode, Pair, Scalar, YAMLMap, YAMLSeq } from "yaml";
import type { ConfigProblem } from "../errors.js";
import type { PathProblem } from "./normalize.js";

const require = createRequire(import.meta.url);
let yamlLibrary: typeof import("yaml") | undefined;

/**
 * The YAML library, loaded on first use: a JSON file that holds no problem never needs it.
 * Loading its seventy-odd modules and building a node for every value was about a sixth of a
 * 1,000-service plan's CPU (0.11 s of 0.66 s, measured against reading the same file as JSON).
 */
export function yaml(): typeof import("yaml") {
  yamlLibrary ??= require("yaml") as typeof import("yaml");
  return yamlLibrary;
}

export type Path = (string | number)[];

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function pathKey(path: Path): string {
  return JSON.stringify(path.map(String));
}

/**
 * An ajv instancePath as a path: a step into a list is its index, a step into a mapping its key,
 * as text, also when it is digits (a user "008", whose key is no index: as 8 it named no key of
 * the file, and its problems were placed at the mapping and said of users[8]). `data`, what ajv
 * judged, tells the one from the other; without it, digits written as a number writes them are
 * an index.
 */
export function jsonPointerToPath(pointer: string, data?: unknown): (string | number)[] {
  if (!pointer) return [];
  let node = data;
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => {
      const index = data === undefined ? /^(?:0|[1-9]\d*)$/.test(s) : Array.isArray(node);
      const step = index && /^\d+$/.test(s) ? Number(s) : s;
      node = Array.isArray(node) ? node[Number(s)] : isObject(node) ? node[s] : undefined;
      return step;
    });
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

/** The values that hold a password: users' passwords and hashes, and the clusters' URLs. */
export function holdsSecretValue(path: Path): boolean {
  if (path.length !== 3) return false;
  if (path[0] === "users") return path[2] === "password" || path[2] === "password_hash";
  return path[0] === "clusters" && (path[2] === "url" || path[2] === "management");
}

/** Values under clusters (URLs with passwords) and users (passwords, hashes) are never echoed. */
export function holdsSecrets(path: readonly (string | number)[]): boolean {
  return path[0] === "clusters" || path[0] === "users";
}

/** The keys and indexes from the document down to a node, as ajv's instancePath names them. */
export function yamlPath(ancestors: readonly unknown[], node: unknown): Path {
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
    else if (isSeq(a)) out.push(indexIn(a, chain[i + 1]));
  }
  return out;
}

/**
 * Each list's items by node, and each map's pairs by key (the first of each name, as a search
 * from the start finds it), built on the first question: a path is worked out for every number
 * in the file and every problem is placed, and a search of a list of 10,000 services, or of
 * 10,000 users, for each made validate of such a file take a minute and a half. An index that no
 * longer matches its node is built again.
 */
const itemIndexes = new WeakMap<YAMLSeq, Map<unknown, number>>();
const pairIndexes = new WeakMap<YAMLMap, { length: number; pairs: Map<string, { pair: Pair; at: number }> }>();

/** Where `item` is in `seq`, or -1 (the index is checked at its answer, and built again when wrong). */
function indexIn(seq: YAMLSeq, item: unknown): number {
  const find = (fresh: boolean): number | undefined => {
    let index = itemIndexes.get(seq);
    if (!index || fresh) {
      index = new Map();
      seq.items.forEach((it, i) => index!.has(it) || index!.set(it, i));
      itemIndexes.set(seq, index);
    }
    const i = index.get(item);
    return i !== undefined && seq.items[i] === item ? i : undefined;
  };
  return find(false) ?? find(true) ?? -1;
}

/**
 * The pair of `map` whose key names `key` (its scalar value as text): the last, where a key is
 * given twice, as YAML reads the later one. A key the index does not hold is searched for (a key
 * renamed, or a pair replaced, since it was built), and the index built again when that finds
 * it; removing or adding a pair builds it again too.
 */
function ownPair(map: YAMLMap, key: string): Pair | undefined {
  const { isScalar } = yaml();
  const name = (pair: Pair) => (isScalar(pair.key) ? String((pair.key as Scalar).value) : undefined);
  const build = () => {
    const pairs = new Map<string, { pair: Pair; at: number }>();
    map.items.forEach((pair: Pair, at) => {
      const k = name(pair);
      // A key given twice names the later pair: its value is the one read (the first is said
      // to be shadowed), so what is wrong with it is placed there, not at the first.
      if (k !== undefined) pairs.set(k, { pair, at });
    });
    const index = { length: map.items.length, pairs };
    pairIndexes.set(map, index);
    return index;
  };
  let index = pairIndexes.get(map);
  if (!index || index.length !== map.items.length) index = build();
  const found = index.pairs.get(key);
  if (found && map.items[found.at] === found.pair && name(found.pair) === key) return found.pair;
  let searched: Pair | undefined;
  for (let i = map.items.length - 1; i >= 0 && !searched; i--) if (name(map.items[i] as Pair) === key) searched = map.items[i] as Pair;
  if (searched || found) build();
  return searched;
}

/** A YAML merge key, `<<`, as the parser marks it (merge: true). */
export function isMergeKey(key: unknown): boolean {
  return yaml().isScalar(key) && typeof (key as Scalar).value === "symbol";
}

/**
 * Where the character at `index` of a scalar's value is in the file, when the value is written
 * as it reads up to there (plain, or quoted with no escape before it); else the scalar's start.
 */
export function offsetIn(text: string, node: YamlNode, index: number | undefined): number {
  const start = node.range?.[0] ?? 0;
  const value = (node as Scalar).value;
  if (index === undefined || typeof value !== "string") return start;
  const quote = text[start] === '"' || text[start] === "'" ? 1 : 0;
  return text.slice(start + quote, start + quote + index + 2) === value.slice(0, index + 2) ? start + quote + index : start;
}

/**
 * The node a path names, as toJS() reads the document: through aliases, and into the maps a
 * `<<` merge key brings in, so a problem in shared settings points at the line that holds it.
 */
export function nodeAt(doc: Document.Parsed, path: readonly (string | number)[], asWritten = false): YamlNode | undefined {
  const { isAlias, isMap, isSeq } = yaml();
  let node = doc.contents as YamlNode | null | undefined;
  const deref = (n: unknown): YamlNode | undefined => (isAlias(n) ? (n.resolve(doc) as YamlNode | undefined) : (n as YamlNode | undefined)) ?? undefined;
  for (const seg of path) {
    node = deref(node);
    if (isSeq(node)) node = node.items[Number(seg)] as YamlNode | undefined;
    else if (isMap(node)) node = pairIn(doc, node, String(seg), deref)?.value as YamlNode | undefined;
    else return undefined;
  }
  // asWritten: an alias at the end is itself, where the value is used, not its anchor.
  return asWritten && isAlias(node) ? (node as unknown as YamlNode) : deref(node);
}

/** The pair of a key in a map, or in what its merge keys bring in (own keys first, then merges in order). */
function pairIn(doc: Document.Parsed, map: YAMLMap, key: string, deref: (n: unknown) => YamlNode | undefined, depth = 0): Pair | undefined {
  const { isMap, isScalar, isSeq } = yaml();
  const own = ownPair(map, key);
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

export function valueAt(doc: Document.Parsed, path: (string | number)[]): unknown {
  const { isMap, isScalar, isSeq } = yaml();
  const node = nodeAt(doc, path);
  if (node && isScalar(node)) return (node as Scalar).value;
  if (isMap(node)) return {};
  if (isSeq(node)) return [];
  return node;
}

/** Find the node a path names (its key, when asked) and turn it into FILE:LINE:COL. */
export function placePathProblem(
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
    // A list's item has no key: it is placed at the item itself.
    if (p.atKey && n === p.path.length && n > 0 && isMap(nodeAt(doc, prefix.slice(0, -1)))) {
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
    // A problem of a value an alias gives is placed at the alias: a service given twice with *s
    // is a duplicate where *s stands, not where its anchor does.
    const node = n === 0 ? (doc.contents as YamlNode | null) : nodeAt(doc, prefix, n === p.path.length);
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
