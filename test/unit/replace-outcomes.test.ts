// What a replace says of how it ended. Which messages moved into a replace's holding queue may
// have expired there: only those with an expiration of their own that has passed, and that did not
// come back out. Counting those that came back out too excused 500 messages without an expiration,
// which a policy's max-length put on the holding queue dropped, as "expired" (a helper measured it
// on 4.0.5 and 4.3.6; apply exited 0). And a fetch the broker fails (541) is named as such.

import { describe, expect, it } from "vitest";
import { expiredThere, fetchCrashed } from "../../src/broker/replace.js";
import { BrokerError } from "../../src/errors.js";

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

describe("fetchCrashed", () => {
  const crash = new BrokerError("async", "move messages from mplogin.async to topo.hold.mplogin.async -> 541 INTERNAL_ERROR", { status: 541, hints: ["a denied deprecated feature"] });

  it("names the message RabbitMQ 4 cannot hand over, not a deprecated feature, and for a quorum queue that each try spends a delivery", () => {
    const q = fetchCrashed(crash, "mplogin.async", true);
    expect(q.message).toBe(crash.message);
    expect(q.transient).toBe(false);
    expect(q.hints).toEqual([expect.stringMatching(/^the broker failed to hand topo a message of mplogin\.async \(541 INTERNAL_ERROR\): RabbitMQ 4 does so for a message published over AMQP 1\.0 .*a quorum queue, counts a delivery of each: at its x-delivery-limit .* it drops them, so do not run topo apply again until that message is gone\. Take it off mplogin\.async/)]);
    expect(fetchCrashed(crash, "mplogin.async", false).hints[0]).not.toContain("delivery");
  });

  it("leaves any other failure as it is", () => {
    const other = new BrokerError("async", "move messages from a to b -> 406 PRECONDITION_FAILED", { status: 406 });
    expect(fetchCrashed(other, "a", true)).toBe(other);
  });
});
