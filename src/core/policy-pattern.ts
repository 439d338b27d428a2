// A RabbitMQ policy's pattern, as JavaScript reads it. RabbitMQ reads patterns as PCRE (Erlang re);
// JavaScript's RegExp reads the ones people write the same way, and refuses some others ((?i),
// [[:alnum:]]): those topo cannot judge, and each caller says what that means for it.

/**
 * The pattern as a RegExp, or undefined when JavaScript cannot read it. `unicode`: also refuse what
 * JavaScript would otherwise read as another pattern (\A, [[:alnum:]] read as a character class),
 * for a caller that must not guess.
 */
export function policyRegExp(pattern: string, { unicode = false } = {}): RegExp | undefined {
  try {
    return new RegExp(pattern, unicode ? "u" : "");
  } catch {
    return undefined;
  }
}
