// Pure: small pieces of the sentences topo prints.

/** "a, b, c and 4 more": a long list of names cut to a readable length. */
export function names(list: readonly string[], max = 5): string {
  return list.length <= max ? list.join(", ") : `${list.slice(0, max).join(", ")} and ${list.length - max} more`;
}
