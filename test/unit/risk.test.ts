// The replace-risk rules on plain objects: one test per rule, and the changes that are no risk.

import { describe, expect, it } from "vitest";
import type { ActualCluster, Binding, DesiredCluster, Exchange, Policy, Queue, QueueFacts, Resource } from "../../src/model.js";
import { normalize, type RawConfig } from "../../src/config/normalize.js";
import { diffCluster } from "../../src/plan/diff.js";
import { holdingQueue } from "../../src/core/naming.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { dataLossLines } from "../../src/plan/guards.js";
import { duration, holdingQueueFor, policyFor, queueLimits, replaceRisks, type HeldMessages, type ReplaceCase } from "../../src/plan/risk.js";

// --- builders -------------------------------------------------------------------------------
const queue = (o: Partial<Queue> = {}): Queue => ({ kind: "queue", name: "mplogin.async", type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {}, ...o });
const policy = (o: Partial<Policy> & { name: string }): Policy => ({ kind: "policy", pattern: ".*", applyTo: "queues", priority: 0, definition: {}, ...o });
const held = (o: Partial<HeldMessages> = {}): HeldMessages => ({ ready: 0, unacked: 0, consumers: 0, bytes: 0, ...o });
const replace = (o: Partial<ReplaceCase> = {}): ReplaceCase => ({
  before: queue(),
  after: queue({ arguments: { "x-queue-version": 2 } }),
  hold: holdingQueue("mplogin.async"),
  held: held(),
  deletesQueue: true,
  policies: [],
  ...o,
});
const rules = (c: ReplaceCase) => replaceRisks(c).map((r) => r.rule);

describe("the holding queue", () => {
  it("is a quorum queue when the queue is one before or after the replace (replicated, and keeping transient messages on disk as the quorum queue did), else classic", () => {
    const quorum = queue({ type: "quorum" });
    const types = (after: Queue, before?: Queue) => holdingQueueFor(after, queueLimits(after, []), before).type;
    expect(types(queue(), queue())).toBe("classic");
    expect(types(queue(), undefined)).toBe("classic");
    expect(types(quorum, queue())).toBe("quorum");
    expect(types(queue(), quorum)).toBe("quorum");
    expect(types(quorum, undefined)).toBe("quorum");
    // A stream's messages cannot be fetched with basic.get, so its holding queue stays classic.
    expect(types(queue({ type: "stream" }), queue())).toBe("classic");
    // Durable always (a quorum queue must be), with the dead-lettering the queue will have.
    const dl = holdingQueueFor(quorum, queueLimits(queue({ arguments: { "x-dead-letter-exchange": "dlx" } }), []), queue());
    expect(dl).toMatchObject({ name: "topo.hold.mplogin.async", type: "quorum", durable: true, autoDelete: false, arguments: { "x-dead-letter-exchange": "dlx" } });
  });
});

describe("replace risks", () => {
  it("none for an empty, unused queue, whatever the new arguments", () => {
    const after = queue({ arguments: { "x-max-length": 0, "x-message-ttl": 0, "x-expires": 1, "x-overflow": "reject-publish", "x-max-length-bytes": 0 } });
    expect(replaceRisks(replace({ after }))).toEqual([]);
  });

  it("consumers: any consumer attached, naming the unacknowledged messages it holds", () => {
    const r = replaceRisks(replace({ held: held({ ready: 6, unacked: 4, consumers: 1 }) }));
    expect(r).toEqual([
      {
        rule: "consumers",
        reason: "1 consumer is attached, holding 4 unacknowledged messages: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue",
        advice: "stop the workers that consume from mplogin.async first",
      },
    ]);
    // Idle workers too: they take what is published while the queue is moved.
    expect(rules(replace({ held: held({ consumers: 2 }) }))).toEqual(["consumers"]);
  });

  it("consumers of a quorum queue: says that its count takes in a client's unacknowledged basic.get, and to stop that client too", () => {
    // A quorum queue counts each fetched, unacknowledged message as a consumer (3.10.8, 4.3.6).
    const quorum = queue({ type: "quorum", arguments: { "x-queue-type": "quorum" } });
    const r = replaceRisks(replace({ before: quorum, after: queue({ type: "quorum", arguments: { "x-delivery-limit": 5 } }), held: held({ ready: 95, unacked: 5, consumers: 5 }) }));
    expect(r).toEqual([
      {
        rule: "consumers",
        reason:
          "5 consumers are attached (as the quorum queue counts them: a client that fetched messages with basic.get and has not acknowledged them counts as one consumer for each), holding 5 unacknowledged messages: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue",
        advice: "stop the workers that consume from mplogin.async first, and let any client that fetched messages from it acknowledge them or close its channel",
      },
    ]);
  });

  it("unacked: messages fetched with basic.get and not acknowledged, with no consumer", () => {
    const r = replaceRisks(replace({ held: held({ ready: 1, unacked: 2 }) }));
    expect(r.map((x) => x.rule)).toEqual(["unacked"]);
    expect(r[0]!.reason).toBe(
      "2 messages are fetched but not acknowledged: they are lost with the old queue (basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits)",
    );
  });

  // What a user who stopped the workers, as plan told them to, meets: a Celery worker in warm
  // shutdown has cancelled its consumer and still holds its reserved tasks. The advice must fit
  // that worker, not only a client that called basic.get.
  it("unacked: the advice says to wait for a stopping Celery worker to exit, and that the replace then moves them", () => {
    const r = replaceRisks(replace({ held: held({ ready: 12, unacked: 8 }) }));
    expect(r[0]!.advice).toBe(
      "let that client acknowledge them or close its channel (a Celery worker that is stopping: wait until it has exited), then run topo apply again: the replace moves them with the rest of mplogin.async",
    );
    expect(replaceRisks(replace({ held: held({ ready: 0, unacked: 1 }) }))[0]!.advice).toMatch(/^let that client acknowledge it or close its channel .*: the replace moves it with/);
  });

  it("x-max-length: below what the queue holds (ready and unacknowledged), with what the overflow does", () => {
    const at = (args: Queue["arguments"], h = held({ ready: 100 })) => replaceRisks(replace({ before: queue({ arguments: { "x-max-length": 1000 } }), after: queue({ arguments: args }), held: h }));
    expect(at({ "x-max-length": 10 })[0]).toEqual({
      rule: "x-max-length",
      reason: "x-max-length 10 is below the 100 messages it holds: drop-head would discard the oldest 90",
      advice: "raise x-max-length to at least 100, or let the workers drain the queue first (below 10)",
    });
    expect(at({ "x-max-length": 5, "x-overflow": "reject-publish" }, held({ ready: 15 }))[0]!.reason).toBe(
      "x-max-length 5 is below the 15 messages it holds: with x-overflow reject-publish the queue would refuse 10 of them",
    );
    expect(at({ "x-max-length": 5, "x-overflow": "reject-publish-dlx", "x-dead-letter-exchange": "dlx" }, held({ ready: 6 }))[0]!.reason).toBe(
      'x-max-length 5 is below the 6 messages it holds: with x-overflow reject-publish-dlx the queue would refuse 1 of them and dead-letter them to exchange "dlx"',
    );
    expect(at({ "x-max-length": 5, "x-dead-letter-exchange": "dlx" }, held({ ready: 7 }))[0]!.reason).toMatch(/drop-head would dead-letter the oldest 2 to exchange "dlx"$/);
    // Unacknowledged messages count: they are ready again once the workers stop.
    expect(rules(replace({ after: queue({ arguments: { "x-max-length": 10 } }), held: held({ ready: 8, unacked: 3, consumers: 1 }) }))).toEqual(["consumers", "x-max-length"]);
    // Exactly at the limit fits.
    expect(at({ "x-max-length": 100 })).toEqual([]);
  });

  it("x-max-length-bytes: below the bytes it holds, or bytes the statistics do not know yet", () => {
    const after = queue({ arguments: { "x-max-length-bytes": 1000 } });
    expect(replaceRisks(replace({ after, held: held({ ready: 3, bytes: 1500 }) }))).toEqual([
      { rule: "x-max-length-bytes", reason: "x-max-length-bytes 1000 is below the 1500 bytes it holds: drop-head would discard the oldest messages", advice: "raise x-max-length-bytes to at least 1500, or let the workers drain the queue first" },
    ]);
    expect(rules(replace({ after, held: held({ ready: 3, bytes: 1000 }) }))).toEqual([]);
    // Bytes the statistics have not counted yet: not guessed, but not passed either.
    expect(replaceRisks(replace({ after, held: held({ ready: 3, bytes: undefined }) }))).toEqual([
      {
        rule: "x-max-length-bytes",
        reason: "x-max-length-bytes 1000 applies, and the broker's statistics do not count the bytes of the 3 messages it holds now",
        advice: "run topo apply again once the queue's count has not changed for 5 s (the statistics count bytes every 5 s), or let the workers drain it",
      },
    ]);
    expect(rules(replace({ after, held: held({ bytes: undefined }) }))).toEqual([]);
  });

  it("x-message-ttl: new or shorter while the queue holds messages, 0 included", () => {
    const h = held({ ready: 20 });
    expect(replaceRisks(replace({ after: queue({ arguments: { "x-message-ttl": 0 } }), held: h }))[0]!.reason).toBe(
      "x-message-ttl 0 is new: the 20 messages it holds would expire as they are moved back, with no consumer to take them",
    );
    expect(replaceRisks(replace({ before: queue({ arguments: { "x-message-ttl": 600000 } }), after: queue({ arguments: { "x-message-ttl": 60000 } }), held: h }))[0]!.reason).toBe(
      "x-message-ttl 60000 is shorter than the 600000 ms it has now: the 20 messages it holds expire unless consumed within 60 s of the replace",
    );
    // The same or a longer TTL: a moved message's TTL counts from the move, so it only gains time.
    expect(rules(replace({ before: queue({ arguments: { "x-message-ttl": 60000 } }), after: queue({ arguments: { "x-message-ttl": 60000, "x-max-priority": 5 } }), held: h }))).toEqual([]);
    expect(rules(replace({ before: queue({ arguments: { "x-message-ttl": 60000 } }), after: queue({ arguments: { "x-message-ttl": 90000 } }), held: h }))).toEqual([]);
    // Nothing held: nothing to expire.
    expect(rules(replace({ after: queue({ arguments: { "x-message-ttl": 0 } }) }))).toEqual([]);
  });

  it("x-expires: new or shorter while the queue holds messages", () => {
    const r = replaceRisks(replace({ after: queue({ arguments: { "x-expires": 3600000 } }), held: held({ ready: 2 }) }));
    expect(r.map((x) => x.reason)).toEqual(["x-expires 3600000 is new: the queue is deleted with the 2 messages it holds if no worker uses it within 60 min of the replace"]);
    expect(rules(replace({ before: queue({ arguments: { "x-expires": 1000 } }), after: queue({ arguments: { "x-expires": 5000 } }), held: held({ ready: 2 }) }))).toEqual([]);
  });

  it("stream: topo can neither move a stream's messages nor make sure it holds none", () => {
    const before = queue({ type: "stream", arguments: { "x-max-age": "1D" } });
    const after = queue({ type: "stream", arguments: { "x-max-age": "7D" } });
    expect(rules(replace({ before, after, held: held({ ready: 3, bytes: undefined }) }))).toEqual(["stream"]);
    expect(rules(replace({ before, after }))).toEqual(["stream"]);
    // Into a stream is fine: it is published to like any queue.
    expect(rules(replace({ after: queue({ type: "stream" }), held: held({ ready: 3 }) }))).toEqual([]);
  });

  it("x-max-age: replacing a queue that holds messages by a stream with a max-age (argument or policy), whose retention deletes them by their age since the move", () => {
    const into = (args: Queue["arguments"], o: Partial<ReplaceCase> = {}) => replaceRisks(replace({ after: queue({ type: "stream", arguments: args }), held: held({ ready: 1000, bytes: 7000 }), ...o }));
    expect(into({ "x-max-age": "2s", "x-stream-max-segment-size-bytes": 2000 })).toEqual([
      {
        rule: "x-max-age",
        reason:
          "x-max-age 2s of the stream: the 1000 messages it holds are written into it as they are moved back, and its retention deletes them once they are older than 2 s (counted from the move) and a later publish starts a new segment: a consumer that has not read them within 2 s of the replace never gets them",
        advice: "let the workers drain the queue first",
      },
    ]);
    // However long: moved messages are deleted max-age after the move, read or not.
    expect(into({ "x-max-age": "7D" }).map((r) => r.reason)).toEqual([expect.stringMatching(/^x-max-age 7D of the stream: .* older than 7 days \(counted from the move\)/)]);
    // A policy's max-age is the stream's, higher or lower than the argument.
    const policies = [policy({ name: "retain", applyTo: "streams", definition: { "max-age": "1h" } })];
    expect(into({}, { policies }).map((r) => r.reason)).toEqual([expect.stringMatching(/^policy retain's max-age 1h of the stream: .* older than 60 min/)]);
    expect(into({ "x-max-age": "7D" }, { policies }).map((r) => r.reason)).toEqual([expect.stringMatching(/^policy retain's max-age 1h /)]);
    expect(into({ "x-max-age": "1s" }, { policies }).map((r) => r.reason)).toEqual([expect.stringMatching(/^policy retain's max-age 1h /)]);
    // A policy for classic queues does not reach the stream.
    expect(into({ "x-max-age": "1D" }, { policies: [policy({ name: "classic", applyTo: "classic_queues", definition: { "max-age": "1s" } })] }).map((r) => r.reason)).toEqual([expect.stringMatching(/^x-max-age 1D /)]);
    // Two policies of one priority: either may apply, so the shorter counts.
    const tie = [policy({ name: "a", definition: { "max-age": "1h" } }), policy({ name: "b", definition: { "max-age": "10m" } })];
    expect(into({ "x-max-age": "1m" }, { policies: tie }).map((r) => r.reason)).toEqual([expect.stringMatching(/^policy b's max-age 10m /)]);
    // Nothing held, no max-age, or an old queue whose own TTL was no longer: no risk.
    expect(rules(replace({ after: queue({ type: "stream", arguments: { "x-max-age": "2s" } }) }))).toEqual([]);
    expect(rules(replace({ after: queue({ type: "stream", arguments: { "x-stream-max-segment-size-bytes": 2000 } }), held: held({ ready: 3 }) }))).toEqual([]);
    expect(into({ "x-max-age": "1h" }, { before: queue({ arguments: { "x-message-ttl": 60000 } }) })).toEqual([]);
    expect(into({ "x-max-age": "1h" }, { before: queue({ arguments: { "x-message-ttl": 3600000 } }) })).toEqual([]);
    expect(rules(replace({ before: queue({ arguments: { "x-message-ttl": 3600001 } }), after: queue({ type: "stream", arguments: { "x-max-age": "1h" } }), held: held({ ready: 3 }) }))).toEqual(["x-max-age"]);
    // An unknown unit is none RabbitMQ reads.
    expect(into({ "x-max-age": "2w" })).toEqual([]);
  });

  it("x-max-length-bytes of a stream: it counts what it stores (bodies, properties and headers), the statistics bodies only", () => {
    const after = queue({ type: "stream", arguments: { "x-max-length-bytes": 100000, "x-stream-max-segment-size-bytes": 2000 } });
    // As measured: 1,000 bodies of 100 bytes, exactly the limit, and the stream kept 450.
    expect(replaceRisks(replace({ after, held: held({ ready: 1000, bytes: 100000 }) }))).toEqual([
      {
        rule: "x-max-length-bytes",
        reason:
          "x-max-length-bytes 100000 of the stream may not keep the 1000 messages it holds: their bodies are 100000 bytes by the broker's statistics, and a stream counts each message with its properties and headers (up to 131072 bytes more a message at RabbitMQ's default frame_max), which no statistic counts; past the limit its retention deletes the oldest segments, with the moved messages in them",
        advice: "raise x-max-length-bytes to at least 131172000, or let the workers drain the queue first",
      },
    ]);
    // Bytes not counted yet: not guessed.
    expect(replaceRisks(replace({ after, held: held({ ready: 3, bytes: undefined }) }))[0]!.reason).toMatch(/the broker's statistics do not count their bytes yet/);
    // Room for the bodies and a frame of headers each: no risk.
    const big = queue({ type: "stream", arguments: { "x-max-length-bytes": 20_000_000_000 } });
    expect(rules(replace({ after: big, held: held({ ready: 1000, bytes: 100000 }) }))).toEqual([]);
    // A policy's is the stream's, higher or lower than the argument.
    const policies = [policy({ name: "cap", definition: { "max-length-bytes": 1000 } })];
    expect(replaceRisks(replace({ after: big, policies, held: held({ ready: 1, bytes: 10 }) })).map((r) => r.reason)).toEqual([expect.stringMatching(/^policy cap's max-length-bytes 1000 of the stream may not keep the 1 message it holds/)]);
    expect(rules(replace({ after: queue({ type: "stream", arguments: { "x-max-length-bytes": 1000 } }), policies: [policy({ name: "roomy", definition: { "max-length-bytes": 20_000_000_000 } })], held: held({ ready: 1000, bytes: 100000 }) }))).toEqual([]);
    expect(rules(replace({ after, held: held() }))).toEqual([]);
  });

  it("hold-policy: a policy that limits the holding queue", () => {
    const policies = [policy({ name: "cap", pattern: "^topo\\.", definition: { "max-length": 10, "message-ttl": 1000 } })];
    const r = replaceRisks(replace({ policies, held: held({ ready: 11 }) }));
    expect(r.map((x) => x.reason)).toEqual([
      "policy cap's max-length 10 applies to topo.hold.mplogin.async, which would hold the 11 messages: drop-head would discard the oldest 1",
      "policy cap's message-ttl 1000 applies to topo.hold.mplogin.async: the 11 messages waiting there expire after 1 s",
    ]);
    expect(r[0]!.advice).toBe("change the policy's pattern so that it does not match topo.hold.mplogin.async");
  });

  it("hold-policy: a queue that holds nothing still has its publishers, whose messages wait in the holding queue during the replace", () => {
    const policies = [policy({ name: "cap", pattern: "^topo\\.", definition: { "max-length": 10, "max-length-bytes": 100, "message-ttl": 1000, expires: 5000 } })];
    expect(replaceRisks(replace({ policies })).map((x) => x.reason)).toEqual([
      "policy cap's max-length 10 applies to topo.hold.mplogin.async and is below the limit of mplogin.async (none): the queue holds no message now, but topo.hold.mplogin.async takes every message published during the replace, and once they pass 10 drop-head would discard the oldest messages",
      "policy cap's max-length-bytes 100 applies to topo.hold.mplogin.async and is below the limit of mplogin.async (none): the queue holds no message now, but topo.hold.mplogin.async takes every message published during the replace, and once their bytes pass 100 drop-head would discard the oldest messages",
      "policy cap's message-ttl 1000 applies to topo.hold.mplogin.async and is below the message TTL of mplogin.async (none): the queue holds no message now, but topo.hold.mplogin.async takes every message published during the replace, and they expire there after 1 s",
      "policy cap's expires 5000 applies to topo.hold.mplogin.async and is below the expiry of mplogin.async (none): the queue holds no message now, but topo.hold.mplogin.async takes every message published during the replace, and it is deleted with them after 5 s unused",
    ]);
    // The same limits on the queue itself (a vhost-wide policy): the holding queue loses nothing the queue would keep.
    expect(rules(replace({ policies: [{ ...policies[0]!, pattern: ".*" }] }))).toEqual([]);
    // Finishing a replace whose queue is new already only empties the holding queue.
    expect(rules(replace({ deletesQueue: false, policies }))).toEqual([]);
  });

  it("hold-policy: a length limit on the holding queue below the queue's own, even above what it holds (live publishes land there too)", () => {
    const cap = (n: number, pattern = "^topo\\.hold\\.") => policy({ name: "cap", pattern, definition: { "max-length": n, "max-length-bytes": n * 10 } });
    expect(replaceRisks(replace({ policies: [cap(700)], held: held({ ready: 500, bytes: 500 }) })).map((x) => x.reason)).toEqual([
      "policy cap's max-length 700 applies to topo.hold.mplogin.async and is below the limit of mplogin.async (none): it takes the 500 messages the queue holds and every message published during the replace, and once they pass 700 drop-head would discard the oldest messages",
      "policy cap's max-length-bytes 7000 applies to topo.hold.mplogin.async and is below the limit of mplogin.async (none): it takes the 500 messages the queue holds and every message published during the replace, and once their bytes pass 7000 drop-head would discard the oldest messages",
    ]);
    // The same limit on the queue itself (a vhost-wide cap): the holding queue drops nothing the queue would keep.
    expect(rules(replace({ policies: [cap(700, ".*")], held: held({ ready: 500, bytes: 500 }) }))).toEqual([]);
    expect(rules(replace({ before: queue({ arguments: { "x-max-length": 600, "x-max-length-bytes": 6000 } }), policies: [cap(700)], held: held({ ready: 500, bytes: 500 }) }))).toEqual([]);
    expect(rules(replace({ before: queue({ arguments: { "x-max-length": 800 } }), policies: [cap(700)], held: held({ ready: 500, bytes: 500 }) }))).toEqual(["hold-policy", "hold-policy"]);
    // Finishing a replace whose queue is new already only empties the holding queue.
    expect(rules(replace({ deletesQueue: false, policies: [cap(700)], held: held({ ready: 500, bytes: 500 }) }))).toEqual([]);
  });

  it("limits from a policy combine with the arguments as RabbitMQ does", () => {
    const policies = [
      policy({ name: "low", priority: 1, definition: { "max-length": 3, overflow: "reject-publish" } }),
      policy({ name: "high", priority: 2, pattern: "^mp", definition: { "max-length": 50, "message-ttl": 5000 } }),
      policy({ name: "exchanges", priority: 9, applyTo: "exchanges", definition: { "max-length": 1 } }),
    ];
    expect(policyFor(queue(), policies)?.name).toBe("high");
    // The lower of argument and policy for lengths and TTLs, the argument for overflow.
    expect(queueLimits(queue({ arguments: { "x-max-length": 100, "x-overflow": "drop-head" } }), policies)).toEqual({
      maxLength: { value: 50, from: "policy high's max-length" },
      maxLengthBytes: undefined,
      overflow: "drop-head",
      messageTtl: { value: 5000, from: "policy high's message-ttl" },
      expires: undefined,
      deadLetterExchange: undefined,
    });
    expect(queueLimits(queue({ arguments: { "x-max-length": 10 } }), policies).maxLength).toEqual({ value: 10, from: "x-max-length" });
    expect(queueLimits(queue({ name: "other" }), policies)).toMatchObject({ maxLength: { value: 3 }, overflow: "reject-publish" });
    // A quorum queue takes the policy's overflow over its own argument (measured on 3.10.8).
    // A classic queue's argument wins over its policy's overflow; a quorum queue takes the
    // policy's over its own (measured on 3.10.8).
    expect(queueLimits(queue({ name: "other", arguments: { "x-overflow": "drop-head" } }), policies)).toMatchObject({ overflow: "drop-head" });
    expect(queueLimits(queue({ type: "quorum", name: "other", arguments: { "x-overflow": "drop-head" } }), policies)).toMatchObject({ overflow: "reject-publish" });
    expect(queueLimits(queue({ type: "quorum", name: "other", arguments: { "x-overflow": "reject-publish" } }), [])).toMatchObject({ overflow: "reject-publish" });
    // 60 messages: over "high" on the queue, and over "low" (pattern .*) on the holding queue;
    // "high"'s TTL may be one they never had (set after they were enqueued).
    expect(rules(replace({ policies, held: held({ ready: 60 }) }))).toEqual(["x-max-length", "x-message-ttl", "hold-policy"]);
  });

  it("an operator policy caps the limits whatever the arguments and policies say", () => {
    const operatorPolicies = [policy({ name: "cap", pattern: "^mplogin\\.", definition: { "max-length": 20, "message-ttl": 100000 } })];
    expect(queueLimits(queue({ arguments: { "x-max-length": 100 } }), [], operatorPolicies)).toMatchObject({
      maxLength: { value: 20, from: "operator policy cap's max-length" },
      messageTtl: { value: 100000, from: "operator policy cap's message-ttl" },
    });
    expect(queueLimits(queue({ arguments: { "x-max-length": 10 } }), [], operatorPolicies).maxLength).toEqual({ value: 10, from: "x-max-length" });
    // Its overflow (RabbitMQ 3.12.7 and later) wins over a policy's, and over a quorum queue's own;
    // a classic queue's own x-overflow still wins (measured on 4.0.5 and 4.3.6).
    const refuse = [policy({ name: "refuse", pattern: "^mplogin\\.", definition: { overflow: "reject-publish" } })];
    const dropHead = [policy({ name: "drop", pattern: "^mplogin\\.", definition: { overflow: "drop-head" } })];
    expect(queueLimits(queue(), dropHead, refuse).overflow).toBe("reject-publish");
    expect(queueLimits(queue({ type: "quorum", arguments: { "x-overflow": "drop-head" } }), dropHead, refuse).overflow).toBe("reject-publish");
    expect(queueLimits(queue({ arguments: { "x-overflow": "drop-head" } }), [], refuse).overflow).toBe("drop-head");
    // It applies to the old queue as well, but a TTL of a policy is no deadline the messages
    // surely had already: they may have been enqueued before it was set.
    expect(rules(replace({ operatorPolicies, held: held({ ready: 30 }) }))).toEqual(["x-max-length", "x-message-ttl"]);
  });

  it("a policy's TTL that applies to the queue before and after is a risk: RabbitMQ did not set it on what the queue held before the policy", () => {
    // Measured on 3.10.8: 5 messages published, then an operator policy's message-ttl 1000; 7 s
    // later the queue held 5; a replace moved them back, and 7 s after it held none.
    for (const kind of ["policies", "operatorPolicies"] as const) {
      const ps = [policy({ name: "ttl1s", pattern: "^mplogin\\.async$", definition: { "message-ttl": 1000 } })];
      const risks = replaceRisks(replace({ [kind]: ps, held: held({ ready: 5 }) }));
      const who = kind === "policies" ? "policy" : "operator policy";
      expect(risks).toEqual([
        {
          rule: "x-message-ttl",
          reason: `${who} ttl1s's message-ttl 1000 counts from the move: it applies to the queue now, but RabbitMQ sets a message's expiry as it enqueues it, so what the queue held before the policy was set has none, and topo cannot tell which messages those are: the 5 messages it holds expire unless consumed within 1 s of the replace`,
          advice: "let the workers drain the queue first",
        },
      ]);
      // An empty queue, or one whose own x-message-ttl every message got, is no risk.
      expect(rules(replace({ [kind]: ps, held: held({ ready: 0 }) }))).toEqual([]);
      const own = queue({ arguments: { "x-message-ttl": 1000 } });
      expect(rules(replace({ [kind]: ps, before: own, after: queue({ arguments: { "x-message-ttl": 1000, "x-max-priority": 2 } }), held: held({ ready: 5 }) }))).toEqual([]);
      // An own TTL longer than the policy's: what the queue held before the policy has the longer deadline.
      expect(rules(replace({ [kind]: ps, before: queue({ arguments: { "x-message-ttl": 60000 } }), after: queue({ arguments: { "x-message-ttl": 60000, "x-max-priority": 2 } }), held: held({ ready: 5 }) }))).toEqual(["x-message-ttl"]);
    }
  });

  it("no risk from changes that drop nothing: priority, overflow or a dead-letter exchange alone, durability, queue type", () => {
    const h = held({ ready: 50, bytes: 5000 });
    const changes: Queue["arguments"][] = [{ "x-max-priority": 10 }, { "x-overflow": "reject-publish" }, { "x-dead-letter-exchange": "dlx" }, { "x-single-active-consumer": true }, { "x-max-length": 50 }];
    for (const args of changes) {
      expect(rules(replace({ before: queue({ arguments: { "x-max-priority": 2 } }), after: queue({ arguments: args }), held: h }))).toEqual([]);
    }
    expect(rules(replace({ after: queue({ type: "quorum" }), held: h }))).toEqual([]);
    expect(rules(replace({ after: queue({ durable: false }), held: h }))).toEqual([]);
  });

  it("finishing an interrupted replace whose queue is gone or new only moves back: the mover stops when full", () => {
    const after = queue({ arguments: { "x-max-length": 5, "x-message-ttl": 0 } });
    expect(rules(replace({ before: holdingQueue("mplogin.async"), after, held: held({ ready: 15, consumers: 2 }), deletesQueue: false }))).toEqual([]);
  });

  it("duration reads as people say it", () => {
    expect([0, 999, 1500, 60000, 3600000, 7200000, 86400000 * 3].map(duration)).toEqual(["0 ms", "999 ms", "1.5 s", "60 s", "60 min", "2 h", "3 days"]);
  });
});

// --- diff and render ----------------------------------------------------------------------------
const raw = (o: Partial<RawConfig> = {}): RawConfig => ({
  version: 1,
  clusters: { sync: { url: "amqp://u:p@h:5672/s" }, async: { url: "amqp://u:p@h:5672/a" } },
  services: ["mplogin"],
  ...o,
});
const actual = (resources: Resource[], o: Partial<ActualCluster> = {}): ActualCluster => ({ vhostExists: true, version: "3.10.8", nodes: [], resources, queueFacts: {}, ...o });
function desiredOf(r: RawConfig, cluster: string): DesiredCluster {
  const { desired, problems } = normalize(r);
  expect(problems).toEqual([]);
  return desired.clusters.find((c) => c.target.name === cluster)!;
}

describe("plan shows the risks of a replace", () => {
  const d = desiredOf(raw({ services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 10 } } }] }), "async");
  const others = d.resources.filter((r) => r.kind !== "queue");
  const before = queue({ arguments: { "x-max-length": 1000 } });

  it("under the replace line, in text and JSON, once the broker's counts are known", () => {
    const a = actual([...others, before], { queueFacts: { "mplogin.async": { messages: 100, ready: 96, unacked: 4, consumers: 1, bytes: 900 } } });
    const plan = diffCluster(d, a, "mp");
    const r = plan.actions[0]!;
    expect(r.op === "replace" && r.risks?.map((x) => x.rule)).toEqual(["consumers", "x-max-length"]);
    expect(renderText({ clusters: [plan] })).toContain(
      [
        "  -/+ replace queue mplogin.async [holds 100 messages]",
        "      because arguments.x-max-length: 1000 -> 10",
        "      ! messages at risk: 1 consumer is attached, holding 4 unacknowledged messages: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue",
        "      ! messages at risk: x-max-length 10 is below the 100 messages it holds: drop-head would discard the oldest 90",
        "      then re-creates its 1 binding",
      ].join("\n"),
    );
    const j = planJson({ clusters: [plan] }) as any;
    expect(j.clusters[0].actions[0].risks.map((x: { rule: string }) => x.rule)).toEqual(["consumers", "x-max-length"]);
  });

  it("a stream's replace is at risk before the statistics count it, as after: topo can neither move nor count a stream's messages", () => {
    // Plan said nothing just after a deploy (no counts yet), and an apply a moment later refused it.
    const sd = desiredOf(raw({ services: [{ name: "mpcart", sync: false, async: { type: "stream", arguments: { "x-max-age": "1D" } } }] }), "async");
    const old = { ...queue({ name: "mpcart.async", type: "stream", arguments: { "x-max-age": "7D" } }) };
    const r = diffCluster(sd, actual([...sd.resources.filter((x) => x.kind !== "queue"), old]), "mp").actions.find((x) => x.op === "replace");
    expect(r?.op === "replace" && r.risks?.map((x) => x.rule)).toEqual(["stream"]);
  });

  it("says the count of what consumers hold is not known, rather than give the ready messages as all it holds", () => {
    // The statistics did not catch up within apply's bound (broker/read.ts readLiveCounts).
    const facts = { messages: 2, ready: 2, unacked: 0, unackedUnknown: true, consumers: 1 };
    const plan = diffCluster(d, actual([...others, before], { queueFacts: { "mplogin.async": facts } }), "mp");
    expect(renderText({ clusters: [plan] })).toContain(
      [
        "  -/+ replace queue mplogin.async [holds 2 ready messages and an unknown number unacknowledged]",
        "      because arguments.x-max-length: 1000 -> 10",
        "      ! messages at risk: 1 consumer is attached, holding messages unacknowledged (how many is not known: the broker's statistics, their only count, did not catch up within 15 s): a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue",
      ].join("\n"),
    );
    const j = planJson({ clusters: [plan] }) as any;
    expect(j.clusters[0].actions[0]).toMatchObject({ messages: 2, unackedUnknown: true });
    // A limit is judged on the least the queue holds, and says so.
    const full = diffCluster(d, actual([...others, before], { queueFacts: { "mplogin.async": { ...facts, messages: 20, ready: 20 } } }), "mp");
    expect(renderText({ clusters: [full] })).toContain("! messages at risk: x-max-length 10 is below the 20 or more messages it holds: drop-head would discard the oldest 10");
  });

  it("a quorum queue's at-least-once dead letters waiting for their target: no move takes them, and the delete would drop them", () => {
    // Measured on 4.0.5: 7 dead letters waiting (messages_dlx), 0 ready; the replace said it moved 0
    // back and that the broker matched the file, and the 7 were gone.
    const qd = desiredOf(raw({ services: [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: { "x-delivery-limit": 6, "x-dead-letter-exchange": "mpdlq", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } } }] }), "async");
    const old = queue({ type: "quorum", arguments: { "x-delivery-limit": 5, "x-dead-letter-exchange": "mpdlq", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } });
    // Statistics (RabbitMQ 3.10 or 4.0): none of them is a retry RabbitMQ 4.3 delays.
    const facts = { messages: 0, ready: 0, unacked: 0, consumers: 0, bytes: 0, deadLettersWaiting: 7, delayedRetries: 0 };
    const plan = diffCluster(qd, actual([...qd.resources.filter((x) => x.kind !== "queue"), old], { queueFacts: { "mplogin.async": facts } }), "mp");
    const r = plan.actions.find((x) => x.op === "replace");
    expect(r?.op === "replace" && r.risks?.map((x) => x.rule)).toEqual(["dead-letters-waiting"]);
    expect(renderText({ clusters: [plan] })).toContain(
      "! messages at risk: 7 messages it dead-lettered at least once wait in it for the dead-letter target to take them (the statistics' messages_dlx): a replace cannot move them, and deleting the old queue drops them",
    );
    // They are what the replace holds, as a delete's: a plain replace (--allow-data-loss) drops them.
    expect(r?.op === "replace" && r.messages).toBe(7);
    expect(renderText({ clusters: [plan] })).toContain("-/+ replace queue mplogin.async [holds 7 messages]");
    // None waiting: no risk.
    const none = diffCluster(qd, actual([...qd.resources.filter((x) => x.kind !== "queue"), old], { queueFacts: { "mplogin.async": { ...facts, deadLettersWaiting: 0 } } }), "mp");
    const n = none.actions.find((x) => x.op === "replace");
    expect(n?.op === "replace" && n.risks).toEqual([]);
    // Finishing an interrupted replace deletes no queue: nothing to say.
    expect(rules(replace({ deletesQueue: false, held: held({ deadLetters: 3 }) }))).toEqual([]);
    expect(rules(replace({ held: held({ deadLetters: 1 }) }))).toEqual(["dead-letters-waiting"]);
  });

  it("tells RabbitMQ 4.3's delayed retries apart from dead letters, by the statistics, and names both where only totals count them", () => {
    // Measured on 4.3.6: 3 messages nacked with requeue under x-delayed-retry-type all, 120 s:
    // messages 5, ready 2, unacknowledged 0, messages_delayed 3, messages_dlx 0. They are neither
    // dead letters nor anything a dead-letter target takes: the advice is to wait for the delay.
    const args = { "x-delayed-retry-type": "all", "x-delayed-retry-min": 120000, "x-delayed-retry-max": 120000 };
    const qd = desiredOf(raw({ services: [{ name: "mplogin", sync: false, async: { type: "quorum", arguments: { ...args, "x-delivery-limit": 6 } } }] }), "async");
    const old = queue({ type: "quorum", arguments: { ...args, "x-delivery-limit": 5 } });
    const planWith = (facts: QueueFacts) => diffCluster(qd, actual([...qd.resources.filter((x) => x.kind !== "queue"), old], { queueFacts: { "mplogin.async": facts } }), "mp");
    const base = { messages: 2, ready: 2, unacked: 0, consumers: 0, bytes: 10 };
    const delayedPlan = planWith({ ...base, deadLettersWaiting: 3, delayedRetries: 3 });
    const delayed = renderText({ clusters: [delayedPlan] });
    // The queue holds 5, and --allow-data-loss drops 5: the header and the data-loss line count the delayed ones too.
    expect(delayed).toContain("-/+ replace queue mplogin.async [holds 5 messages]");
    expect(dataLossLines(delayedPlan)).toEqual(["cluster async: --allow-data-loss: queue mplogin.async is deleted with the 5 messages it holds, and re-created empty"]);
    expect(delayedPlan.actions.find((x) => x.op === "replace")).toMatchObject({ messages: 5, apart: 3 });
    expect(delayed).toContain(
      "! messages at risk: 3 returned messages wait in it for the retry delay RabbitMQ 4.3 gives them (x-delayed-retry-type; the statistics' messages_delayed) before they are ready again: a replace cannot move them, and deleting the old queue drops them",
    );
    const d3 = delayedPlan.actions.find((x) => x.op === "replace");
    expect(d3?.op === "replace" && d3.risks?.map((x) => x.advice)).toEqual([
      "let the delay end (at most the queue's delayed-retry-max): the messages are then ready, and the replace moves them; the management API counts no messages_delayed in mplogin.async then",
    ]);
    expect(delayed).not.toContain("dead-lettered");
    // Both at once: each said as what it is.
    const both = planWith({ ...base, deadLettersWaiting: 4, delayedRetries: 1 });
    const r = both.actions.find((x) => x.op === "replace");
    expect(r?.op === "replace" && r.risks?.map((x) => x.rule)).toEqual(["dead-letters-waiting", "delayed-retries"]);
    expect(renderText({ clusters: [both] })).toContain("! messages at risk: 3 messages it dead-lettered at least once wait in it");
    expect(renderText({ clusters: [both] })).toContain("! messages at risk: 1 returned message waits in it for the retry delay RabbitMQ 4.3 gives it");
    // Totals only (a RabbitMQ 4 without statistics): nothing tells the two apart, and one risk names both.
    const totals = planWith({ messages: 2, ready: 2, unacked: 0, deadLettersWaiting: 3 });
    const t = totals.actions.find((x) => x.op === "replace");
    expect(t?.op === "replace" && t.risks?.map((x) => x.rule)).toEqual(["dead-letters-waiting"]);
    expect(renderText({ clusters: [totals] })).toContain(
      "3 messages wait in it neither ready nor unacknowledged (by its totals: dead letters waiting for the dead-letter target to take them, or on RabbitMQ 4.3 returned messages whose retry it delays; the broker keeps no statistics to tell which)",
    );
  });

  it("with consumers attached, says that Celery workers on the old module stop, and the order that avoids it", () => {
    const withConsumers = diffCluster(d, actual([...others, before], { queueFacts: { "mplogin.async": { messages: 0, ready: 0, unacked: 0, consumers: 2, bytes: 0 } } }), "mp");
    const text = renderText({ clusters: [withConsumers] });
    expect(text).toContain(
      [
        "      ! messages at risk: 2 consumers are attached: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue",
        "      then re-creates its 1 binding",
        "      ! the consumers may be Celery workers: stop them (apply refuses while they are attached, unless given --allow-data-loss, which deletes the queue with what it holds and re-creates it), apply, then start them on the module topo export celery writes now; a worker on a module from before topo wrote no_declare re-declares the old arguments and stops with PRECONDITION_FAILED (docs/safety.md, replacing a queue)",
      ].join("\n"),
    );
    const idle = diffCluster(d, actual([...others, before], { queueFacts: { "mplogin.async": { messages: 0, ready: 0, unacked: 0, consumers: 0, bytes: 0 } } }), "mp");
    expect(renderText({ clusters: [idle] })).not.toMatch(/Celery/);
  });

  it("not at all when only the totals were read (nothing claimed without the broker's numbers)", () => {
    const plan = diffCluster(d, actual([...others, before], { queueFacts: { "mplogin.async": { messages: 100 } } }), "mp");
    const r = plan.actions[0]!;
    expect(r.op === "replace" && r.risks).toBeUndefined();
    expect(planJson({ clusters: [plan] }) as any).toMatchObject({ clusters: [{ actions: [{ risks: null }] }] });
  });

  it("judges an interrupted replace on the queue and its holding queue together", () => {
    const hold = holdingQueue("mplogin.async");
    const holdBinding: Binding = { kind: "binding", source: "mplogin", destination: hold.name, destinationType: "queue", routingKey: "mplogin.async.#", arguments: {} };
    const ex = others.filter((r): r is Exchange => r.kind === "exchange");
    const facts = { "mplogin.async": { messages: 6, ready: 6, unacked: 0, consumers: 0, bytes: 60 }, [hold.name]: { messages: 7, ready: 7, unacked: 0, consumers: 0, bytes: 70 } };
    // The queue still has its old properties: the replace starts over, and 13 do not fit in 10.
    const plan = diffCluster(d, actual([...others, before, hold, holdBinding, ...ex], { queueFacts: facts }), "mp");
    const r = plan.actions.find((a) => a.op === "replace")!;
    expect(r.op === "replace" && r.resume?.queueDone).toBe(false);
    expect(r.op === "replace" && r.risks?.map((x) => x.reason)).toEqual(["x-max-length 10 is below the 13 messages it holds: drop-head would discard the oldest 3"]);
    // The queue is already new: only the move back is left, which stops rather than overfill.
    const done = diffCluster(d, actual([...others, queue({ arguments: { "x-max-length": 10 } }), hold, holdBinding], { queueFacts: facts }), "mp");
    const r2 = done.actions.find((a) => a.op === "replace")!;
    expect(r2.op === "replace" && r2.resume?.queueDone).toBe(true);
    expect(r2.op === "replace" && r2.risks).toEqual([]);
    expect(r2.op === "replace" && r2.limits?.queue.maxLength).toEqual({ value: 10, from: "x-max-length" });
  });

  it("a policy whose pattern JavaScript cannot read as PCRE, or one that ties in priority, may be the one RabbitMQ applies: its limits count", () => {
    const hold = holdingQueue("mplogin.async");
    const ttl = (name: string, pattern: string, priority = 0) => policy({ name, pattern, priority, definition: { "message-ttl": 1 } });
    // (?i) and [[:alnum:]] are PCRE; JavaScript throws on the first and reads the second as another class.
    for (const p of [ttl("nocase", "(?i)^TOPO\\.HOLD\\."), ttl("posix", "^topo\\.hold\\.[[:alnum:]._]+$")]) {
      const unread = `policy ${p.name}'s message-ttl (topo cannot read its pattern "${p.pattern}", so it counts it as matching)`;
      expect(queueLimits(hold, [p]).messageTtl).toEqual({ value: 1, from: unread });
      expect(rules(replace({ policies: [policy({ name: "lazy", pattern: "^topo", priority: 0 }), p], held: held({ ready: 3 }) }))).toEqual(["x-message-ttl", "hold-policy"]);
      // A readable policy of higher priority is the one that applies.
      expect(queueLimits(hold, [policy({ name: "high", pattern: "^topo", priority: 9 }), p]).messageTtl).toBeUndefined();
      expect(queueLimits(hold, [p], [p]).messageTtl).toEqual({ value: 1, from: unread });
    }
    // Two matching policies of one priority: RabbitMQ's choice between them is not defined.
    const tie = [policy({ name: "lazy", pattern: "^topo\\.", definition: { "queue-mode": "lazy" } }), ttl("expire", "^topo\\.hold\\.")];
    expect(queueLimits(hold, tie).messageTtl).toEqual({ value: 1, from: "policy expire's message-ttl" });
    expect(queueLimits(hold, tie.reverse()).messageTtl).toEqual({ value: 1, from: "policy expire's message-ttl" });
  });

  it("counts the policies the vhost will have: the file's and the user's, not topo's that go", () => {
    const user = policy({ name: "user-cap", pattern: "^mplogin", definition: { "max-length": 5 } });
    const stale = policy({ name: "topo.mp.old", pattern: "^mplogin", definition: { "max-length": 1 } });
    const plan = diffCluster(d, actual([...others, before, user, stale], { queueFacts: { "mplogin.async": { messages: 8, ready: 8, unacked: 0, consumers: 0, bytes: 8 } } }), "mp");
    const r = plan.actions.find((a) => a.op === "replace")!;
    expect(r.op === "replace" && r.risks?.map((x) => x.reason)).toEqual(["policy user-cap's max-length 5 is below the 8 messages it holds: drop-head would discard the oldest 3"]);
  });
});
