// Service names for generated topologies: letters and underscores only (the router rule), so the
// index is written in base 26. Shared by the benchmark and the tests that need large topologies.
export function serviceNames(n) {
  return Array.from({ length: n }, (_, i) => {
    let s = "";
    let x = i;
    do {
      s = String.fromCharCode(97 + (x % 26)) + s;
      x = Math.floor(x / 26) - 1;
    } while (x >= 0);
    return `mpsvc_${s}`;
  });
}
