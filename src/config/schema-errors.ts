// Schema errors in topo's words: each ajv error as a problem at its place in the file, saying
// what is wrong and what to write instead, never echoing a value that may be secret.

import { isScalar, Scalar, type Document } from "yaml";
import type { ErrorObject } from "ajv";
import type { ConfigProblem } from "../errors.js";
import { prefixProblem, USER_NAME_WORDS } from "../core/naming.js";
import { argumentValueMessage } from "./arguments.js";
import { WHOLE_VAR } from "./interpolate.js";
import { displayPath, holdsSecrets, jsonPointerToPath, pathKey, placePathProblem, valueAt } from "./places.js";
import { closest } from "../core/spelling.js";

/**
 * Drop the noise ajv adds: the "if" of if/then/else, and the inner pattern error of a
 * propertyNames failure (the propertyNames error itself says it better).
 */
export function relevantErrors(errors: ErrorObject[]): ErrorObject[] {
  return errors.filter((e) => e.keyword !== "if" && (e as ErrorObject & { propertyName?: string }).propertyName === undefined);
}

export function schemaProblem(
  err: ErrorObject,
  doc: Document.Parsed,
  at: (o: number) => { line: number; col: number },
  file: string,
  putIn: ReadonlyMap<string, string> = new Map(),
  /** What ajv judged: it tells a user named 008 from an index (jsonPointerToPath). */
  data?: unknown,
): ConfigProblem {
  const path = jsonPointerToPath(err.instancePath, data);
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
      else message = `${where}: unknown key ${holdsSecrets(path) && !KEY_SHAPE.test(extra) ? SECRET_KEY : shownKey(extra)}${guess ? `; did you mean "${guess}"?` : ""} (allowed: ${known.join(", ")})`;
      break;
    }
    case "required":
      message = `${where}: missing required key "${String(params.missingProperty)}"`;
      break;
    case "type": {
      // A services entry is either a name or a mapping (if/then/else in the schema).
      const isServiceEntry = path.length === 2 && path[0] === "services" && typeof path[1] === "number";
      // sync:/async: of a service is true, false or a mapping of settings (if/then/else: the else's "object").
      const isSwitch = path.length === 3 && path[0] === "services" && (path[2] === "sync" || path[2] === "async");
      const list = serviceList(path);
      const wanted = isServiceEntry ? "a service name or a mapping with name:" : isSwitch ? "true, false or a mapping of settings" : list ?? article(String(params.type));
      const value = valueAt(doc, path);
      message = variable
        ? `${where}: \${${variable}} is ${typeof value === "string" && !holdsSecrets(path) ? JSON.stringify(value) : describeValue(value, path)}, not ${wanted}`
        : `${where}: must be ${wanted}, not ${describeValue(value, path)}${list ? serviceListHint(path) : ""}${defaultsSwitchHint(path, value)}${typeHint(isSwitch ? "boolean" : String(params.type), value, path, plainly(doc, path))}`;
      break;
    }
    case "uniqueItems": {
      // At the second of the two, which is the one to remove.
      const [later, earlier] = [Number(params.i), Number(params.j)].sort((a, b) => b - a);
      target = [...path, later as number];
      message = `${where}: item ${later! + 1} is the same as item ${earlier! + 1}; list each once`;
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
    case "const": {
      // publishes: is "all" or a list: a single service written as text is no "all", and saying
      // only 'must be "all"' led to granting every service's tasks.
      const list = serviceList(path);
      // version: "1" is the text "1", not the number 1: saying only "must be 1" read as nonsense.
      const value = valueAt(doc, path);
      const quotedNumber = typeof params.allowedValue === "number" && typeof value === "string" && value.trim() === String(params.allowedValue);
      message = list
        ? `${where}: must be ${list}, not other text${serviceListHint(path)}`
        : `${where}: must be ${JSON.stringify(params.allowedValue)}${quotedNumber ? `, the number, not the text ${JSON.stringify(value)}; write it ${plainly(doc, path)}` : ""}`;
      break;
    }
    case "pattern": {
      const value = valueAt(doc, path);
      // The prefix's rule has reasons worth saying (an empty one would own the whole vhost).
      const why = path.length === 1 && path[0] === "prefix" && typeof value === "string" ? prefixProblem(value) : undefined;
      message = `${where}: ${why ?? argumentMessage(err, path, doc) ?? `${holdsSecrets(path) ? "the value" : JSON.stringify(value)} must match ${String(params.pattern)}`}`;
      break;
    }
    case "maxLength": {
      // ajv's "must NOT have more than 200 characters" says neither what the value is nor what to do.
      const value = valueAt(doc, path);
      const limit = Number(params.limit);
      const isServiceName = path[0] === "services" && (path.length === 2 || path[2] === "name");
      const length = typeof value === "string" ? ` is ${value.length} characters long` : "";
      const shown = typeof value === "string" && !holdsSecrets(path) ? ` ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}` : "";
      message = isServiceName
        ? `${where}: service name${shown}${length}; a service name has at most ${limit} characters (it names the service's exchange and queues, and its task names): shorten it`
        : `${where}: the value${length}; write at most ${limit} characters`;
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
          ? `${where}: user name ${shownKey(String(params.propertyName))} must be ${USER_NAME_WORDS}`
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
 * What to write instead, for the values YAML 1.2 reads as text where people mean otherwise:
 * yes/no/on/off (booleans in YAML 1.1), and a number, true or false in quotes (or in a block).
 * Never quotes a value that may be secret.
 */
function typeHint(wanted: string, value: unknown, path: (string | number)[], how = "without quotes"): string {
  // A user's password of digits (password: 12345678), or yes/true: the text was meant, and quotes
  // keep it. Only 010 and the like, which YAML reads as another number, were told so (numbers.ts).
  if (wanted === "string" && path[0] === "users" && (typeof value === "number" || typeof value === "boolean")) {
    return `; put it in quotes to mean the text: YAML reads it as ${typeof value === "number" ? "a number" : "true or false"}`;
  }
  if (typeof value !== "string") return "";
  if (wanted === "boolean" && /^(?:y|yes|n|no|on|off)$/i.test(value)) return ` (YAML 1.2 reads yes, no, on and off as text); write true or false`;
  if (wanted === "boolean" && /^(?:true|false)$/i.test(value.trim())) return `; write ${value.trim().toLowerCase()} ${how}`;
  if ((wanted === "integer" || wanted === "number") && /^\s*[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*$/.test(value)) {
    const key = path[path.length - 1];
    return holdsSecrets(path) || typeof key !== "string" ? `; write it ${how}` : `; write it ${how} (${key}: ${value.trim()})`;
  }
  return "";
}

/**
 * How to write a value YAML read as text so that it reads as a number or true/false: without its
 * quotes, or, for a block scalar (| or >, which is always text), on its key's line. "Write it
 * without quotes" misled where there were none.
 */
function plainly(doc: Document.Parsed, path: (string | number)[]): string {
  const node = doc.getIn(path, true);
  if (isScalar(node) && (node.type === Scalar.BLOCK_LITERAL || node.type === Scalar.BLOCK_FOLDED)) {
    return `on its key's line, without the ${node.type === Scalar.BLOCK_LITERAL ? "|" : ">"} of a block of text`;
  }
  return "without quotes";
}

/**
 * defaults.sync: false reads as "no sync queues", but defaults only give settings: a kind is
 * turned off per service (services[].sync: false), which the bare "must be an object" never said.
 */
function defaultsSwitchHint(path: (string | number)[], value: unknown): string {
  if (path.length !== 2 || path[0] !== "defaults" || typeof value !== "boolean") return "";
  const kind = String(path[1]);
  return value
    ? `; defaults.${kind} gives the settings of every service's ${kind} queue (cluster, durable, ...), and every service has one unless it says ${kind}: false: remove it, or write the settings`
    : `; defaults cannot turn the ${kind} queues off: write ${kind}: false on each service that has no ${kind} queue ({ name: <service>, ${kind}: false })`;
}

/** What a user's consumes: or publishes: takes, in the words of the file; undefined elsewhere. */
function serviceList(path: (string | number)[]): string | undefined {
  if (path.length !== 3 || path[0] !== "users") return undefined;
  if (path[2] === "consumes") return "a list of services";
  if (path[2] === "publishes") return "all or a list of services";
  return undefined;
}

function serviceListHint(path: (string | number)[]): string {
  const key = String(path[2]);
  return `; write ${key}: [<service>, ...] (one service is a list of one: ${key}: [<service>])${key === "publishes" ? ", or publishes: all for every service's tasks" : ""}`;
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

/** A key as safe to show: one that looks like a URL or user@host may hold a password. */
function shownKey(key: string): string {
  return /@|:\/\//.test(key) ? "(a key not shown, it looks like a URL)" : JSON.stringify(key);
}

/**
 * Under clusters and users an unknown key may be a password, or a piece of one, that a slip made a
 * key: `{password:Hunt3r}` (no space after the colon) is the key "password:Hunt3r", and
 * `{password: Hunt3r, S3cret}` makes "S3cret" one. Such a key is shown only when it has the shape
 * of every key these sections have (lower-case letters and "_": "port", "pasword"); else its place
 * says where it is.
 */
const SECRET_KEY = "(a key not shown: here a key can be a piece of a password)";
const KEY_SHAPE = /^[a-z_]+$/;

