// Pure: a binding's arguments with the AMQP types the broker holds them in. RabbitMQ tells
// bindings apart by their arguments, types included (`long 1` and `byte 1` are two bindings), and
// a headers exchange matches a message's header only against a value of the same type. The
// management API's JSON drops the types: 1 may be a long (the management API, rabbitmqadmin, a
// definitions file), an int (Java, .NET), a byte (amqplib), ...; "ok" a longstr or a byte array;
// a double 2.0 is shown as 2. Re-created from the JSON as amqplib guesses, a binding became
// another one: what it routed before was dropped.
//
// What the JSON does keep is the binding's properties_key, which ends in a hash of the arguments
// as the broker holds them (core/phash2.ts). So each value's plausible types are tried until the
// hash is the broker's; that typing re-creates the binding exactly. Where none is (an integer
// above 2^53, which JSON rounds; a decimal, which it shows as another number; too many
// combinations to try), the binding cannot be re-created exactly, and the reason says why.

import type { Args, ArgValue, IntegerType, TypedField, TypedValue } from "../model.js";
import { phash2, type Term } from "../core/phash2.js";

/** How the management API shows a string or byte array that is not UTF-8. */
const NOT_UTF8 = "Not UTF-8, base64 is: ";
/** How it shows a void (null) value. */
const VOID_SHOWN = "undefined";
/** The most typings tried for one binding: each is a hash of a few microseconds. */
const MAX_TRIES = 200_000;
/** A nested table's keys are shown sorted, not in the order the broker holds them: up to this many are tried in every order. */
const MAX_PERMUTED_KEYS = 5;

/**
 * Integer types by how likely a client wrote them, each with its range: long first (the
 * management API, rabbitmqadmin and definitions files), then int (Java and .NET clients), then
 * the narrow types some clients pick by value (amqplib: byte, short).
 */
const INTEGERS: readonly [IntegerType, number, number][] = [
  ["long", -(2 ** 63), 2 ** 63],
  ["signedint", -(2 ** 31), 2 ** 31 - 1],
  ["byte", -128, 127],
  ["short", -32768, 32767],
  ["unsignedbyte", 0, 255],
  ["unsignedshort", 0, 65535],
  ["unsignedint", 0, 2 ** 32 - 1],
  ["timestamp", 0, 2 ** 64],
];

interface Candidate {
  typed: TypedValue;
  term: Term;
}

export type Exactness = { exact: TypedField[] } | { inexact: string };

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const bin = (v: Uint8Array): Term => ({ t: "bin", v });
const atom = (v: string): Term => ({ t: "atom", v });
const tuple = (...v: Term[]): Term => ({ t: "tuple", v });

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** Erlang orders binaries byte by byte, and so the broker the keys of a binding's arguments. */
function byBytes(a: string, b: string): number {
  const x = utf8(a);
  const y = utf8(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return x.length - y.length;
}

/** The hash a properties_key ends in ("rk~ZKgNZg": base64url of 4 bytes); undefined where it has none. */
export function argumentsHash(propertiesKey: string): number | undefined {
  const at = propertiesKey.lastIndexOf("~");
  if (at < 0) return undefined;
  const bytes = fromBase64(propertiesKey.slice(at + 1).replace(/-/g, "+").replace(/_/g, "/"));
  if (bytes?.length !== 4) return undefined;
  return (((bytes[0] as number) << 24) | ((bytes[1] as number) << 16) | ((bytes[2] as number) << 8) | (bytes[3] as number)) >>> 0;
}

/** Every value of the cartesian product, or a reason when there are more than MAX_TRIES. */
function product<T>(lists: T[][]): T[][] | string {
  const n = lists.reduce((k, l) => k * l.length, 1);
  if (n > MAX_TRIES) return `its arguments could be typed in more than ${MAX_TRIES} ways`;
  let out: T[][] = [[]];
  for (const l of lists) out = out.flatMap((p) => l.map((x) => [...p, x]));
  return out;
}

/** The orders of a nested table's keys to try: all of them for a few keys, else the shown one. */
function orders(keys: string[]): string[][] {
  if (keys.length > MAX_PERMUTED_KEYS) return [keys];
  if (keys.length <= 1) return [keys];
  return keys.flatMap((k, i) => orders([...keys.slice(0, i), ...keys.slice(i + 1)]).map((rest) => [k, ...rest]));
}

/** A JavaScript object lists integer-like keys first, whatever the order they were set in: amqplib then writes them so. */
function objectKeepsOrder(keys: string[]): boolean {
  const o: Record<string, true> = {};
  for (const k of keys) o[k] = true;
  return Object.keys(o).every((k, i) => k === keys[i]);
}

/** What a value shown as `v` may have been, most likely first; a string says why it cannot be known. */
function candidates(v: ArgValue, where: string): Candidate[] | string {
  if (typeof v === "string") {
    const bytes = utf8(v);
    const out: Candidate[] = [];
    if (v === VOID_SHOWN) out.push({ typed: { type: "void" }, term: atom("undefined") });
    const raw = v.startsWith(NOT_UTF8) ? fromBase64(v.slice(NOT_UTF8.length)) : undefined;
    if (raw) out.push({ typed: { type: "binary", base64: toBase64(raw) }, term: bin(raw) });
    out.push({ typed: { type: "longstr", value: v }, term: bin(bytes) }, { typed: { type: "binary", base64: toBase64(bytes) }, term: bin(bytes) });
    return out;
  }
  if (typeof v === "number") {
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      return `${where} is an integer beyond 2^53 (shown as ${v}), which the management API's JSON does not carry exactly`;
    }
    const out: Candidate[] = [];
    if (Number.isInteger(v)) for (const [type, min, max] of INTEGERS) if (v >= min && v <= max) out.push({ typed: { type, value: v }, term: { t: "int", v } });
    // A double 2.0 is shown as 2.
    out.push({ typed: { type: "double", value: v }, term: { t: "float", v } });
    if (Math.fround(v) === v) out.push({ typed: { type: "float", value: v }, term: { t: "float", v } });
    return out;
  }
  if (typeof v === "boolean") return [{ typed: { type: "bool", value: v }, term: atom(String(v)) }];
  if (v === null) return [{ typed: { type: "void" }, term: atom("undefined") }];
  if (Array.isArray(v)) {
    const items: Candidate[][] = [];
    for (const [i, x] of v.entries()) {
      const c = candidates(x, `${where}[${i}]`);
      if (typeof c === "string") return c;
      items.push(c);
    }
    const all = product(items);
    if (typeof all === "string") return all;
    return all.map((cs) => ({ typed: { type: "array", items: cs.map((c) => c.typed) }, term: { t: "list", v: cs.map((c) => tuple(atom(c.typed.type), c.term)) } }));
  }
  const keys = Object.keys(v).sort(byBytes);
  // amqplib takes an object with a "!" key for a typed value, not a table.
  if (keys.includes("!")) return `${where} is a table with a key "!", which topo's AMQP client cannot write`;
  const fields = new Map<string, Candidate[]>();
  for (const k of keys) {
    const c = candidates(v[k] as ArgValue, `${where}.${k}`);
    if (typeof c === "string") return c;
    fields.set(k, c);
  }
  const out: Candidate[] = [];
  for (const order of orders(keys).filter(objectKeepsOrder)) {
    const all = product(order.map((k) => fields.get(k) as Candidate[]));
    if (typeof all === "string") return all;
    for (const cs of all) {
      out.push({
        typed: { type: "table", fields: cs.map((c, i) => ({ key: order[i] as string, value: c.typed })) },
        term: { t: "list", v: cs.map((c, i) => tuple(bin(utf8(order[i] as string)), atom(c.typed.type), c.term)) },
      });
      if (out.length > MAX_TRIES) return `${where} could be typed in more than ${MAX_TRIES} ways`;
    }
  }
  return out;
}

/**
 * The typing of a binding's arguments (as the management API shows them) whose hash is the one
 * its properties_key ends in; or why none can be found.
 */
export function exactArgs(args: Args, propertiesKey: string | undefined): Exactness {
  const want = propertiesKey === undefined ? undefined : argumentsHash(propertiesKey);
  if (want === undefined) return { inexact: `the broker did not give the binding's properties_key, which tells its argument types` };
  // The broker holds a binding's arguments sorted by key (a nested table as the client sent it).
  const keys = Object.keys(args).sort(byBytes);
  const lists: Candidate[][] = [];
  for (const k of keys) {
    const c = candidates(args[k] as ArgValue, `argument ${k}`);
    if (typeof c === "string") return { inexact: c };
    lists.push(c);
  }
  if (lists.reduce((n, l) => n * l.length, 1) > MAX_TRIES) return { inexact: `its arguments could be typed in more than ${MAX_TRIES} ways` };
  // Every combination, odometer-wise, the most likely first.
  const at = lists.map(() => 0);
  const keyTerms = keys.map((k) => bin(utf8(k)));
  for (;;) {
    const chosen = lists.map((l, i) => l[at[i] as number] as Candidate);
    const term: Term = { t: "list", v: chosen.map((c, i) => tuple(keyTerms[i] as Term, atom(c.typed.type), c.term)) };
    if (phash2(term) === want) return { exact: chosen.map((c, i) => ({ key: keys[i] as string, value: c.typed })) };
    let i = lists.length - 1;
    for (; i >= 0; i--) {
      at[i] = (at[i] as number) + 1;
      if ((at[i] as number) < (lists[i] as Candidate[]).length) break;
      at[i] = 0;
    }
    if (i < 0) break;
  }
  return { inexact: `no typing of its arguments as the management API shows them gives the broker's properties_key (a type topo cannot write, such as a decimal)` };
}
