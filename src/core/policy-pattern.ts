// A RabbitMQ pattern (a policy's, a permission's), as JavaScript reads it. RabbitMQ reads patterns
// as PCRE (Erlang re), on the name's UTF-8 bytes. JavaScript's RegExp reads the ones people write
// the same way; some others it refuses ((?i)), and some it reads as another pattern without a word:
// those topo cannot judge either, and each caller says what that means for it.

/**
 * The pattern as a RegExp that matches a name as RabbitMQ does, or undefined when JavaScript
 * cannot read it so. `unicode`: also refuse what only JavaScript's lenient reading takes (\-,
 * a lone "]"), for a caller that must not guess.
 */
export function policyRegExp(pattern: string, { unicode = false } = {}): RegExp | undefined {
  const key = `${unicode ? "u" : "-"}${pattern}`;
  if (COMPILED.has(key)) return COMPILED.get(key);
  // Plan asks of every policy for every queue, several times over: compiled (and checked) once
  // each. Without g or y flags a RegExp keeps no state between tests, so one may be shared.
  if (COMPILED.size >= COMPILED_MAX) COMPILED.clear();
  const re = compile(pattern, unicode);
  COMPILED.set(key, re);
  return re;
}

const COMPILED = new Map<string, RegExp | undefined>();
const COMPILED_MAX = 10_000;

function compile(pattern: string, unicode: boolean): RegExp | undefined {
  if (readsOtherwise(pattern)) return undefined;
  try {
    return new PcreLike(pattern, unicode ? "u" : "");
  } catch {
    return undefined;
  }
}

/**
 * Tests a name by its UTF-8 bytes, one character each, as RabbitMQ's re:run does without its
 * unicode option: "." or [^x] takes one byte of "é", not the letter, so ^mp.\.async$ does not
 * match mpé.async there. The pattern is ASCII (readsOtherwise), so its own letters read the same.
 */
class PcreLike extends RegExp {
  override test(name: string): boolean {
    return super.test(/^[\x00-\x7f]*$/.test(name) ? name : Buffer.from(name, "utf8").toString("latin1"));
  }
}

/** Escapes JavaScript and PCRE read alike, by letter (outside a class; inside one, \b too). */
const SHARED_ESCAPES = new Set([..."dDwWsSbBtnrfcxk"]);

/**
 * Whether JavaScript would read `pattern` as another pattern than PCRE does, while taking it:
 * - a class whose first member is "]" ([]a] and [^][] are "]" or "a", and neither "[" nor "]", to
 *   PCRE; an empty class and "any character" to JavaScript: measured on 3.10.8, an operator policy
 *   ^mp[^][]+\.async$ capped mppay.async while plan said no policy applies to it);
 * - a POSIX class inside a class ([[:alpha:]]), which JavaScript reads as a class of its letters;
 * - an escaped letter PCRE gives a meaning JavaScript does not (\A, \Z, \h, \Q, \p, \e, \v, \x{41}):
 *   JavaScript reads most as the letter itself;
 * - any character beyond ASCII: PCRE reads its UTF-8 bytes one by one (ü+ repeats the second).
 */
function readsOtherwise(pattern: string): boolean {
  if (!/^[\x00-\x7f]*$/.test(pattern)) return true;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (/[A-Za-z]/.test(next) && !SHARED_ESCAPES.has(next)) return true;
      if (next === "x" && pattern[i + 2] === "{") return true;
      i++;
      continue;
    }
    if (inClass) {
      if (c === "[" && /^\[[:.=]/.test(pattern.slice(i))) return true;
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      const first = pattern[i + 1] === "^" ? i + 2 : i + 1;
      if (pattern[first] === "]") return true;
      i = first - 1;
    }
  }
  return false;
}
