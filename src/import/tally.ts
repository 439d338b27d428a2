// Pure: the most common value, which is how import picks every setting it makes a default.

import type { ArgValue } from "../model.js";
import { stableJson } from "../core/keys.js";

/**
 * The most frequent value (equal by stableJson) and how often it occurs; ties go to the first of
 * `prefer` that occurs, then to the first seen. Undefined for no values.
 */
export function mostCommon<T>(values: T[], prefer: T[] = []): { value: T; count: number } | undefined {
  const counts = new Map<string, { value: T; count: number; first: number }>();
  values.forEach((v, i) => {
    const k = stableJson(v as ArgValue);
    const c = counts.get(k);
    if (c) c.count++;
    else counts.set(k, { value: v, count: 1, first: i });
  });
  let best: { value: T; count: number; first: number } | undefined;
  const rank = (v: T) => {
    const i = prefer.findIndex((p) => stableJson(p as ArgValue) === stableJson(v as ArgValue));
    return i < 0 ? prefer.length : i;
  };
  for (const c of counts.values()) {
    if (!best || c.count > best.count || (c.count === best.count && (rank(c.value) < rank(best.value) || (rank(c.value) === rank(best.value) && c.first < best.first)))) best = c;
  }
  return best && { value: best.value, count: best.count };
}
