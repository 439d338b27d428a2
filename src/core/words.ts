// Pure: small pieces of the sentences topo prints, used by every layer.

/** "1 queue", "2 queues". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A word as a shell command line takes it (a rabbitmqctl command in a hint): quoted only if it must be. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9._@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** "a, b, c and 4 more": a long list of names cut to a readable length. */
export function names(list: readonly string[], max = 5): string {
  return list.length <= max ? list.join(", ") : `${list.slice(0, max).join(", ")} and ${list.length - max} more`;
}
