// A RabbitMQ pattern as JavaScript reads it: the same as PCRE reads it on the name's UTF-8 bytes,
// or not at all. Each case below was checked on RabbitMQ 3.10.8 (a policy set with the pattern, and
// the queues it was given to, or an operator policy's cap).

import { describe, expect, it } from "vitest";
import { policyRegExp } from "../../src/core/policy-pattern.js";

describe("policyRegExp", () => {
  it("reads the patterns people write, as RabbitMQ does", () => {
    for (const unicode of [false, true]) {
      const re = policyRegExp("^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$", { unicode });
      expect(["mplogin.sync", "topo.hold.mplogin.sync", "mplogin.async", "xmplogin.sync"].map((n) => re?.test(n))).toEqual([true, true, false, false]);
    }
    // An escaped sign is the sign, to both; JavaScript's strict reading refuses some.
    expect(policyRegExp("^mp\\-x$")?.test("mp-x")).toBe(true);
    expect(policyRegExp("^mp[\\]a]$")?.test("mp]")).toBe(true);
  });

  it("refuses what JavaScript would read as another pattern without a word", () => {
    // [^][] is "neither [ nor ]" to PCRE, "any character, then nothing" to JavaScript; []a] is "]"
    // or "a". An operator policy ^mp[^][]+\.async$ capped mppay.async while plan said it applied
    // to nothing.
    for (const pattern of ["^mp[^][]+\\.async$", "^mp[]a]", "[[:alpha:]]+", "[[.a.]]", "\\Amp", "mp\\Z", "^mp\\h", "\\Qmp\\E", "\\p{L}", "\\x{41}", "a\\v", "^mü"]) {
      expect(policyRegExp(pattern), pattern).toBeUndefined();
      expect(policyRegExp(pattern, { unicode: true }), pattern).toBeUndefined();
    }
    // JavaScript refuses these itself.
    expect(policyRegExp("(?i)mp")).toBeUndefined();
    expect(policyRegExp("^mp\\-x$", { unicode: true })).toBeUndefined();
  });

  it("matches a name beyond ASCII by its UTF-8 bytes, as RabbitMQ does", () => {
    // Measured: ^mp.\.async$ gave its policy to mpe.async and not to mpé.async; ^mq..\.async$ to mqé.async.
    expect(["mpe.async", "mpé.async"].map((n) => policyRegExp("^mp.\\.async$")?.test(n))).toEqual([true, false]);
    expect(policyRegExp("^mq..\\.async$")?.test("mqé.async")).toBe(true);
    expect(policyRegExp("^mp[^x]+\\.async$", { unicode: true })?.test("mpé.async")).toBe(true);
  });
});
