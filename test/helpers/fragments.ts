/**
 * Every piece of a secret of `min` (4) or more characters: what a test searches output for.
 * A piece made only of digits and shorter than 6 is left out: output prints such numbers of its
 * own (a duration in ms, a count, a port), so "4050" of a password's "%4050" would be found in
 * "took 4050 ms". Every piece with a letter or a sign in it is still searched for, and so is every
 * longer piece that holds those digits.
 */
export function fragments(secret: string, min = 4): string[] {
  const out = new Set<string>();
  for (let i = 0; i < secret.length; i++) {
    for (let j = i + min; j <= secret.length; j++) {
      const piece = secret.slice(i, j);
      if (/^\d+$/.test(piece) && piece.length < 6) continue;
      out.add(piece);
    }
  }
  return [...out];
}
