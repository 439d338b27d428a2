// The broker's words, read whole, and advice only where they say what caused a refusal.

import { describe, expect, it } from "vitest";
import { hintFor, replyText } from "../../src/broker/amqp.js";

const closed = (code: number, message: string) => Object.assign(new Error(`Channel closed by server: ${code} (PRECONDITION-FAILED) with message "${message}"`), { code });

describe("broker replies", () => {
  it("keeps the whole reply, quotes and all", () => {
    const e = closed(406, `PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost 'v': {routing_key_but_no_dlx_defined,<<"k">>}`);
    expect(replyText(e).text).toBe(`406 PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost 'v': {routing_key_but_no_dlx_defined,<<"k">>}`);
  });

  it("tells the causes of a 406 apart, and gives none it cannot place", () => {
    expect(hintFor(406, "406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost 'v'")).toMatch(/exists with other properties/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue 'q' of queue type rabbit_classic_queue")).toMatch(/refuses the argument/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - invalid arg 'x-consumer-timeout'")).not.toMatch(/exists with other properties/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - queue 'q' in vhost 'v' not empty")).toMatch(/holds messages/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - queue 'q' in vhost 'v' in use")).toMatch(/consumers/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - something new")).toBeUndefined();
    expect(hintFor(541, "541 INTERNAL_ERROR")).not.toMatch(/transient non-exclusive queues\) looks like: permit/);
  });
});
