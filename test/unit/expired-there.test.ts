// Which messages moved into a replace's holding queue may have expired there: only those with an
// expiration of their own that has passed, and that did not come back out. Counting those that came
// back out too excused 500 messages without an expiration, which a policy's max-length put on the
// holding queue dropped, as "expired" (a helper measured it on 4.0.5 and 4.3.6; apply exited 0).

import { describe, expect, it } from "vitest";
import { expiredThere } from "../../src/broker/replace.js";

describe("expiredThere", () => {
  const parked = { expiring: [100, 100, 100, 5000], keys: ["a", "b", "b", "c"] };

  it("counts what did not come back out and whose expiration has passed", () => {
    expect(expiredThere(parked, new Map(), 200)).toBe(3);
    expect(expiredThere(parked, new Map(), 6000)).toBe(4);
    expect(expiredThere(parked, new Map(), 50)).toBe(0);
  });

  it("a message that came back out did not expire there, one of each for each that came out", () => {
    expect(expiredThere(parked, new Map([["a", 1], ["b", 2]]), 200)).toBe(0);
    expect(expiredThere(parked, new Map([["b", 1]]), 200)).toBe(2);
    // All came out: none expired, however long ago their expiration passed.
    expect(expiredThere(parked, new Map([["a", 1], ["b", 2], ["c", 1]]), 10_000)).toBe(0);
    // Another message of the same content that came out (a publisher's, during the switch) counts once.
    expect(expiredThere(parked, new Map([["a", 3]]), 200)).toBe(2);
  });
});
