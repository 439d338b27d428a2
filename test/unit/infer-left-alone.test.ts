// What the file leaves out and topo leaves alone, on plain objects.

import { describe, expect, it } from "vitest";
import { listLeftAlone, listOutside } from "../../src/import/left-alone.js";
import type { UserMirrors } from "../../src/import/types.js";
import { binding, exchange, importSource, policy, queue, service } from "../helpers/builders.js";

const NO_MIRRORS: UserMirrors = { all: [], partial: [] };

describe("listLeftAlone", () => {
  const a = queue({ name: "mpa.sync" });
  const b = queue({ name: "mpb.sync", type: "quorum" });

  it("notes a user's policy, with the file's queues it applies to", () => {
    const limits = policy({ name: "limits", pattern: "^mp", priority: 1, definition: { "max-length": 10 } });
    const classicOnly = policy({ name: "lazy", pattern: "^mp", applyTo: "classic_queues", definition: { "queue-mode": "lazy" } });
    const pcre = policy({ name: "pcre", pattern: "(?<x", definition: {} });
    const s = importSource("s", [a, b, limits, classicOnly, pcre, policy({ name: "topo.mp.mirror.sync", pattern: "^mp" })]);
    expect(listLeftAlone(s, [a, b], new Set(), NO_MIRRORS, "mp")).toEqual([
      "policy limits (pattern ^mp, apply-to queues, priority 1, max-length=10): a user's policy; it applies to 2 queues of this file (mpa.sync, mpb.sync).",
      // limits (priority 1) applies to mpa.sync, not lazy (priority 0): only one policy applies to a queue.
      'policy lazy (pattern ^mp, apply-to classic_queues, priority 0, queue-mode="lazy"): a user\'s policy; it matches 1 queue of this file, mpa.sync, where a policy of higher priority applies instead.',
      "policy pcre (pattern (?<x, apply-to queues, priority 0): a user's policy.",
    ]);
  });

  it("notes how a user's mirroring policy bears on the file", () => {
    const ha = policy({ name: "ha", pattern: "sync$" });
    const two = policy({ name: "two", pattern: "^mp", definition: { "ha-mode": "exactly", "ha-params": 2 } });
    const mirrors: UserMirrors = {
      all: [
        { cluster: "s", kind: "sync", policy: "ha", queues: ["mpa.sync"] },
        { cluster: "s", kind: "async", policy: "ha", queues: ["mpa.async"] },
        { cluster: "t", kind: "sync", policy: "ha", queues: ["mpz.sync"] },
      ],
      partial: [{ cluster: "s", policy: "two", queues: ["mpb.sync"] }],
    };
    const notes = listLeftAlone(importSource("s", [ha, two]), [], new Set(), mirrors, "mp");
    expect(notes).toEqual([
      expect.stringMatching(/^policy ha .*: a user's policy; it mirrors mpa\.sync, mpa\.async, which the file marks mirrored: true, the job of topo's own policy/),
      expect.stringMatching(/^policy two .*; it mirrors mpb\.sync with ha-mode "exactly", but mirrored: true in the file means ha-mode all, so the file says mirrored: false/),
    ]);
  });

  it("notes bindings that touch topo's objects without being topo's, and what becomes of them", () => {
    const s = importSource("s", [
      ...service("mpa", "sync"),
      exchange({ name: "billing" }),
      queue({ name: "billing.jobs" }),
      binding({ source: "billing", destination: "mpa.sync", routingKey: "b" }),
      binding({ source: "mpa", destination: "billing.jobs", routingKey: "b" }),
      binding({ source: "mpa", destination: "amq.topic", destinationType: "exchange", routingKey: "e" }),
      binding({ source: "mpa", destination: "topo.hold.mpa.sync" }),
      binding({ source: "billing", destination: "billing.jobs" }),
    ]);
    expect(listLeftAlone(s, [], new Set(["exchange|mpa"]), NO_MIRRORS, "mp")).toEqual([
      "binding billing -> mpa.sync [b]: its source is not a service's exchange, so it is not topo's; topo leaves it alone (and keeps it when it replaces queue mpa.sync).",
      "binding mpa -> billing.jobs [b]: its destination is not a service's sync or async queue, so it is not topo's; it goes when topo apply deletes exchange mpa.",
      "binding mpa -> exchange amq.topic [e]: it binds an exchange, not a queue, so it is not topo's; it goes when topo apply deletes exchange mpa.",
    ]);
    expect(listLeftAlone(s, [], new Set(["queue|mpa.sync"]), NO_MIRRORS, "mp")[0]).toMatch(/it goes when topo apply deletes queue mpa\.sync\.$/);
    // Kept through a replace of the service exchange it leaves from, not of a queue it never touches.
    expect(listLeftAlone(s, [], new Set(), NO_MIRRORS, "mp")[2]).toBe(
      "binding mpa -> exchange amq.topic [e]: it binds an exchange, not a queue, so it is not topo's; topo leaves it alone (and keeps it when it replaces exchange mpa).",
    );
  });
});

describe("listOutside", () => {
  it("names the exchanges and queues outside the namespace, but not topo's lock or holding queues", () => {
    const s = importSource("s", [
      ...service("mpa", "sync"),
      exchange({ name: "billing" }),
      exchange({ name: "amq.topic" }),
      queue({ name: "billing.jobs" }),
      queue({ name: "topo.mp.lock", exclusive: true }),
      queue({ name: "topo.hold.mpa.sync" }),
      queue({ name: "topo.hold.billing.jobs" }),
    ]);
    expect(listOutside(s, "mp")).toEqual({ exchanges: ["billing", "amq.topic"], queues: ["billing.jobs", "topo.hold.billing.jobs"], users: [] });
  });

  it("names the users with rights on the vhost that topo did not mark, but not the users it connects as", () => {
    // A file writes only the users topo marked: a vhost made from it gave no one else rights, and
    // import did not say so.
    const perm = (user: string) => ({ kind: "permission" as const, user, configure: ".*", write: ".*", read: ".*" });
    const s = importSource("s", [
      ...service("mpa", "sync"),
      { kind: "user", name: "ops", tags: ["administrator"] },
      { kind: "user", name: "billing", tags: [] },
      { kind: "user", name: "theirs", tags: ["topo.other"] },
      { kind: "user", name: "mine", tags: ["topo.mp"] },
      { kind: "user", name: "nowhere", tags: [] },
      perm("ops"),
      perm("billing"),
      perm("theirs"),
      perm("mine"),
    ]);
    expect(listOutside(s, "mp", ["ops"]).users).toEqual(["billing", "theirs"]);
    expect(listOutside(s, "mp").users).toEqual(["billing", "ops", "theirs"]);
  });
});
