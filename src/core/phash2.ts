// Erlang's erlang:phash2/1, for the few kinds of term a binding's arguments are made of. RabbitMQ's
// management API names a binding by its `properties_key`: its routing key, "~", and the base64url
// of phash2 of the arguments as the broker holds them, AMQP field types included
// (rabbit_mgmt_format:args_hash). The API's JSON shows the values without their types, so this
// hash is the only way to tell which types a binding holds: topo tries the types the JSON allows
// until one gives the broker's key (broker/exact-args.ts). phash2 is documented to be the same on
// every Erlang release and machine; this follows ERTS's make_hash2 (erl_term_hashing.c).

/** The Erlang terms a binding's arguments hold. Integers are JavaScript safe integers. */
export type Term =
  | { t: "atom"; v: string }
  | { t: "bin"; v: Uint8Array }
  | { t: "int"; v: number }
  | { t: "float"; v: number }
  | { t: "list"; v: Term[] }
  | { t: "tuple"; v: Term[] };

const HCONST = 0x9e3779b9;
const HCONST_2 = 0x3c6ef372;
const HCONST_3 = 0xdaa66d2b;
const HCONST_4 = 0x78dde6e4;
const HCONST_9 = 0x8ff34781;
const HCONST_10 = 0x2e2ac13a;
const HCONST_11 = 0xcc623af3;
const HCONST_12 = 0x6a99b4ac;
const HCONST_13 = 0x08d12e65;
/** make_hash2's value for [] as the whole term. */
const NIL_ALONE = 3468870702;
/** ERTS's type code of [] (NIL_DEF), mixed in for [] inside a term. */
const NIL_DEF = 0x02;

/** Bob Jenkins' 96-bit mix, on unsigned 32-bit words. */
function mix(a: number, b: number, c: number): [number, number, number] {
  a = (a - b - c) >>> 0; a = (a ^ (c >>> 13)) >>> 0;
  b = (b - c - a) >>> 0; b = (b ^ (a << 8)) >>> 0;
  c = (c - a - b) >>> 0; c = (c ^ (b >>> 13)) >>> 0;
  a = (a - b - c) >>> 0; a = (a ^ (c >>> 12)) >>> 0;
  b = (b - c - a) >>> 0; b = (b ^ (a << 16)) >>> 0;
  c = (c - a - b) >>> 0; c = (c ^ (b >>> 5)) >>> 0;
  a = (a - b - c) >>> 0; a = (a ^ (c >>> 3)) >>> 0;
  b = (b - c - a) >>> 0; b = (b ^ (a << 10)) >>> 0;
  c = (c - a - b) >>> 0; c = (c ^ (b >>> 15)) >>> 0;
  return [a, b, c];
}

/** UINT32_HASH_2: two words mixed into the running hash. */
function hash2(x: number, y: number, con: number, hash: number): number {
  return mix((con + x) >>> 0, (con + y) >>> 0, hash)[2];
}

const atomHashes = new Map<string, number>();

/** hashpjw over the atom's name, as ERTS's atom table keeps it (Latin-1 clutch included). */
function atomHash(name: string): number {
  let h = atomHashes.get(name);
  if (h === undefined) atomHashes.set(name, (h = hashpjw(name)));
  return h;
}

function hashpjw(name: string): number {
  const bytes = new TextEncoder().encode(name);
  let h = 0;
  for (let i = 0; i < bytes.length; i++) {
    let v = bytes[i] as number;
    if (i + 1 < bytes.length && (v & 0xfe) === 0xc2 && ((bytes[i + 1] as number) & 0xc0) === 0x80) {
      v = ((v << 6) | ((bytes[i + 1] as number) & 0x3f)) & 0xff;
      i++;
    }
    h = ((h << 4) + v) >>> 0;
    const g = (h & 0xf0000000) >>> 0;
    if (g) h = (h ^ (g >>> 24) ^ g) >>> 0;
  }
  return h;
}

/** The bytes hashed 12 at a time, as ERTS hashes a binary. */
function blockHash(k: Uint8Array, initval: number): number {
  let a = HCONST;
  let b = HCONST;
  let c = initval >>> 0;
  const word = (i: number) => ((k[i] as number) | ((k[i + 1] as number) << 8) | ((k[i + 2] as number) << 16) | ((k[i + 3] as number) << 24)) >>> 0;
  let i = 0;
  for (; k.length - i >= 12; i += 12) {
    a = (a + word(i)) >>> 0;
    b = (b + word(i + 4)) >>> 0;
    c = (c + word(i + 8)) >>> 0;
    [a, b, c] = mix(a, b, c);
  }
  c = (c + k.length) >>> 0;
  const rest = k.length - i;
  const at = (j: number) => k[i + j] as number;
  // The last bytes: the first byte of c is left for the length.
  if (rest >= 11) c = (c + at(10) * 0x1000000) >>> 0;
  if (rest >= 10) c = (c + (at(9) << 16)) >>> 0;
  if (rest >= 9) c = (c + (at(8) << 8)) >>> 0;
  if (rest >= 8) b = (b + at(7) * 0x1000000) >>> 0;
  if (rest >= 7) b = (b + (at(6) << 16)) >>> 0;
  if (rest >= 6) b = (b + (at(5) << 8)) >>> 0;
  if (rest >= 5) b = (b + at(4)) >>> 0;
  if (rest >= 4) a = (a + at(3) * 0x1000000) >>> 0;
  if (rest >= 3) a = (a + (at(2) << 16)) >>> 0;
  if (rest >= 2) a = (a + (at(1) << 8)) >>> 0;
  if (rest >= 1) a = (a + at(0)) >>> 0;
  return mix(a, b, c)[2];
}

/** An integer of ERTS's "small" range (60 bits on 64-bit machines; topo's are within 2^53). */
function intHash(n: number, hash: number): number {
  if (n >= -(2 ** 27) && n < 2 ** 27) {
    // SINT32_HASH: a negative number is mixed twice, as ERTS does.
    const y = n >>> 0;
    if (n < 0) hash = hash2(-n >>> 0, 0, HCONST, hash);
    return hash2(y, 0, HCONST, hash);
  }
  const t = Math.abs(n);
  return hash2(t % 2 ** 32 >>> 0, Math.floor(t / 2 ** 32) >>> 0, n < 0 ? HCONST_10 : HCONST_11, hash);
}

function floatHash(f: number, hash: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, f === 0 ? 0 : f);
  return hash2(view.getUint32(0), view.getUint32(4), HCONST_12, hash);
}

const isByte = (t: Term): t is { t: "int"; v: number } => t.t === "int" && t.v >= 0 && t.v <= 255;

/** erlang:phash2(Term), that is phash2(Term, 1 bsl 32): an unsigned 32-bit integer. */
export function phash2(term: Term): number {
  // A top-level atom is its atom hash, unmixed; a top-level integer is hashed alone.
  if (term.t === "atom") return atomHash(term.v);
  if (term.t === "int") return intHash(term.v, 0);
  let hash = 0;
  // The terms still to hash, last first; a list pushes its tail as a list of what is left.
  const stack: Term[] = [term];
  while (stack.length) {
    const x = stack.pop() as Term;
    switch (x.t) {
      case "list": {
        if (x.v.length === 0) {
          hash = hash === 0 ? NIL_ALONE : hash2(NIL_DEF, 0, HCONST_2, hash);
          break;
        }
        // A run of bytes (a string) is hashed four at a time.
        let i = 0;
        let sh = 0;
        let c = 0;
        while (i < x.v.length && isByte(x.v[i] as Term)) {
          sh = ((sh << 8) + (x.v[i] as { v: number }).v) >>> 0;
          if (c === 3) {
            hash = hash2(sh, 0, HCONST_4, hash);
            c = sh = 0;
          } else c++;
          i++;
        }
        if (c > 0) hash = hash2(sh, 0, HCONST_4, hash);
        if (i === x.v.length) {
          stack.push({ t: "list", v: [] });
          break;
        }
        stack.push({ t: "list", v: x.v.slice(i + 1) });
        stack.push(x.v[i] as Term);
        break;
      }
      case "tuple":
        hash = hash2(x.v.length, 0, HCONST_9, hash);
        for (let i = x.v.length - 1; i >= 0; i--) stack.push(x.v[i] as Term);
        break;
      case "int":
        hash = intHash(x.v, hash);
        break;
      case "atom":
        hash = hash === 0 ? atomHash(x.v) : hash2(atomHash(x.v), 0, HCONST_3, hash);
        break;
      case "bin":
        hash = x.v.length === 0 ? (HCONST_13 + hash) >>> 0 : blockHash(x.v, (HCONST_13 + hash) >>> 0);
        break;
      case "float":
        hash = floatHash(x.v, hash);
        break;
    }
  }
  return hash;
}
