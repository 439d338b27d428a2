// Pure: an import's inference → the text of a topology file. Values go through the yaml library
// (so a string "100" stays a string and 100 a number); what the file cannot describe becomes the
// comment at its top, in the words `topo plan` will print.

import { Document, isNode, Pair, visit, type YAMLMap, type YAMLSeq } from "yaml";
import type { RawQueueSettings, RawService } from "../config/normalize.js";
import { renderAction } from "../plan/render.js";
import { escapeUnsafe, holdsUnsafe, names } from "../core/words.js";
import type { ClusterImport, Inference } from "./infer.js";
import type { ImportedUser } from "./users.js";

export const DEFAULT_SCHEMA_LINE = "yaml-language-server: $schema=./schemas/topology.schema.json";

export interface EmitInput {
  inference: Inference;
  /**
   * Each cluster's section, in order: a yaml node copied from the user's file (its comments and
   * ${VAR} references kept) or plain data. Written as given: the caller has made sure neither
   * holds a password.
   */
  clusters: { name: string; section: unknown }[];
  /** The first comment line, e.g. "yaml-language-server: $schema=./schemas/topology.schema.json". */
  schemaLine?: string;
  /** A `$schema:` key to keep from the user's file. */
  schemaKey?: string;
  /** Said right after the first lines, e.g. that a password written in a file became a variable. */
  notices?: string[];
  /** Applied to every comment line: comments quote names and values the broker holds. */
  redact?: (s: string) => string;
  /** The users section, when the brokers hold users topo marked. */
  users?: ImportedUser[];
}

/** Settings that fit on a line are written { like: this }, as in the docs; longer ones as blocks. */
const FLOW_MAX = 100;

/**
 * topo interpolates ${VAR} in every string value it reads, so a `$` from the broker (an
 * x-dead-letter-exchange named "a$b") is written `$$`, which topo reads back as one `$`.
 */
function escapeDollars<T>(value: T): T {
  if (typeof value === "string") return value.replace(/\$/g, "$$$$") as T;
  if (Array.isArray(value)) return value.map(escapeDollars) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeDollars(v)])) as T;
  }
  return value;
}

/**
 * A YAML parser ends a comment at \n or \r (and YAML 1.1 ones at NEL, LS and PS too); a name
 * from the broker holding one would start a line of YAML. Every such character is shown escaped.
 */
function safeComment(line: string): string {
  return escapeUnsafe(line);
}

/**
 * Control and format characters: a line break ends a comment, and one that shows nothing (a tab
 * in a plain scalar, a bidirectional override U+202E) makes a line read otherwise in review, or,
 * written raw, a file PyYAML refuses. Comments show them escaped (escapeUnsafe); a value that
 * holds one (holdsUnsafe) is written double-quoted, where YAML reads the same \uXXXX escape as
 * the character, which the library leaves raw in such a value for these (UNSEEN_RAW).
 */
const UNSEEN_RAW = /[\u0080-\u009f\p{Cf}\u2028\u2029]/gu;

function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** Break prose at spaces so comment lines stay readable; `indent` starts every continuation line. */
function wrap(text: string, first: string, indent: string, width = 100): string[] {
  const words = text.split(" ");
  const lines: string[] = [];
  let line = first;
  for (const w of words) {
    if (line.length + w.length + 1 > width && line.trim().length > first.trim().length) {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += (line === first || line === indent ? "" : " ") + w;
  }
  lines.push(line.trimEnd());
  return lines;
}


function sourceText(c: ClusterImport): string {
  return `cluster ${c.name} (vhost ${JSON.stringify(c.vhost)}${c.version ? `, RabbitMQ ${c.version}` : ""})`;
}

function header(input: EmitInput): string[] {
  const inf = input.inference;
  const lines: string[] = [input.schemaLine ?? DEFAULT_SCHEMA_LINE];
  const from = inf.clusters.map(sourceText);
  lines.push(
    ...wrap(
      `Written by \`topo import\` from ${from.length > 1 ? `${from.slice(0, -1).join(", ")} and ${from[from.length - 1]}` : from[0] ?? "no cluster"}: ${inf.services} service${inf.services === 1 ? "" : "s"}, ${inf.queues} queue${inf.queues === 1 ? "" : "s"}.`,
      "",
      "",
    ),
  );
  for (const n of input.notices ?? []) lines.push("", ...wrap(n, "", ""));

  const changed = inf.clusters.filter((c) => c.changes.length);
  const anyDegraded = inf.clusters.some((c) => c.degraded.length);
  lines.push("");
  if (changed.length === 0) {
    lines.push(
      ...wrap(
        anyDegraded
          ? "topo plan on this file plans no changes, and reports the degraded state listed below."
          : inf.clusters.some((c) => c.kept.length)
          ? "topo plan on this file plans no changes; what the file leaves out is listed below."
          : "Everything in topo's namespace is described as the broker holds it: topo plan on this file plans no changes.",
        "",
        "",
      ),
    );
  } else {
    const n = changed.reduce((s, c) => s + c.changes.length, 0);
    lines.push(
      ...wrap(
        `topo plan on this file shows ${n} change${n === 1 ? "" : "s"}: the file cannot describe these objects as the broker holds them (topo apply needs --allow-destructive for replaces and deletes, and never drops the messages a queue holds without --allow-data-loss):`,
        "",
        "",
      ),
    );
    for (const c of changed) {
      lines.push("", `cluster ${c.name}:`);
      for (const ch of c.changes) {
        lines.push(...renderAction(ch.action).map((l) => `  ${l}`));
        lines.push(...wrap(ch.why, "      why: ", "           "));
      }
    }
  }

  const degraded = inf.clusters.filter((c) => c.degraded.length);
  if (degraded.length) {
    lines.push(
      "",
      ...wrap(
        "topo plan on this file also reports these as degraded: no change of the file or of topo's makes them as the file says, so topo plan --detailed-exitcode exits 2 until they are resolved on the broker:",
        "",
        "",
      ),
    );
    for (const c of degraded) {
      lines.push("", `cluster ${c.name}:`);
      for (const d of c.degraded) lines.push(...wrap(`! degraded: ${d}`, "  ", "    "));
    }
  }

  const kept = inf.clusters.filter((c) => c.kept.length);
  if (kept.length) {
    lines.push("", "Left alone: the file cannot describe these, and topo never changes them:");
    for (const c of kept) {
      lines.push("", `cluster ${c.name}:`);
      for (const k of c.kept) lines.push(...wrap(k, "  ", "    "));
    }
  }

  const outside = inf.clusters.filter((c) => c.outside.exchanges.length || c.outside.queues.length || c.outside.users.length);
  if (outside.length) {
    lines.push("", `Outside topo's namespace (prefix ${JSON.stringify(inf.body.prefix)}), so not in this file; topo never touches them:`);
    for (const c of outside) {
      const parts = [
        c.outside.exchanges.length ? `exchanges ${names(c.outside.exchanges, 10)}` : "",
        c.outside.queues.length ? `queues ${names(c.outside.queues, 10)}` : "",
        c.outside.users.length ? `the rights here of users without topo's tag topo.${inf.body.prefix}: ${names(c.outside.users, 10)}` : "",
      ].filter(Boolean);
      lines.push(...wrap(`cluster ${c.name}: ${parts.join("; ")}`, "  ", "    "));
    }
  }
  const redact = input.redact ?? ((s: string) => s);
  // The yaml library writes each line as "#<line>"; the space makes it "# <line>".
  return lines.map((l) => (l === "" ? "" : ` ${safeComment(redact(l))}`));
}

export function emitTopology(input: EmitInput): string {
  const { body } = input.inference;
  const doc = new Document();
  const flowList = (items: string[]) => {
    const node = doc.createNode(items) as YAMLSeq;
    node.flow = true;
    return node;
  };
  const root = doc.createNode({}) as YAMLMap;
  if (input.schemaKey !== undefined) root.set("$schema", escapeDollars(input.schemaKey));
  root.set("version", 1);
  root.set("prefix", body.prefix);

  const clusters = doc.createNode({}) as YAMLMap;
  for (const c of input.clusters) clusters.set(c.name, isNode(c.section) ? c.section.clone() : doc.createNode(c.section));
  root.set("clusters", clusters);

  const settingsNode = (s: RawQueueSettings) => {
    const node = doc.createNode(escapeDollars(s)) as YAMLMap;
    node.flow = JSON.stringify(s).length <= FLOW_MAX;
    return node;
  };
  const kinds = Object.entries(body.defaults) as [string, RawQueueSettings][];
  if (kinds.length) {
    const defaults = doc.createNode({}) as YAMLMap;
    for (const [kind, s] of kinds) defaults.set(kind, settingsNode(s));
    root.set("defaults", defaults);
  }

  const services = doc.createNode([]) as YAMLSeq;
  for (const s of body.services) {
    if (typeof s === "string") {
      services.add(doc.createNode(s));
      continue;
    }
    const entry = doc.createNode({}) as YAMLMap;
    entry.set("name", s.name);
    for (const kind of ["sync", "async"] as const) {
      const v: RawService[typeof kind] = s[kind];
      if (v === undefined) continue;
      entry.set(kind, typeof v === "boolean" ? v : settingsNode(v));
    }
    services.add(entry);
  }
  root.set("services", services);

  if (input.users?.length) {
    const users = doc.createNode({}) as YAMLMap;
    for (const u of input.users) {
      const entry = doc.createNode({}) as YAMLMap;
      // A reference, not a value: written as is (escapeDollars would make it a literal).
      entry.set("password", `\${${u.passwordEnv}}`);
      if (u.consumes.length) entry.set("consumes", flowList(u.consumes));
      if (u.publishes === "all" || u.publishes.length) entry.set("publishes", u.publishes === "all" ? "all" : flowList(u.publishes));
      if (u.tags.length) entry.set("tags", flowList(escapeDollars(u.tags)));
      // Appended, not set(): set() searches the map for the key first, and 20,000 users took
      // 2.4 s. The broker's user names are unique.
      users.items.push(new Pair(u.name, entry));
    }
    root.set("users", users);
  }

  doc.contents = root;
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === "string" && holdsUnsafe(node.value)) node.type = "QUOTE_DOUBLE";
    },
  });
  doc.commentBefore = header(input).join("\n");
  // No folding: a long URL or argument value stays on one line, as people write them. The YAML
  // library writes C1 and format characters raw even between double quotes: escaped there.
  return doc.toString({ lineWidth: 0 }).replace(UNSEEN_RAW, unicodeEscape);
}

