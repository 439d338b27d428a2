// Pure: the one way a list of values is kept per key.

/** Appends `value` to the list `map` holds for `key`, starting the list at the key's first value. */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
