// Pure: the `clusters:` sections `topo import` writes. A section is copied from the user's file as
// written (its comments and ${VAR} references kept), except that a password written in it becomes
// a ${VAR} reference, and TLS paths follow the file to where it is written. From --url, a section
// is the URL with its password replaced by a reference. The file written never holds a password.

import { isAlias, isMap, isNode, isScalar, visit, type Document, type Node as YamlNode } from "yaml";
import { DEFAULT_SCHEMA_LINE } from "./emit.js";
import { hasSchemeSlashes } from "../config/url.js";
import { pushTo } from "../core/collections.js";
import { guest } from "../config/literal-secrets.js";

/** Where the userinfo password of a URL sits, as written (before ${VAR} interpolation). */
export function splitPassword(url: string): { before: string; password: string; after: string } | undefined {
  // Skip ${...} and $$ while looking for delimiters: a reference may hold ":" or "@" (${P:-a@b}).
  const outside: number[] = [];
  for (let i = 0; i < url.length; i++) {
    if (url.startsWith("$$", i)) {
      i++;
      continue;
    }
    if (url.startsWith("${", i)) {
      const end = url.indexOf("}", i);
      if (end < 0) return undefined;
      i = end;
      continue;
    }
    outside.push(i);
  }
  const at = (s: string, from: number) => outside.find((i) => i >= from && url.startsWith(s, i));
  const scheme = at("://", 0);
  if (scheme === undefined) return undefined;
  const start = scheme + 3;
  const end = outside.find((i) => i >= start && "/?#".includes(url[i] as string)) ?? url.length;
  const ats = outside.filter((i) => i >= start && i < end && url[i] === "@");
  const last = ats[ats.length - 1];
  if (last === undefined) return undefined;
  const colon = outside.find((i) => i >= start && i < last && url[i] === ":");
  if (colon === undefined) return undefined;
  return { before: url.slice(0, colon + 1), password: url.slice(colon + 1, last), after: url.slice(last) };
}

/**
 * The passwords written literally in the url and management of every cluster of the file, as
 * written: a comment may quote one in the same encoding, which need not be the one a redactor
 * derives from the decoded password.
 */
export function writtenPasswords(doc: Document): string[] {
  // As plain data: an alias or a merge key (<<) gives a section the url of another.
  const clusters: unknown = doc.toJS()?.clusters;
  if (typeof clusters !== "object" || clusters === null) return [];
  const out: string[] = [];
  for (const section of Object.values(clusters)) {
    if (typeof section !== "object" || section === null) continue;
    for (const field of ["url", "management"]) {
      const value: unknown = (section as Record<string, unknown>)[field];
      const split = typeof value === "string" ? splitPassword(value) : undefined;
      if (split && isLiteral(split.password)) out.push(split.password);
    }
  }
  return out;
}

/** Whether a URL's user-info as written (`before` ends with "user:") is guest/guest. */
function guestLogin(before: string, password: string): boolean {
  const user = /\/\/([^/?#]*):$/.exec(before)?.[1];
  return user !== undefined && guest(safeDecode(user), safeDecode(password));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Whether a password as written holds anything but ${VAR} references (which are kept). */
export function isLiteral(password: string): boolean {
  return password.replace(/\$\{[^}]*\}/g, "") !== "";
}

/**
 * The variables that replace passwords written in a file: one per distinct password, the first
 * named `passwordEnv`, the next after their cluster and field. Remembers where each was used, for
 * the notice that tells the user what to export.
 */
export class PasswordVariables {
  /** Variable → the password it stands for (to read the written file back before writing it). */
  readonly introduced: Record<string, string> = {};
  private readonly byPassword = new Map<string, string>();
  private readonly places = new Map<string, string[]>();

  constructor(private readonly passwordEnv: string) {}

  /** `passwordEnv` already holds this password (a --url without one reads it from there). */
  reserve(password: string): void {
    this.byPassword.set(password, this.passwordEnv);
    this.introduced[this.passwordEnv] = password;
  }

  variableFor(password: string, cluster: string, field: "url" | "management"): string {
    let v = this.byPassword.get(password);
    if (!v) {
      v = this.byPassword.size === 0 ? this.passwordEnv : `${this.passwordEnv}_${cluster.toUpperCase().replace(/[^A-Z0-9]/g, "_")}${field === "management" ? "_MANAGEMENT" : ""}`;
      this.byPassword.set(password, v);
      this.introduced[v] = password;
    }
    pushTo(this.places, v, `clusters.${cluster}.${field}`);
    return v;
  }

  /** What the user must do before running topo on the written file. */
  notices(file: string): string[] {
    return [...this.places].map(([v, places]) => {
      const one = places.length === 1;
      return `${places.join(" and ")} in ${file} ${one ? "holds a password" : "hold passwords"}, which import does not copy: this file reads ${one ? "it" : "them"} from \${${v}}, so export ${v} (percent-encoded as in a URL) before running topo on it.`;
    });
  }
}

/**
 * One cluster's section of the user's file, ready to be written: a copy (an alias resolved to the
 * value it means here), with literal passwords in url and management replaced by ${VAR}, every
 * comment passed through `mask` (people note passwords beside the URL that holds them), and TLS
 * file paths passed through `rebase`.
 */
export function rewriteSection(
  doc: Document,
  name: string,
  vars: PasswordVariables,
  rebase: (path: string) => string,
  mask: (comment: string) => string = (c) => c,
): YamlNode {
  const node = doc.getIn(["clusters", name], true) as YamlNode;
  let shared = false;
  visit(node, { Alias: () => void (shared = true), Pair: (_, pair) => void (isScalar(pair.key) && pair.key.value === "<<" && (shared = true)) });
  // An alias points into the rest of the user's file, and a merge key (<<) takes another section's
  // settings, its url and password too: the plain value is what the section means here, and only
  // there is every url and management it holds a key of its own to rewrite.
  const section = (shared || isAlias(node) ? doc.createNode(node.toJS(doc)) : node.clone()) as YamlNode;
  visit(section, {
    Node: (_, n) => {
      if (n.commentBefore) n.commentBefore = mask(n.commentBefore);
      if (n.comment) n.comment = mask(n.comment);
    },
  });
  if (!isMap(section)) return section;
  for (const field of ["url", "management"] as const) {
    const scalar = section.get(field, true);
    if (!isScalar(scalar) || typeof scalar.value !== "string") continue;
    const split = splitPassword(scalar.value);
    if (!split || !isLiteral(split.password)) continue;
    // guest/guest stays as written: no secret (file-format.md), and a file that worked without a
    // variable keeps working without one.
    if (guestLogin(split.before, split.password)) continue;
    // A password written in the file is still a password: the output reads it from a variable.
    scalar.value = `${split.before}\${${vars.variableFor(split.password, name, field)}}${split.after}`;
  }
  const tls = section.get("tls", true);
  if (isMap(tls)) {
    for (const field of ["ca", "cert", "key"]) {
      const scalar = tls.get(field, true);
      if (isScalar(scalar) && typeof scalar.value === "string") scalar.value = rebase(scalar.value);
    }
  }
  return section;
}

/**
 * The file's schema reference, kept (rebased like any path), else the default one. Read from the
 * text: the parser hangs a leading comment on the document or on its first key, by blank lines.
 */
export function schemaReference(text: string, doc: Document, rebase: (path: string) => string): { schemaLine: string; schemaKey?: string } {
  const lines = text.split("\n", 50);
  const firstContent = lines.findIndex((l) => !l.startsWith("#"));
  const leading = firstContent < 0 ? lines : lines.slice(0, firstContent);
  const comment = leading.map((l) => /^#\s*yaml-language-server:\s*\$schema=(\S+)/.exec(l)).find(Boolean);
  const key = doc.get("$schema");
  return {
    schemaLine: comment ? `yaml-language-server: $schema=${rebase(comment[1] as string)}` : DEFAULT_SCHEMA_LINE,
    schemaKey: typeof key === "string" ? rebase(key) : undefined,
  };
}

/** `$` is special in a topology file's values (${VAR}); one written from a URL is doubled. */
export function literal(s: string): string {
  return s.replace(/\$/g, "$$$$");
}

/**
 * A --url as the file writes it: the password, if the URL had one (but guest/guest), replaced by ${passwordEnv}.
 * Returns undefined when the text is not a URL.
 */
export function urlSection(value: string, passwordEnv: string): { written: string; password?: string; user: string; guest?: true } | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return undefined;
  }
  // Without "//" ("amqp:u:p@h") a URL parser finds no host, and reads the user-info as the path:
  // written back as scheme:// + path, the password would be in the file.
  if (!hasSchemeSlashes(value) || !u.host) return undefined;
  // guest/guest is written as typed: no secret, and nothing to read from a variable.
  const kept = u.password !== "" && guest(safeDecode(u.username), safeDecode(u.password));
  const user = kept ? `${literal(u.username)}:${literal(u.password)}@` : u.username || u.password ? `${literal(u.username)}:\${${passwordEnv}}@` : "";
  if (kept) return { written: `${u.protocol}//${user}${literal(u.host)}${literal(u.pathname)}${literal(u.search)}${literal(u.hash)}`, user: u.username, guest: true };
  return {
    written: `${u.protocol}//${user}${literal(u.host)}${literal(u.pathname)}${literal(u.search)}${literal(u.hash)}`,
    password: u.password || undefined,
    user: u.username,
  };
}

/**
 * The sections of the --url clusters, once each has its name: a password typed into a --url
 * becomes a reference, one variable per distinct password as a file's passwords do (the first
 * ${passwordEnv}, the next ${passwordEnv}_<CLUSTER>). A --url typed without a password reads
 * $passwordEnv, so that name keeps the value set there (`passwordEnvValue`).
 */
export function urlSections(
  clusters: { name: string; url: string; management?: string }[],
  passwordEnv: string,
  passwordEnvValue: string | undefined,
): { sections: { url: string; management?: string }[]; introduced: Record<string, string>; notices: string[] } {
  const vars = new PasswordVariables(passwordEnv);
  const parsed = clusters.map((c) => urlSection(c.url, passwordEnv));
  if (passwordEnvValue !== undefined && parsed.some((p) => p && p.user !== "" && !p.password && !p.guest)) vars.reserve(passwordEnvValue);
  const typed = new Map<string, string[]>();
  const sections = clusters.map((c, i) => {
    const p = parsed[i];
    if (!p) throw new Error(`--url of cluster ${c.name} is not a URL`);
    let url = p.written;
    if (p.password) {
      const v = vars.variableFor(p.password, c.name, "url");
      pushTo(typed, v, c.name);
      url = (urlSection(c.url, v) as { written: string }).written;
    }
    return c.management === undefined ? { url } : { url, management: literal(c.management) };
  });
  const named = typed.size > 1;
  const notices = [...typed].map(([v, names]) => {
    const which = named ? ` for ${names.length === 1 ? "cluster" : "clusters"} ${names.join(" and ")}` : "";
    return `The password given in --url${which} is not written: this file reads it from \${${v}}; export ${v} before running topo on it (and prefer exporting it to typing it in a command line, where other users of the machine can see it).`;
  });
  return { sections, introduced: vars.introduced, notices };
}

/** The variables the written sections read (`${NAME}`, `${NAME:-default}`), which no user's password variable may be. */
export function sectionVariables(sections: unknown[]): string[] {
  const text = sections.map((s) => JSON.stringify(isNode(s) ? s.toJSON() : s)).join("\n");
  return [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] as string);
}
