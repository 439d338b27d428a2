// What the file can say about one queue, and why not the rest, on plain objects.

import { describe, expect, it } from "vitest";
import { Ownership } from "../../src/core/naming.js";
import type { Policy, Queue } from "../../src/model.js";
import { collectUserMirrors, describeQueue, effectivePolicy, type QueueContext } from "../../src/import/describe-queue.js";
import { argumentChecker } from "../../src/import/arguments.js";
import { found, importSource, policy, queue } from "../helpers/builders.js";

const TOPO_MIRROR = policy({ name: "topo.mp.mirror.sync", pattern: "^mp[a-z_]+\\.sync$" });
const refuseBad: QueueContext["argumentProblem"] = (_kind, _type, name) => (name === "x-bad" ? "the rule refuses it" : undefined);
const ctx = (policies: Policy[] = []): QueueContext => ({ owner: new Ownership("mp"), policies, argumentProblem: refuseBad });
/** A queue found alone on cluster "sync", with `policies` beside it. */
const describeOn = (q: Queue, policies: Policy[] = [], reported?: string) =>
  describeQueue(found(importSource("sync", [q, ...policies], reported ? { queueFacts: { [q.name]: { policy: reported } } } : {}), q), ctx(policies));

describe("describeQueue", () => {
  it("describes a plain queue as it is, with its arguments sorted", () => {
    const d = describeOn(queue({ name: "mpa.async", arguments: { "x-message-ttl": 1, "x-max-length": 5 } }));
    expect(d).toEqual({
      wanted: { cluster: "sync", type: "classic", durable: true, mirrored: false, arguments: { "x-max-length": 5, "x-message-ttl": 1 } },
      mirroring: { by: "none" },
      cannot: [],
    });
    expect(Object.keys(d.wanted.arguments)).toEqual(["x-max-length", "x-message-ttl"]);
  });

  it("leaves out an argument the file cannot hold, and says why", () => {
    const d = describeOn(queue({ name: "mpa.async", arguments: { "x-bad": 1, "x-max-length": 5 } }));
    expect(d.wanted.arguments).toEqual({ "x-max-length": 5 });
    expect(d.cannot).toEqual(["argument x-bad=1 cannot be written in the file (the rule refuses it)"]);
  });

  // RabbitMQ 4.3.6 takes these on a quorum queue's declare and delays nothing: a file that wrote
  // them as read would not load (x-delayed-retry-type needs x-delayed-retry-min).
  it("leaves out arguments each fine alone that the rule refuses together, one round after another", () => {
    const quorum = (args: Record<string, string | number>) => describeOn(queue({ name: "mpa.async", type: "quorum", arguments: args }));
    const alone = quorum({ "x-delayed-retry-type": "all", "x-delivery-limit": 5 });
    expect(alone.wanted.arguments).toEqual({ "x-delivery-limit": 5 });
    expect(alone.cannot).toEqual([expect.stringMatching(/^argument x-delayed-retry-type="all" cannot be written in the file \(x-delayed-retry-type needs x-delayed-retry-min: /)]);
    // A maximum alone needs the minimum; without it, nothing of the set stays.
    const maxOnly = quorum({ "x-delayed-retry-max": 9000 });
    expect(maxOnly.wanted.arguments).toEqual({});
    expect(maxOnly.cannot).toHaveLength(1);
    // A maximum below the minimum goes; the rest of the set is whole and stays.
    const below = quorum({ "x-delayed-retry-type": "failed", "x-delayed-retry-min": 5000, "x-delayed-retry-max": 1000 });
    expect(below.wanted.arguments).toEqual({ "x-delayed-retry-min": 5000, "x-delayed-retry-type": "failed" });
    expect(below.cannot).toEqual([expect.stringMatching(/^argument x-delayed-retry-max=1000 cannot be written in the file \(x-delayed-retry-max 1000 is below x-delayed-retry-min 5000/)]);
    // A minimum whose type the rule refuses (here, the context's) goes with it in the next round.
    const chained = describeQueue(
      found(importSource("sync", []), queue({ name: "mpa.async", type: "quorum", arguments: { "x-delayed-retry-type": "all", "x-delayed-retry-min": 5000, "x-delayed-retry-max": 6000 } })),
      { ...ctx(), argumentProblem: (_k, _t, name) => (name === "x-delayed-retry-type" ? "refused here" : undefined) },
    );
    expect(chained.wanted.arguments).toEqual({});
    expect(chained.cannot).toHaveLength(3);
    // A whole set is written as read.
    expect(quorum({ "x-delayed-retry-type": "returned", "x-delayed-retry-min": 100 }).cannot).toEqual([]);
  });

  it("judges each argument by config's rule on its own problems, not on those of the argument it needs", () => {
    // x-delayed-retry-max needs x-delayed-retry-min, which needs x-delayed-retry-type: import left
    // out the maximum of a whole set from a 4.3 broker, for the minimum's need.
    const args = { "x-delayed-retry-type": "failed", "x-delayed-retry-min": 2000, "x-delayed-retry-max": 30000, "x-consumer-disconnected-timeout": 30000 };
    const d = describeQueue(found(importSource("async", []), queue({ name: "mpa.async", type: "quorum", arguments: args })), { ...ctx(), argumentProblem: argumentChecker(undefined) });
    expect(d.cannot).toEqual([]);
    expect(d.wanted.arguments).toEqual(args);
  });

  it("cannot describe auto-delete or exclusive queues", () => {
    expect(describeOn(queue({ name: "mpa.sync", autoDelete: true, exclusive: true })).cannot).toEqual([
      "the file cannot describe auto-delete or exclusive queues: topo's queues outlive their consumers and connections",
    ]);
    expect(describeOn(queue({ name: "mpa.sync", exclusive: true })).cannot[0]).toMatch(/^the file cannot describe exclusive queues/);
  });

  it("makes quorum and stream queues durable and never mirrored", () => {
    const d = describeOn(queue({ name: "mpa.sync", type: "quorum" }), [TOPO_MIRROR]);
    expect(d.wanted).toMatchObject({ type: "quorum", durable: true, mirrored: false });
    expect(d.mirroring).toEqual({ by: "none" });
  });

  it("reads mirroring from the policy that applies: topo's, a user's with ha-mode all, or another ha-mode", () => {
    const q = queue({ name: "mpa.sync", durable: false });
    expect(describeOn(q, [TOPO_MIRROR])).toMatchObject({ wanted: { mirrored: true, durable: false }, mirroring: { by: "topo" } });
    expect(describeOn(q, [policy({ name: "ha", pattern: "sync$" })])).toMatchObject({ wanted: { mirrored: true }, mirroring: { by: "user-all", policy: "ha" } });
    const two = policy({ name: "ha-two", pattern: "^mp", definition: { "ha-mode": "exactly", "ha-params": 2 } });
    expect(describeOn(q, [two])).toMatchObject({ wanted: { mirrored: false }, mirroring: { by: "user-partial", policy: "ha-two" } });
    expect(describeOn(q, [policy({ name: "limits", pattern: "^mp", definition: { "max-length": 1 } })])).toMatchObject({ wanted: { mirrored: false }, mirroring: { by: "none" } });
  });

  it("takes topo's own policy as mirroring whatever its ha-mode", () => {
    const odd = { ...TOPO_MIRROR, definition: { "ha-mode": "exactly", "ha-params": 2 } };
    expect(describeOn(queue({ name: "mpa.sync" }), [odd]).mirroring).toEqual({ by: "topo" });
  });

  it("believes the policy the broker reports over the patterns", () => {
    const limits = policy({ name: "limits", pattern: "^mpa", priority: 5, definition: { "max-length": 10 } });
    expect(describeOn(queue({ name: "mpa.sync" }), [TOPO_MIRROR, limits], "limits").mirroring).toEqual({ by: "none" });
  });
});

describe("effectivePolicy", () => {
  const q = queue({ name: "mpa.sync" });

  it("is the highest priority among the policies whose pattern and apply-to match, ties by name", () => {
    const low = policy({ name: "low", pattern: "^mpa" });
    const high = policy({ name: "high", pattern: "^mpa", priority: 2 });
    const b = policy({ name: "b", pattern: "^mpa", priority: 2 });
    const exchanges = policy({ name: "ex", pattern: "^mpa", priority: 9, applyTo: "exchanges" });
    const quorum = policy({ name: "qq", pattern: "^mpa", priority: 9, applyTo: "quorum_queues" });
    const other = policy({ name: "other", pattern: "^billing", priority: 9 });
    expect(effectivePolicy([low, b, high, exchanges, quorum, other], q, undefined)?.name).toBe("b");
    expect(effectivePolicy([low, high], q, undefined)?.name).toBe("high");
    expect(effectivePolicy([exchanges, other], q, undefined)).toBeUndefined();
  });

  it("skips a pattern JavaScript cannot read", () => {
    expect(effectivePolicy([policy({ name: "pcre", pattern: "(?<x" }), policy({ name: "ok", pattern: "sync$" })], q, undefined)?.name).toBe("ok");
  });

  it("is the reported one when the broker names a policy it holds", () => {
    const a = policy({ name: "a", pattern: "^mpa", priority: 9 });
    const z = policy({ name: "z", pattern: "nothing" });
    expect(effectivePolicy([a, z], q, "z")?.name).toBe("z");
    expect(effectivePolicy([a, z], q, "gone")?.name).toBe("a");
  });
});

describe("collectUserMirrors", () => {
  it("groups the queues by cluster, kind and user's policy, in the order met; topo's own and no policy are left out", () => {
    const s = importSource("s", []);
    const t = importSource("t", []);
    const d = (src: typeof s, name: string, mirroring: Parameters<typeof collectUserMirrors>[0][number]["mirroring"]) => ({ ...found(src, queue({ name })), mirroring });
    expect(
      collectUserMirrors([
        d(s, "mpb.sync", { by: "user-all", policy: "ha" }),
        d(s, "mpa.async", { by: "user-all", policy: "ha" }),
        d(s, "mpa.sync", { by: "user-all", policy: "ha" }),
        d(t, "mpa.sync", { by: "user-all", policy: "ha" }),
        d(s, "mpc.sync", { by: "user-partial", policy: "two", mode: "exactly" }),
        d(s, "mpc.async", { by: "user-partial", policy: "two", mode: "exactly" }),
        d(s, "mpd.sync", { by: "topo" }),
        d(s, "mpe.sync", { by: "none" }),
      ]),
    ).toEqual({
      all: [
        { cluster: "s", kind: "sync", policy: "ha", queues: ["mpb.sync", "mpa.sync"] },
        { cluster: "s", kind: "async", policy: "ha", queues: ["mpa.async"] },
        { cluster: "t", kind: "sync", policy: "ha", queues: ["mpa.sync"] },
      ],
      partial: [{ cluster: "s", policy: "two", queues: ["mpc.sync", "mpc.async"] }],
    });
  });
});
