/** Every piece of a secret of 4 or more characters: what a test searches output for. */
export function fragments(secret: string, min = 4): string[] {
  const out = new Set<string>();
  for (let i = 0; i < secret.length; i++) for (let j = i + min; j <= secret.length; j++) out.add(secret.slice(i, j));
  return [...out];
}
