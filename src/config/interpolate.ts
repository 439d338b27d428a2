// ${VAR} interpolation: Compose-style references in the file's values, put in from the
// environment, typed as the schema wants at their place, each problem with its place in the value.

import type { ConfigProblem } from "../errors.js";
import { ENV_NAME, ENV_NAME_SOURCE } from "../core/naming.js";
import { ownValue } from "../core/collections.js";
import { displayPath, holdsSecretValue, isObject, type Path } from "./places.js";
import { PERCENT_ENCODE, userinfoSpan } from "./url.js";
import { PLAIN } from "./numbers.js";
import { MAX_EXACT } from "./arguments.js";
import { packageFile } from "./package-files.js";

export type Env = Record<string, string | undefined>;

/**
 * The value of the environment variable `name`, or undefined: the environment's own variables
 * only. process.env inherits toString and constructor, and ${constructor} read as a function's
 * text ("function () { [native code] }" from process.env, "function Object() ..." from a plain
 * object).
 */
export function envVar(env: Env, name: string): string | undefined {
  return ownValue(env, name);
}

/**
 * What is wrong with `given` as the name of the environment variable an option takes
 * (--password-env, --broker-env), or undefined. It never shows `given`: where a name belongs, a
 * user often gives the value, the secret itself (`--password-env "$RABBITMQ_PASSWORD"`), which
 * this message would print into a CI log. A variable whose value it is says that mistake exactly.
 * `holds` is what the variable is for ("the password", "the broker URL").
 */
export function variableNameProblem(option: string, given: string, env: Env, example: string, holds: string): { message: string; hints: string[]; holder?: string } | undefined {
  const set = envVar(env, given) !== undefined;
  const holder = set || given === "" ? undefined : Object.keys(env).sort().find((k) => envVar(env, k) === given);
  if (holder !== undefined) {
    return {
      message: ENV_NAME.test(given)
        ? `${option} names a variable that is not set, and the name it was given (not shown) is the value of $${holder}`
        : `what ${option} was given (not shown) is the value of $${holder}, not a variable's name`,
      hints: [`${option} takes a variable's name: if $${holder} holds ${holds}, write ${option} ${holder}`],
      holder,
    };
  }
  if (ENV_NAME.test(given)) return undefined;
  return {
    message: `${option} takes the name of an environment variable (letters, digits and _, not starting with a digit); what it was given is not one, and is not shown: it may be ${holds} itself`,
    hints: [`put ${holds} in a variable and name that: ${option} ${example}`],
  };
}

/** A value that is one reference and nothing else: `${LEN}` or `${LEN:-100}`. */
export const WHOLE_VAR = new RegExp(`^\\$\\{(${ENV_NAME_SOURCE})(?::-[^}]*)?\\}$`);

/** Stands in for a value that could not be interpolated, until its places in the data are known. */
export const UNINTERPOLATED = Symbol("uninterpolated");

/** Every path at which `data` holds `marker`. */
export function pathsOf(data: unknown, marker: unknown, path: Path = [], out: Path[] = []): Path[] {
  if (data === marker) out.push(path);
  else if (Array.isArray(data)) data.forEach((v, i) => pathsOf(v, marker, [...path, i], out));
  else if (isObject(data)) for (const [k, v] of Object.entries(data)) pathsOf(v, marker, [...path, k], out);
  return out;
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
export function schemaTypesAt(path: Path): Set<string> {
  schemaRoot ??= packageFile<SchemaNode>("schemas/topology.schema.json");
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
 * passwordsOptional), a users.NAME.password (or password_hash) whose only problem is unset
 * variables becomes UNSET_PASSWORD (UNSET_HASH), a cluster's URL whose unset variables are all in
 * its user-info gets UNSET_USERINFO for them, and the set learns which.
 */
export function interpolateValue(
  source: string,
  env: Env,
  pathOf: () => Path,
  unsetPasswords?: Set<string>,
): { errors: VarProblem[] } | { value: string | number | boolean } {
  const r = substitute(source, env, () => (holdsSecretValue(pathOf()) ? displayPath(pathOf()) : undefined));
  if ("errors" in r) {
    if (!unsetPasswords || !r.onlyUnset) return { errors: r.errors };
    const path = pathOf();
    // A variable set to "" (a CI secret that is missing) is said as such: "not set" sent the
    // reader to look for an export that is there.
    const empty = r.unset.filter((n) => envVar(env, n) === "");
    const absent = r.unset.filter((n) => envVar(env, n) !== "");
    const list = (ns: string[]) => ns.map((n) => `\${${n}}`).join(", ");
    const said = () =>
      unsetPasswords.add(
        `${displayPath(path)}: ${[...(absent.length ? [`${list(absent)} ${absent.length === 1 ? "is" : "are"} not set`] : []), ...(empty.length ? [`${list(empty)} ${empty.length === 1 ? "is" : "are"} set but empty`] : [])].join(", and ")}`,
      );
    const user = path.length === 3 && path[0] === "users";
    if (user && path[2] === "password") {
      said();
      return { value: UNSET_PASSWORD };
    }
    if (user && path[2] === "password_hash") {
      said();
      return { value: UNSET_HASH };
    }
    // A cluster's URL whose unset variables are all in its user-info (a lint job has no
    // secrets): the commands that never connect read the rest of it. docs/ci.md's workflow
    // validated without ${RABBITMQ_PASSWORD}, and failed.
    if (path.length === 3 && path[0] === "clusters" && (path[2] === "url" || path[2] === "management")) {
      const inUserinfo = new Set(userinfoVariables(source));
      if (!r.unset.every((n) => inUserinfo.has(n))) return { errors: r.errors };
      const stand = substitute(source, { ...env, ...Object.fromEntries(r.unset.map((n) => [n, UNSET_USERINFO])) });
      if ("errors" in stand) return { errors: r.errors };
      said();
      return { value: stand.value };
    }
    return { errors: r.errors };
  }
  if (!WHOLE_VAR.test(source)) return r;
  const types = schemaTypesAt(pathOf());
  const wrong = numberVariableProblem(source, r.value, types);
  if (wrong) return { errors: [{ message: `${displayPath(pathOf())}: ${wrong}` }] };
  return { value: typedScalar(r.value, types) ?? r.value };
}

/**
 * What is wrong with a variable's text where a whole number is wanted, as the file's own numbers
 * are judged (numbers.ts): plain decimal digits, and no more than topo carries exactly.
 */
function numberVariableProblem(source: string, text: string, types: Set<string>): string | undefined {
  if (types.has("string") || !(types.has("integer") || types.has("number"))) return undefined;
  const t = text.trim();
  const n = Number(t);
  if (PLAIN.test(t)) {
    return Number.isSafeInteger(n) ? undefined : `${source} is ${t}, beyond ${MAX_EXACT} (2^53-1), the largest whole number topo carries exactly: larger numbers are rounded; set it to at most ${MAX_EXACT}`;
  }
  if (!NUMERIC.test(t) || !Number.isSafeInteger(n)) return undefined;
  return `${source} is ${JSON.stringify(t)}: a whole number is written in plain decimal digits, so that every reader takes the same number; set it to ${n}`;
}

const NUMERIC = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;


/**
 * The variables a URL as written puts into its user name or password, each once, in order: the
 * references in its user-info (url.ts userinfoSpan) once they are blanked ($$ is no variable).
 */
export function userinfoVariables(source: string): string[] {
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


/** Whether a URL as written holds user-info (a :-default may hold "@" or "://": read without its references). */
export function writesUserinfo(source: string): boolean {
  return userinfoSpan(source.replace(VAR, (m) => " ".repeat(m.length))) !== undefined;
}

/**
 * A URL refused for how its password is written, with ${VAR}s put into its user name or
 * password: the file's text does not show the password, so the message names those variables
 * (never what they hold) and says where to encode it. A variable's value goes in as it is set.
 */
export function namingVariables(p: ConfigProblem, source: string | undefined): ConfigProblem {
  // PERCENT_ENCODE's beginning: a control character's message adds an example to it (a tab as %09).
  if (source === undefined || !p.message.includes(PERCENT_ENCODE.slice(0, PERCENT_ENCODE.indexOf(" (")))) return p;
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
  if ((types.has("integer") || types.has("number")) && NUMERIC.test(t)) return Number(t);
  if (types.has("boolean") && (t === "true" || t === "false")) return t === "true";
  return undefined;
}

const VAR = /\$\$|\$\{([^}]*)\}|\$\{/g;

/** What a password whose variable is unset stands for, with passwordsOptional. Never sent. */
const UNSET_PASSWORD = "(password variable not set)";
/** So for a password hash: a well-formed one (36 zero bytes), never sent. */
const UNSET_HASH = Buffer.alloc(36).toString("base64");
/** So for a URL's user name or password (letters a URL's user-info takes as they are). Never sent. */
const UNSET_USERINFO = "topo-variable-not-set";

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

/** Whether `index` of a secret-holding value is in a password: all of it, or a URL's password part. */
function inPassword(value: string, index: number): boolean {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(value);
  if (!scheme) return true;
  const at = value.indexOf("@", scheme[0].length);
  const colon = value.indexOf(":", scheme[0].length);
  return at >= 0 && colon >= 0 && colon < at && index > colon && index < at;
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
    // ${A:-${B}}: the reference ends at the first "}", so the default was the text "${B" and the
    // value "${B}" as written (a password sent as the literal "${OTHER}"). Defaults are not
    // expanded: said, not sent.
    if (fallback?.includes("${")) {
      onlyUnset = false;
      const where = secretAt();
      errors.push({ message: `${where ? `${where}: ` : ""}the default of \${${name}:-...} holds another "\${": topo does not read a variable inside a default; give ${name} its value in the environment, or write the default itself`, index });
      return m;
    }
    const v = envVar(env, name);
    if (v !== undefined && v !== "") {
      const where = secretAt();
      const edge = where === undefined ? undefined : whiteSpaceAtEnd(v);
      // A URL that is the variable's value and nothing else: the URL parser drops the spaces at its
      // end, and means the same without them. (Spaces before its scheme were refused as a URL
      // that does not start with one.)
      const dropped = m.length === value.length && where?.startsWith("clusters.") && !/^\s/u.test(v) && v.trimEnd() === v.replace(/ +$/, "");
      if (where !== undefined && edge !== undefined && !dropped) {
        onlyUnset = false;
        errors.push({ message: `${where}: environment variable ${name} ${whiteSpaceMessage(name, edge, where)}`, index: m.length === value.length ? undefined : index });
        return m;
      }
      return v;
    }
    if (fallback !== undefined) return fallback;
    unset.add(name);
    // A password's default would be a password written in the file: not offered there (a user's
    // password, or a URL's password part; a URL's host or vhost may have one).
    const orDefault = secretAt() !== undefined && inPassword(value, index) ? "" : ` or write \${${name}:-default}`;
    errors.push({
      message:
        v === ""
          ? `environment variable ${name} is set but empty, and has no default; give ${name} a value${orDefault}`
          : `environment variable ${name} is not set and has no default; export ${name}${orDefault}`,
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
 * Where a variable's value has white space at one of its ends, and what it is: "ends with a line
 * break (a line feed or a carriage return)", "ends with a space", "starts with a tab", ...; else
 * undefined. No password or URL of topo's means one, and a secret gets one by accident: `echo pw |
 * base64` into a Kubernetes secret, a file read whole into a CI variable, a .env file saved with
 * CRLF line ends and sourced by a shell (each value then ends in "\r"), a value pasted into a CI
 * secret's form with the space after it, a .env line "PW=secret " (docker --env-file keeps it).
 * A user's password went to the broker with it, silently (3.10.8: apply exited 0, a worker given
 * the password without it was refused at login, 403 ACCESS_REFUSED, and plan said "No
 * changes."); in a URL's password a space was sent too (the URL parser takes it, as %20), and the
 * login was refused as a wrong password; a tab or a line break was refused as a control character
 * with the advice to percent-encode it, which would send the same character.
 */
export function whiteSpaceAtEnd(value: string): string | undefined {
  const last = /\s$/u.exec(value)?.[0];
  if (last !== undefined) return `ends with ${whiteSpaceName(last)}`;
  const first = /^\s/u.exec(value)?.[0];
  return first === undefined ? undefined : `starts with ${whiteSpaceName(first)}`;
}

function whiteSpaceName(c: string): string {
  if (c === "\n" || c === "\r") return "a line break (a line feed or a carriage return)";
  if (c === " ") return "a space";
  if (c === "\t") return "a tab";
  const code = `U+${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`;
  if (c === "\u00a0") return `a no-break space (${code})`;
  if (c === "\ufeff") return `a byte order mark (${code}, from a file saved as "UTF-8 with BOM")`;
  return `white space (${code})`;
}

/**
 * What to say of variable `name` whose value has white space at an end (`edge`, from
 * whiteSpaceAtEnd), never its value: "ends with ..., which would be sent ...". `where` is the
 * value's place (users.NAME.password, clusters.NAME.url), which says how a password that means
 * it is given instead.
 */
export function whiteSpaceMessage(name: string, edge: string, where: string): string {
  if (edge.startsWith("ends with a line break")) {
    return `${edge}, which would be sent as part of the value: set ${name} without the line break (printf '%s' rather than echo; echo -n before base64 for a Kubernetes secret; a .env file saved with LF line ends, not CRLF)`;
  }
  const means = where.endsWith(".password_hash")
    ? ""
    : where.endsWith(".password")
      ? "; if the password does hold it, give the user's password_hash instead (RabbitMQ's salted hash of it)"
      : "; if the value does hold it, percent-encode it in the variable (a space as %20, a tab as %09)";
  return `${edge}, which would be sent as part of the value: set ${name} without it (a .env line, a CI secret or a pasted value often carries one)${means}`;
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
