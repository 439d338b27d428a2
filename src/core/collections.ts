// Pure: the one way a list of values is kept per key.

/** Appends `value` to the list `map` holds for `key`, starting the list at the key's first value. */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * An empty record for values kept by a name that a broker or a file chose: it inherits nothing,
 * so a user, queue or cluster named `constructor`, `toString` or `__proto__` is looked up, set and
 * listed as any other name (on a plain object, `constructor` was found before it was set, and
 * `__proto__` was never set at all).
 */
export function byName<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/**
 * The value `record` holds under `key` itself, or undefined: never one it inherits. For a table
 * or a record looked up by a name a broker, a file or the environment chose (`constructor` found
 * Object's constructor on a plain object, and `toString` a function).
 */
export function ownValue<V>(record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * Every item of `items` added to `list`, one at a time: list.push(...items) passes each as an
 * argument, and a list as long as a large topology's objects (150,000) overflows the call stack.
 */
export function pushAll<T>(list: T[], items: Iterable<T>): void {
  for (const x of items) list.push(x);
}
