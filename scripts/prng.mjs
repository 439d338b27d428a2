// mulberry32: a small, well-known seeded PRNG, so that a failing fuzzed case can be replayed from
// its seed. Shared by the file fuzzer (test/helpers/fuzz.ts) and the broker fuzzer
// (scripts/fuzz-broker.mjs). Returns numbers in [0, 1).
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
