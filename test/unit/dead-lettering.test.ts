// A quorum queue's x-dead-letter-strategy is accepted whatever goes with it; RabbitMQ then
// dead-letters at most once without overflow reject-publish, and not at all without a dead-letter
// exchange. plan says so at the argument's place, or names the policy that decides.

import { describe, expect, it } from "vitest";
import { deadLettering, deadLettering as report } from "../../src/plan/dead-lettering.js";
import { Ownership } from "../../src/core/naming.js";
import { displayPath } from "../../src/config/places.js";
import type { Args, Policy } from "../../src/model.js";
import type { RawQueueSettings, RawService } from "../../src/config/normalize.js";
import { actual, desiredOf, exchange, policy, raw } from "../helpers/builders.js";
import { diffCluster } from "../../src/plan/diff.js";
import { renderText } from "../../src/plan/render.js";

const owner = new Ownership("mp");
const owns = (p: Policy) => owner.owns(p);
const quorum = (args: Args): RawQueueSettings => ({ type: "quorum", arguments: args });
const desired = (args: Args, services: (string | RawService)[] = ["mplogin", "mpwallet"]) => desiredOf(raw({ defaults: { async: quorum(args) }, services }), "async");
/** The file's queues as they exist on the broker, with these policies. */
const run = (args: Args, policies: Policy[] = [], facts = {}) => {
  const d = desired(args);
  return deadLettering(d, actual([...d.resources, ...policies], { queueFacts: facts }), owns, displayPath);
};
const foreign = (o: Partial<Policy>) => policy({ name: "ops", pattern: "^mp", definition: {}, ...o });
const DLX = { "x-dead-letter-exchange": "amq.fanout" };

describe("how RabbitMQ dead-letters the file's quorum queues", () => {
  it("at-least-once without x-overflow: a warning at the argument's place, with both fixes", () => {
    const r = run({ ...DLX, "x-dead-letter-strategy": "at-least-once" });
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toEqual([
      'defaults.async.arguments.x-dead-letter-strategy: x-dead-letter-strategy: "at-least-once" (queues mplogin.async, mpwallet.async): the file gives no x-overflow, and quorum queues default to drop-head, so they dead-letter at most once: a message dead-lettered while its target cannot take it (no queue bound, or one over its own limit) is dropped, not kept until it can; fix: add x-overflow: reject-publish beside it (a full queue then refuses publishes instead of dropping its oldest message; apply --allow-destructive then replaces the queues that exist, keeping their messages), or write x-dead-letter-strategy: at-most-once so that the file says what the broker does',
    ]);
    // Queues apply will create: nothing to replace.
    const d = desired({ ...DLX, "x-dead-letter-strategy": "at-least-once" });
    expect(deadLettering(d, actual([]), owns, displayPath).warnings).toEqual([
      expect.stringMatching(/fix: add x-overflow: reject-publish beside it \(a full queue then refuses publishes instead of dropping its oldest message\), or write/),
    ]);
  });

  it("at-least-once with x-overflow drop-head said so; with reject-publish nothing is said", () => {
    expect(run({ ...DLX, "x-dead-letter-strategy": "at-least-once", "x-overflow": "drop-head" }).warnings).toEqual([
      expect.stringContaining('(queues mplogin.async, mpwallet.async): the file gives x-overflow: "drop-head", so they dead-letter at most once'),
    ]);
    expect(run({ ...DLX, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" })).toEqual({ degraded: [], warnings: [] });
    expect(run({ ...DLX, "x-dead-letter-strategy": "at-most-once" })).toEqual({ degraded: [], warnings: [] });
    expect(run(DLX)).toEqual({ degraded: [], warnings: [] });
  });

  it("a strategy without a dead-letter exchange, either strategy: the queue does not dead-letter at all", () => {
    for (const strategy of ["at-least-once", "at-most-once"]) {
      const r = run({ "x-dead-letter-strategy": strategy, "x-overflow": "reject-publish" });
      expect(r.warnings).toEqual([
        expect.stringMatching(/: the file gives no x-dead-letter-exchange, so they do not dead-letter at all: .*; fix: add x-dead-letter-exchange beside it \(\"\" is the default exchange\), or drop x-dead-letter-strategy/),
      ]);
    }
    // A policy's dead-letter exchange counts: the queue has none of its own.
    expect(run({ "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" }, [foreign({ definition: { "dead-letter-exchange": "amq.fanout" } })])).toEqual({ degraded: [], warnings: [] });
  });

  it("a foreign policy's overflow or strategy wins over the file's arguments: degraded, naming the policy", () => {
    const args = { ...DLX, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const r = run(args, [foreign({ definition: { overflow: "drop-head" } })]);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      expect.stringMatching(/^defaults\.async\.arguments\.x-dead-letter-strategy: .*: policy "ops" sets overflow "drop-head", which RabbitMQ applies over the queue's own x-overflow, so they dead-letter at most once: .*; fix: change policy "ops" \(rabbitmqctl list_policies -p a\), or write x-dead-letter-strategy: at-most-once/),
    ]);
    expect(run(args, [foreign({ definition: { "dead-letter-strategy": "at-most-once" } })]).degraded).toEqual([expect.stringContaining('policy "ops" sets dead-letter-strategy "at-most-once"')]);
    // A policy's overflow reject-publish makes the file's at-least-once hold.
    expect(run({ ...DLX, "x-dead-letter-strategy": "at-least-once" }, [foreign({ definition: { overflow: "reject-publish" } })])).toEqual({ degraded: [], warnings: [] });
  });

  // From RabbitMQ 3.12.7 an operator policy may set overflow, over the queue's and its policy's:
  // plan said such queues keep their dead letters, and said "No changes.", where they drop them.
  it("an operator policy's overflow wins over the file's and a policy's: degraded, naming the operator policy", () => {
    const args = { ...DLX, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const d = desired(args);
    const ops = [foreign({ name: "cap", definition: { overflow: "drop-head" } })];
    const r = deadLettering(d, actual([...d.resources, foreign({ definition: { overflow: "reject-publish" } })], { version: "4.0.5", operatorPolicies: ops }), owns, displayPath);
    expect(r.warnings).toEqual([]);
    expect(r.degraded).toEqual([
      expect.stringMatching(/^defaults\.async\.arguments\.x-dead-letter-strategy: .*: operator policy "cap" sets overflow "drop-head", which RabbitMQ applies over the queue's own x-overflow and its policy's, so they dead-letter at most once: .*; fix: change operator policy "cap" \(rabbitmqctl list_operator_policies -p a\), or write x-dead-letter-strategy: at-most-once/),
    ]);
    // An operator policy's reject-publish makes at-least-once hold over a policy's drop-head.
    const kept = deadLettering(d, actual([...d.resources, foreign({ definition: { overflow: "drop-head" } })], { version: "4.0.5", operatorPolicies: [foreign({ name: "cap", definition: { overflow: "reject-publish" } })] }), owns, displayPath);
    expect(kept).toEqual({ degraded: [], warnings: [] });
  });

  it("a tie of policies is a warning that says topo cannot tell; the broker's word settles it", () => {
    const args = { ...DLX, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const bad = foreign({ name: "bad", definition: { overflow: "drop-head" } });
    const good = foreign({ name: "good", definition: { "max-length": 5 } });
    const tie = run(args, [bad, good]);
    expect(tie.degraded).toEqual([]);
    expect(tie.warnings).toEqual([expect.stringMatching(/: if it applies, policy "bad" sets overflow .*; RabbitMQ applies one of policies "bad", "good" .*so topo cannot tell whether it does; fix: change policy "bad"/)]);
    expect(run(args, [bad, good], { "mplogin.async": { policy: "good" }, "mpwallet.async": { policy: "good" } })).toEqual({ degraded: [], warnings: [] });
  });

  it("the fix's command writes a name with a line break as an escape, so it cannot add lines to the plan; a reserved amq. name is not one to create", () => {
    const evil = "zz\n  - delete queue mplogin.async\n\nPlan: 0 to create, 0 to update, 0 to replace, 1 to delete.\n";
    const d = desiredOf(raw({ services: [{ name: "mplogin", async: { arguments: { "x-dead-letter-exchange": evil } } }, { name: "mpdef", async: { arguments: { "x-dead-letter-exchange": "amq.default" } } }] }), "async");
    const ws = deadLettering(d, actual([]), owns, displayPath).warnings;
    const bad = ws.find((w) => w.startsWith("services[0]"))!;
    const amq = ws.find((w) => w.startsWith("services[1]"))!;
    expect(bad).not.toMatch(/\n/);
    expect(bad).toContain(`declare exchange name=$'zz\\n  - delete queue mplogin.async\\n\\nPlan: 0 to create, 0 to update, 0 to replace, 1 to delete.\\n' type=fanout`);
    expect(amq).toContain('fix: RabbitMQ reserves names that start with amq., so it cannot be created: point x-dead-letter-exchange at one that exists (the default exchange is written "", with x-dead-letter-routing-key naming the queue)');
  });

  it("classic queues and queues without a strategy are not asked about", () => {
    const d = desiredOf(raw({ defaults: { async: { arguments: DLX } }, services: ["mplogin"] }), "async");
    expect(deadLettering(d, actual(d.resources), owns, displayPath)).toEqual({ degraded: [], warnings: [] });
  });

  it("dead letters sent to an exchange, or through the default exchange to a queue, that neither the vhost nor the file has: a warning at the argument", () => {
    const d = desiredOf(
      raw({
        defaults: { async: { arguments: { "x-dead-letter-exchange": "dead" } } },
        services: ["mplogin", "mpwallet", { name: "mppay", async: { arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mppay.parked" } } }, { name: "mpok", async: { arguments: { "x-dead-letter-exchange": "mplogin", "x-dead-letter-routing-key": "mplogin.async.retry" } } }],
      }),
      "async",
    );
    const r = deadLettering(d, actual([]), owns, displayPath);
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toEqual([
      'defaults.async.arguments.x-dead-letter-exchange: x-dead-letter-exchange: "dead" (queues mplogin.async, mpwallet.async): they dead-letter to exchange "dead", which neither vhost "a" nor the file has, so RabbitMQ drops every message they dead-letter, without a word; fix: create it before anything is dead-lettered (rabbitmqadmin -V a declare exchange name=dead type=fanout), or point x-dead-letter-exchange at one that exists',
      'services[2].async.arguments.x-dead-letter-routing-key: x-dead-letter-routing-key: "mppay.parked" (queue mppay.async): it dead-letters through the default exchange to queue "mppay.parked", which neither vhost "a" nor the file has, so RabbitMQ drops every message it dead-letters, without a word; fix: add the service whose queue that is, or point x-dead-letter-routing-key at a queue that exists',
    ]);
    // What the vhost has counts, whoever made it; so do the exchanges RabbitMQ makes in every vhost.
    const there = actual([
      { kind: "exchange", name: "dead", type: "fanout", durable: true, autoDelete: false, internal: false, arguments: {} },
      { kind: "queue", name: "mppay.parked", type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {} },
      { kind: "binding", source: "dead", destination: "mppay.parked", destinationType: "queue", routingKey: "", arguments: {} },
    ]);
    expect(deadLettering(d, there, owns, displayPath)).toEqual({ degraded: [], warnings: [] });
  });
});

describe("dead letters sent to an exchange that routes none of their keys", () => {
  // Measured on 3.10.8 (prefix mq there): expiring messages of mpa.async (own keys mpa.async.<task>) and of mpb.async
  // (key mpdead.sync.failed), dead-lettered to mpdead bound only with mpdead.async.#, were gone.
  const d = desiredOf(
    raw({
      services: [
        { name: "mpa", async: { arguments: { "x-dead-letter-exchange": "mpdead" } } },
        { name: "mpb", async: { arguments: { "x-dead-letter-exchange": "mpdead", "x-dead-letter-routing-key": "mpdead.sync.failed" } } },
        { name: "mpc", async: { arguments: { "x-dead-letter-exchange": "mpdead", "x-dead-letter-routing-key": "mpdead.async.failed" } } },
        { name: "mpd", async: { arguments: { "x-dead-letter-exchange": "mpd" } } },
        "mpdead",
      ],
    }),
    "async",
  );
  const exchange = (name: string, type: string, args = {}) => ({ kind: "exchange" as const, name, type, durable: true, autoDelete: false, internal: false, arguments: args });
  const binding = (source: string, key: string, destination = "parked") => ({ kind: "binding" as const, source, destination, destinationType: "queue" as const, routingKey: key, arguments: {} });
  // mpd dead-letters to its own exchange, back into itself: a cycle, said apart (below).
  const deadLettering = (...a: Parameters<typeof report>) => ({ ...report(...a), warnings: report(...a).warnings.filter((w) => !w.includes("dead-letter cycle")) });

  it("a warning at the argument that decides, naming the exchange's bindings and the keys; a key it routes (mpc), or the queue's own exchange (mpd: no loss of routing, a cycle said below), is fine", () => {
    const ws = deadLettering(d, actual([]), owns, displayPath).warnings;
    expect(ws).toEqual([
      'services[0].async.arguments.x-dead-letter-exchange: x-dead-letter-exchange: "mpdead" (queue mpa.async): it dead-letters to exchange "mpdead" (topic), bound only with mpdead.async.#, which routes none of the messages\' own routing keys (<service>.async.<task>), so RabbitMQ drops every message it dead-letters, without a word; fix: bind a queue to "mpdead" with a key that matches them, or add x-dead-letter-routing-key with a key it routes, or dead-letter to an exchange that routes them',
      'services[1].async.arguments.x-dead-letter-routing-key: x-dead-letter-routing-key: "mpdead.sync.failed" (queue mpb.async): it dead-letters to exchange "mpdead" (topic), bound only with mpdead.async.#, which routes none of the key "mpdead.sync.failed" (its x-dead-letter-routing-key), so RabbitMQ drops every message it dead-letters, without a word; fix: bind a queue to "mpdead" with a key that matches them, set x-dead-letter-routing-key to a key it routes, or dead-letter to an exchange that routes them',
    ]);
  });

  it("a quorum queue that dead-letters at least once keeps what finds no route: said so, not that it is dropped", () => {
    // Measured on 3.10.8 and 4.3.6 (this file's head): kept, counted as messages_dlx, with
    // x-overflow reject-publish; dropped without it, or under a policy's drop-head.
    const atLeastOnce = { "x-dead-letter-exchange": "mpdead", "x-dead-letter-strategy": "at-least-once" };
    const withReject = desiredOf(raw({ services: [{ name: "mpa", async: { type: "quorum", arguments: { ...atLeastOnce, "x-overflow": "reject-publish" } } }, "mpdead"] }), "async");
    expect(deadLettering(withReject, actual([]), owns, displayPath).warnings.filter((w) => w.includes("routes none"))).toEqual([
      'services[0].async.arguments.x-dead-letter-exchange: x-dead-letter-exchange: "mpdead" (queue mpa.async): it dead-letters to exchange "mpdead" (topic), bound only with mpdead.async.#, which routes none of the messages\' own routing keys (<service>.async.<task>), so RabbitMQ keeps every message it dead-letters in the queue instead (quorum, x-dead-letter-strategy at-least-once): none of those is delivered, and they pile up there, counted as messages_dlx, until a route appears; fix: bind a queue to "mpdead" with a key that matches them, or add x-dead-letter-routing-key with a key it routes, or dead-letter to an exchange that routes them',
    ]);
    const dropHead = policy({ name: "overflow", pattern: "^mpa\\.", definition: { overflow: "drop-head" } });
    const withoutReject = desiredOf(raw({ services: [{ name: "mpa", async: { type: "quorum", arguments: atLeastOnce } }, "mpdead"] }), "async");
    // RabbitMQ dead-letters at least once since 3.10 only; an operator policy's drop-head wins over the file's reject-publish.
    // Operator policies it could not read may set one: not surely kept.
    const operatorDropHead = actual([], { version: "4.0.5", operatorPolicies: [dropHead] });
    const unreadable = actual([], { version: "4.0.5", operatorPolicies: undefined, operatorPoliciesUnreadable: "the user may not read them" });
    for (const [file, vhost] of [[withReject, actual([dropHead])], [withoutReject, actual([])], [withReject, actual([], { version: "3.9.29" })], [withReject, operatorDropHead], [withReject, unreadable]] as const) {
      expect(deadLettering(file, vhost, owns, displayPath).warnings.filter((w) => w.includes("routes none"))).toEqual([expect.stringContaining("so RabbitMQ drops every message it dead-letters, without a word")]);
    }
  });

  it("a binding of the vhost's that matches, an alternate exchange, or an exchange type topo cannot judge: nothing is said", () => {
    expect(deadLettering(d, actual([binding("mpdead", "mpa.async.*"), binding("mpdead", "#.failed")]), owns, displayPath).warnings).toEqual([]);
    expect(deadLettering(d, actual([binding("mpdead", "mpa.async.retry")]), owns, displayPath).warnings).toHaveLength(1);
    const direct = desiredOf(raw({ services: [{ name: "mpa", async: { arguments: { "x-dead-letter-exchange": "dlx" } } }] }), "async");
    expect(deadLettering(direct, actual([exchange("dlx", "direct"), binding("dlx", "mpa.async.retry")]), owns, displayPath).warnings).toEqual([]);
    expect(deadLettering(direct, actual([exchange("dlx", "direct"), binding("dlx", "mpa.sync.retry")]), owns, displayPath).warnings).toHaveLength(1);
    expect(deadLettering(direct, actual([exchange("dlx", "fanout")]), owns, displayPath).warnings[0]).toContain('to exchange "dlx" (fanout), bound to nothing');
    expect(deadLettering(direct, actual([exchange("dlx", "fanout"), binding("dlx", "")]), owns, displayPath).warnings).toEqual([]);
    expect(deadLettering(direct, actual([exchange("dlx", "fanout", { "alternate-exchange": "ae" })]), owns, displayPath).warnings).toEqual([]);
    expect(deadLettering(direct, actual([exchange("dlx", "headers")]), owns, displayPath).warnings).toEqual([]);
  });

  // A binding to another exchange passes a message on with its key: measured on 4.0.5 and 4.3.6, a
  // message rejected from a queue whose dead-letter exchange was bound only to a fanout exchange
  // with nothing bound was gone, and plan, which counted that binding as a route, said "No changes.".
  it("a binding to another exchange routes only where a queue is reached from there", () => {
    const direct = desiredOf(raw({ services: [{ name: "mpa", async: { arguments: { "x-dead-letter-exchange": "dlx" } } }] }), "async");
    const toExchange = (source: string, destination: string, key = "#") => ({ ...binding(source, key, destination), destinationType: "exchange" as const });
    const run = (...rs: Parameters<typeof actual>[0]) => deadLettering(direct, actual(rs), owns, displayPath).warnings;
    const onward = [exchange("dlx", "topic"), exchange("dlx2", "fanout"), toExchange("dlx", "dlx2")];
    expect(run(...onward)).toEqual([
      'services[0].async.arguments.x-dead-letter-exchange: x-dead-letter-exchange: "dlx" (queue mpa.async): it dead-letters to exchange "dlx" (topic), bound only with #, which passes the messages\' own routing keys (<service>.async.<task>) on only to exchange "dlx2", from which none reaches a queue, so RabbitMQ drops every message it dead-letters, without a word; fix: bind a queue to "dlx" with a key that matches them, or add x-dead-letter-routing-key with a key it routes, or dead-letter to an exchange that routes them',
    ]);
    // A queue bound further on, or an exchange topo cannot judge on the way: nothing is said.
    expect(run(...onward, binding("dlx2", ""))).toEqual([]);
    expect(run(exchange("dlx", "topic"), exchange("dlx2", "fanout"), exchange("dlx3", "direct"), toExchange("dlx", "dlx2"), toExchange("dlx2", "dlx3", ""), binding("dlx3", "mpa.async.retry"))).toEqual([]);
    expect(run(exchange("dlx", "topic"), exchange("dlx2", "headers"), toExchange("dlx", "dlx2"))).toEqual([]);
    // Onward by keys that do not match, or round a loop of exchanges: routed nowhere.
    expect(run(exchange("dlx", "topic"), exchange("dlx2", "direct"), toExchange("dlx", "dlx2"), binding("dlx2", "other"))).toHaveLength(1);
    expect(run(exchange("dlx", "topic"), exchange("dlx2", "fanout"), toExchange("dlx", "dlx2"), toExchange("dlx2", "dlx"))).toHaveLength(1);
  });
});

describe("dead letters through the default exchange without a routing key", () => {
  // Each message goes with its own routing key, to the queue of that name: a task's key names none.
  const d = desiredOf(raw({ services: ["mplogin", { name: "mpwallet", async: { arguments: { "x-dead-letter-exchange": "" } } }] }), "async");
  it("a warning at x-dead-letter-exchange, with the fix", () => {
    expect(deadLettering(d, actual([]), owns, displayPath)).toEqual({
      degraded: [],
      warnings: [
        'services[1].async.arguments.x-dead-letter-exchange: x-dead-letter-exchange: "" (queue mpwallet.async): it dead-letters through the default exchange with each message\'s own routing key, which reaches only a queue of that name, so RabbitMQ drops every message it dead-letters whose key names no queue: every task (a key such as mpwallet.async.<task>), without a word; fix: add x-dead-letter-routing-key beside it, naming the queue to keep dead letters in (one of the file\'s, or one the vhost has), or point x-dead-letter-exchange at an exchange that routes them',
      ],
    });
  });
  it("a policy's dead-letter-routing-key fills in the key the arguments lack: nothing is said", () => {
    const keyed = foreign({ pattern: "^mpwallet\\.", definition: { "dead-letter-routing-key": "mplogin.async" } });
    expect(deadLettering(d, actual([keyed]), owns, displayPath).warnings).toEqual([]);
    // A policy that matches other queues only does not.
    const elsewhere = foreign({ pattern: "^mplogin\\.", definition: { "dead-letter-routing-key": "mplogin.async" } });
    expect(deadLettering(d, actual([elsewhere]), owns, displayPath).warnings).toHaveLength(1);
  });
});

describe("RabbitMQ 4's default delivery limit", () => {
  const d = desiredOf(
    raw({
      defaults: { async: { type: "quorum" } },
      services: ["mplogin", "mpwallet", { name: "mpkept", async: { type: "quorum", arguments: { "x-delivery-limit": -1 } } }, { name: "mpdead", async: { type: "quorum", arguments: { "x-dead-letter-exchange": "amq.fanout" } } }],
    }),
    "async",
  );
  it("a quorum queue with neither a delivery limit nor a dead-letter exchange: warned on 4.x at its type, never on 3.x", () => {
    expect(deadLettering(d, actual([], { version: "3.13.7" }), owns, displayPath)).toEqual({ degraded: [], warnings: [] });
    expect(deadLettering(d, actual([], { version: "4.0.5" }), owns, displayPath).warnings).toEqual([
      "defaults.async.type: type: quorum (queues mplogin.async, mpwallet.async): RabbitMQ 4.0.5 gives a quorum queue a delivery limit of 20 where the file gives no x-delivery-limit, and these have no dead-letter exchange, so it drops a message returned to it more than 20 times: a worker that dies holding it returns it, and so does a reject with requeue (RabbitMQ 3 sets no limit); fix: write x-delivery-limit: -1 for no limit (RabbitMQ 4 only: 3.x takes -1 as no delivery at all), or the most deliveries to allow, or give them an x-dead-letter-exchange to keep what goes over it",
    ]);
  });
  it("a policy or an operator policy that sets a delivery limit or a dead-letter exchange says what happens instead", () => {
    for (const definition of [{ "delivery-limit": 100 }, { "dead-letter-exchange": "amq.fanout" }] as Args[]) {
      expect(deadLettering(d, actual([foreign({ pattern: "^mplogin\\.", definition })], { version: "4.3.6" }), owns, displayPath).warnings).toEqual([expect.stringMatching(/\(queue mpwallet\.async\)/)]);
    }
    expect(deadLettering(d, actual([], { version: "4.3.6", operatorPolicies: [foreign({ definition: { "delivery-limit": 50 } })] }), owns, displayPath).warnings).toEqual([]);
  });
});

describe("messages a replace moves back carry the queue's name as their routing key", () => {
  // h7b's measurement: dead-lettered to a topic exchange bound with *.async.*, the 5 tasks a worker
  // rejected after the replace that were published after it were kept, the 5 it moved were gone.
  const file = (key?: string) =>
    desiredOf(raw({ services: [{ name: "mpx", sync: false, async: { arguments: { "x-dead-letter-exchange": "mpdl", "x-max-length": 2000, ...(key ? { "x-dead-letter-routing-key": key } : {}) } } }, { name: "mpdl", sync: false }] }), "async");
  const dlq = (routingKey: string) => [
    { kind: "queue" as const, name: "deadletters", type: "classic" as const, durable: true, autoDelete: false, exclusive: false, arguments: {} },
    { kind: "binding" as const, source: "mpdl", destination: "deadletters", destinationType: "queue" as const, routingKey, arguments: {} },
  ];
  const replaced = (d: ReturnType<typeof file>, extra: Parameters<typeof actual>[0]) => {
    const before = d.resources.map((r) => (r.kind === "queue" && r.name === "mpx.async" ? { ...r, arguments: { ...r.arguments, "x-max-length": 1000 } } : r));
    const plan = diffCluster(d, actual([...before, ...extra], { queueFacts: { "mpx.async": { messages: 5, ready: 5, unacked: 0, consumers: 0, bytes: 5 } } }), "mp");
    return plan.actions.find((a) => a.op === "replace");
  };

  it("a note under the replace where the dead-letter exchange routes task names but not the queue's name", () => {
    const r = replaced(file(), dlq("*.async.*"));
    expect(r?.op === "replace" && r.movedDeadLetters).toBe(
      'dead letters: a message this replace moves back carries routing key mpx.async (the queue\'s name: it comes in by the default exchange), and exchange "mpdl", which the queue dead-letters to by the messages\' own keys, routes no mpx.async: one the workers reject later, or that expires, is dropped; bind the dead-letter queue to "mpdl" with mpx.async too, or set x-dead-letter-routing-key (docs/safety.md)',
    );
    expect(renderText({ clusters: [{ cluster: "async", endpoint: "e", vhost: "a", actions: [r!], warnings: [], degraded: [] }] })).toContain("      ! dead letters: a message this replace moves back carries routing key mpx.async");
  });

  it("a quorum queue that dead-letters at least once keeps such a message: the note says so", () => {
    const quorum = desiredOf(
      raw({ services: [{ name: "mpx", sync: false, async: { type: "quorum", arguments: { "x-dead-letter-exchange": "mpdl", "x-max-length": 2000, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } } }, { name: "mpdl", sync: false }] }),
      "async",
    );
    const r = replaced(quorum, dlq("*.async.*"));
    expect(r?.op === "replace" && r.movedDeadLetters).toContain(
      "routes no mpx.async: one the workers reject later, or that expires, is kept in the queue instead, undelivered (quorum, x-dead-letter-strategy at-least-once), counted as messages_dlx; bind the dead-letter queue",
    );
  });

  it("none where the exchange routes the queue's name (# matches no word too), or the queue names its dead-letter key", () => {
    const none = (r: ReturnType<typeof replaced>) => (r?.op === "replace" ? r.movedDeadLetters : "no replace");
    expect(none(replaced(file(), dlq("mpx.async.#")))).toBeUndefined();
    expect(none(replaced(file(), dlq("#")))).toBeUndefined();
    expect(none(replaced(file("mpx.async.failed"), dlq("*.async.*")))).toBeUndefined();
  });
});

describe("dead letters that route back into the queue itself (a dead-letter cycle)", () => {
  // Measured: a message expiring in a queue dead-lettering through "" to its own name was gone
  // (3.10.8, 4.3.6), a rejected one came back; a quorum queue with x-delivery-limit 1 dead-lettering
  // to its service's exchange (bound with mpwallet.async.#) lost its message at the limit (4.3.6).
  const d = desiredOf(
    raw({
      defaults: { async: { type: "quorum" } },
      services: [
        { name: "mpwallet", async: { arguments: { "x-delivery-limit": 5, "x-dead-letter-exchange": "mpwallet", "x-dead-letter-routing-key": "mpwallet.async.dead" } } },
        { name: "mpshop", async: { arguments: { "x-dead-letter-exchange": "mpshop" } } },
        { name: "mpself", async: { type: "classic", arguments: { "x-message-ttl": 1000, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mpself.async" } } },
        { name: "mpok", async: { arguments: { "x-dead-letter-exchange": "mpdead" } } },
        { name: "mpelse", async: { type: "classic", arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mpdead.async" } } },
        "mpdead",
      ],
    }),
    "async",
  );
  const binding = (source: string, key: string, destination: string) => ({ kind: "binding" as const, source, destination, destinationType: "queue" as const, routingKey: key, arguments: {} });
  const cycles = (extra: Parameters<typeof actual>[0] = []) => deadLettering(d, actual(extra, { version: "4.3.6" }), owns, displayPath).warnings.filter((w) => w.includes("dead-letter cycle"));

  it("a warning at the argument that sends them back: own exchange with or without a key, the default exchange to its own name", () => {
    const ws = cycles([binding("mpdead", "mpok.async.#", "mpdead.async")]);
    expect(ws).toEqual([
      'services[0].async.arguments.x-dead-letter-routing-key: x-dead-letter-routing-key: "mpwallet.async.dead" (queue mpwallet.async): it dead-letters to exchange "mpwallet" (topic), which routes the key "mpwallet.async.dead" back to the queue itself (mpwallet.async.#), and RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a client rejected it (a dead-letter cycle), without a word: only what a worker rejects (requeue false) comes back; what expires, what a length limit pushes out and what goes over its delivery limit (x-delivery-limit 5) is gone; fix: dead-letter to another queue (x-dead-letter-routing-key naming it, or an exchange bound to it)',
      expect.stringMatching(/^services\[1\]\.async\.arguments\.x-dead-letter-exchange: x-dead-letter-exchange: "mpshop" \(queue mpshop\.async\): it dead-letters to exchange "mpshop" \(topic\), which routes the messages' own routing keys back to the queue itself \(mpshop\.async\.#\), and RabbitMQ drops/),
      expect.stringMatching(/^services\[2\]\.async\.arguments\.x-dead-letter-routing-key: x-dead-letter-routing-key: "mpself\.async" \(queue mpself\.async\): it dead-letters through the default exchange to its own name, and RabbitMQ drops/),
    ]);
  });

  it("names the delivery limit the queue has: the file's, RabbitMQ 4's default, or none (a classic queue, a quorum queue on 3.x)", () => {
    const on = (version: string) => deadLettering(d, actual([binding("mpdead", "mpok.async.#", "mpdead.async")], { version }), owns, displayPath).warnings.filter((w) => w.includes("dead-letter cycle"));
    const of = (ws: string[], queue: string) => ws.find((w) => w.includes(`(queue ${queue})`)) ?? "";
    expect(of(on("4.3.6"), "mpshop.async")).toContain("what expires, what a length limit pushes out and what goes over its delivery limit (20, RabbitMQ 4.3.6's default where the file sets none) is gone");
    expect(of(on("3.10.8"), "mpshop.async")).toContain("; what expires and what a length limit pushes out is gone;");
    expect(of(on("3.10.8"), "mpwallet.async")).toContain("what goes over its delivery limit (x-delivery-limit 5) is gone");
    // A classic queue has no delivery limit.
    expect(of(on("4.3.6"), "mpself.async")).toContain("; what expires and what a length limit pushes out is gone;");
    expect(on("4.3.6").join("\n")).not.toMatch(/mpself\.async.*delivery limit/);
  });

  it("a quorum queue that dead-letters at least once keeps what the cycle would drop: said so, not that it is gone", () => {
    // Measured on 3.10.8 and 4.3.6: 10 messages that expired in such a queue, dead-lettering to its
    // own topic exchange (or through "" to its own name), stayed in it, counted as messages_dlx,
    // and none was delivered in the 400 s after.
    const atLeastOnce = { "x-dead-letter-exchange": "mpshop", "x-dead-letter-strategy": "at-least-once" };
    const file = (args: Args) => desiredOf(raw({ services: [{ name: "mpshop", async: { type: "quorum", arguments: args } }] }), "async");
    const loops = (f: ReturnType<typeof file>, extra: Parameters<typeof actual>[0] = []) => deadLettering(f, actual(extra, { version: "4.3.6" }), owns, displayPath).warnings.filter((w) => w.includes("dead-letter cycle"));
    expect(loops(file({ ...atLeastOnce, "x-overflow": "reject-publish" }))).toEqual([
      'services[0].async.arguments.x-dead-letter-exchange: x-dead-letter-exchange: "mpshop" (queue mpshop.async): it dead-letters to exchange "mpshop" (topic), which routes the messages\' own routing keys back to the queue itself (mpshop.async.#), and RabbitMQ delivers no message back to a queue it was dead-lettered from unless a client rejected it (a dead-letter cycle): only what a worker rejects (requeue false) comes back; what expires, what a length limit pushes out and what goes over its delivery limit (20, RabbitMQ 4.3.6\'s default where the file sets none) is kept in the queue instead (quorum, x-dead-letter-strategy at-least-once), counted as messages_dlx, where it stays undelivered; fix: dead-letter to another queue (x-dead-letter-routing-key naming it, or an exchange bound to it)',
    ]);
    // Not where the broker falls back to at most once: without reject-publish, or under a policy's drop-head.
    const dropHead = policy({ name: "overflow", pattern: "^mpshop\\.", definition: { overflow: "drop-head" } });
    for (const ws of [loops(file(atLeastOnce)), loops(file({ ...atLeastOnce, "x-overflow": "reject-publish" }), [dropHead])]) {
      expect(ws).toEqual([expect.stringContaining("and RabbitMQ drops a message that comes back to a queue it was dead-lettered from")]);
    }
  });

  it("nothing where another queue also gets them, or a policy may send them elsewhere", () => {
    // A second queue bound to the service's exchange with the same keys keeps a copy.
    expect(cycles([binding("mpshop", "mpshop.async.#", "mpdead.async")]).some((w) => w.includes("mpshop.async"))).toBe(false);
    const elsewhere = policy({ name: "ops", pattern: "^mp", definition: { "dead-letter-routing-key": "mpdead.async" } });
    expect(cycles([elsewhere])).toEqual([]);
  });
});

describe("dead letters that come round again through other queues (a dead-letter cycle of several)", () => {
  // RabbitMQ drops a message on its way into a queue it was dead-lettered from unless a client
  // rejected it somewhere since (rabbit_dead_letter:detect_cycles/3, mc:is_death_cycle/2).
  // Measured on 3.10.8 (test/integration/dead-letter-cycles.test.ts): a message expiring in a queue
  // whose dead letters go to a retry queue that sends its own back was gone from both.
  const classic = (args: Args): RawQueueSettings => ({ type: "classic", arguments: args });
  const viaDefault = (to: string, more: Args = {}) => classic({ "x-dead-letter-exchange": "", "x-dead-letter-routing-key": to, ...more });
  const bind = (source: string, key: string, destination: string) => ({ kind: "binding" as const, source, destination, destinationType: "queue" as const, routingKey: key, arguments: {} });
  const cyclesOf = (services: (string | RawService)[], extra: Parameters<typeof actual>[0] = [], version = "3.10.8") => {
    const d = desiredOf(raw({ services }), "async");
    return deadLettering(d, actual(extra, { version }), owns, displayPath).warnings.filter((w) => w.includes("dead-letter cycle"));
  };

  it("the retry pattern through the default exchange: one warning, at the queue the file writes first, naming the way round", () => {
    const ws = cyclesOf(["mpother", { name: "mpwork", async: viaDefault("mpretry.async") }, { name: "mpretry", async: viaDefault("mpwork.async", { "x-message-ttl": 5000 }) }]);
    expect(ws).toEqual([
      'services[1].async.arguments.x-dead-letter-routing-key: x-dead-letter-routing-key: "mpretry.async" (queue mpwork.async): its dead letters go to queue mpretry.async (through the default exchange, with the key "mpretry.async"), and come round to it again (mpwork.async → mpretry.async → mpwork.async), and RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a client rejected it somewhere on the way round (a dead-letter cycle), without a word: a message goes round again only if a worker rejects it (requeue false) in one of them; one that each of them dead-letters because it expired, a length limit pushed it out or it went over a delivery limit is gone; fix: dead-letter one of them to a queue outside the cycle, or make sure a message leaves one of them only when a worker rejects it (no message TTL, length limit or delivery limit there)',
    ]);
  });

  it("quorum queues that dead-letter at least once keep what closes the cycle: said for all of them, or for those that do", () => {
    // Measured on 3.10.8 and 4.3.6: two quorum queues each expiring into the other through "",
    // 10 messages published to the first: all 10 held in the second (messages_dlx 10) where the
    // second dead-letters at least once, whatever the first does; none anywhere where it does not.
    const keeping = (to: string): RawQueueSettings => ({ type: "quorum", arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": to, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } });
    const dropping = (to: string): RawQueueSettings => ({ type: "quorum", arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": to, "x-delivery-limit": 5 } });
    const both = cyclesOf([{ name: "mpwork", async: keeping("mpretry.async") }, { name: "mpretry", async: keeping("mpwork.async") }]);
    expect(both).toHaveLength(1);
    expect(both[0]).toContain(
      "and RabbitMQ delivers no message back to a queue it was dead-lettered from unless a client rejected it somewhere on the way round (a dead-letter cycle): a message goes round again only if a worker rejects it (requeue false) in one of them; one that each of them dead-letters because it expired, a length limit pushed it out or it went over a delivery limit is kept instead, undelivered, by the queue that would send it back into the queue it first left (quorum, x-dead-letter-strategy at-least-once), counted as messages_dlx there; fix:",
    );
    const one = cyclesOf([{ name: "mpwork", async: dropping("mpretry.async") }, { name: "mpretry", async: keeping("mpwork.async") }]);
    expect(one[0]).toContain(
      "RabbitMQ drops a message that comes back to a queue it was dead-lettered from unless a client rejected it somewhere on the way round (a dead-letter cycle), without a word: a message goes round again only if a worker rejects it (requeue false) in one of them; one that each of them dead-letters because it expired, a length limit pushed it out or it went over a delivery limit (mpwork.async: x-delivery-limit 5) is gone, unless the queue that would send it back into the queue it first left is mpretry.async: that one keeps it instead, undelivered (quorum, x-dead-letter-strategy at-least-once), counted as messages_dlx; fix:",
    );
    expect(cyclesOf([{ name: "mpwork", async: dropping("mpretry.async") }, { name: "mpretry", async: dropping("mpwork.async") }])[0]).toMatch(/\) is gone; fix:/);
  });

  it("through topic exchanges with the messages' own keys, three queues round; RabbitMQ 4's default delivery limit named where it applies", () => {
    const quorum = (args: Args): RawQueueSettings => ({ type: "quorum", arguments: args });
    const services: RawService[] = [
      { name: "mpwork", async: quorum({ "x-dead-letter-exchange": "mpa" }) },
      { name: "mpa", async: classic({ "x-dead-letter-exchange": "mpb" }) },
      { name: "mpb", async: classic({ "x-dead-letter-exchange": "mpwork", "x-message-ttl": 1000 }) },
    ];
    // mpa and mpb also route mpwork's task names (mpwork.async.<task>) to their queues.
    const extra = [bind("mpa", "mpwork.async.*", "mpa.async"), bind("mpb", "#", "mpb.async")];
    const [w, ...rest] = cyclesOf(services, extra, "4.3.6");
    expect(rest).toEqual([]);
    expect(w).toMatch(/^services\[0\]\.async\.arguments\.x-dead-letter-exchange: x-dead-letter-exchange: "mpa" \(queue mpwork\.async\): its dead letters go to queue mpa\.async \(exchange "mpa" \(topic\) routes the messages' own routing keys to it by mpwork\.async\.\*\), and come round to it again \(mpwork\.async → mpa\.async → mpb\.async → mpwork\.async\)/);
    expect(w).toContain("went over a delivery limit (mpwork.async: 20, RabbitMQ 4.3.6's default where the file sets none) is gone");
    // On 3.10 a quorum queue has no delivery limit unless the file sets one.
    expect(cyclesOf(services, extra, "3.10.8")[0]).toContain("went over a delivery limit is gone");
  });

  it("nothing where a queue of the way round also sends elsewhere, its exchange cannot be judged, or a policy may change its dead-lettering", () => {
    const services: (string | RawService)[] = [{ name: "mpwork", async: classic({ "x-dead-letter-exchange": "mpretry" }) }, { name: "mpretry", async: viaDefault("mpwork.async") }, "mpkeep"];
    const into = bind("mpretry", "mpwork.async.#", "mpretry.async");
    expect(cyclesOf(services, [into])).toHaveLength(1);
    // A second queue keeps a copy of what mpwork dead-letters.
    expect(cyclesOf(services, [into, bind("mpretry", "#", "mpkeep.async")])).toEqual([]);
    // An exchange bound onwards to another exchange: topo does not follow it.
    expect(cyclesOf(services, [into, { ...bind("mpretry", "#", "mpkeep"), destinationType: "exchange" as const }])).toEqual([]);
    // An alternate exchange, or a policy that may set a dead-letter setting.
    expect(cyclesOf(services, [into, policy({ name: "ae", pattern: ".*", applyTo: "exchanges", definition: { "alternate-exchange": "x" } })])).toEqual([]);
    expect(cyclesOf(services, [into, policy({ name: "dl", pattern: "^mpretry", definition: { "dead-letter-exchange": "elsewhere" } })])).toEqual([]);
    // A chain that ends (the last queue does not dead-letter) is no cycle.
    expect(cyclesOf([{ name: "mpwork", async: viaDefault("mpretry.async") }, { name: "mpretry", async: viaDefault("mpend.async") }, "mpend"])).toEqual([]);
  });

  it("a queue that sends back to itself only what another queue's key brings it: said once, at that queue; its own loop stays the single-queue warning", () => {
    // mpin's dead letters reach mpr with the key "mpr.dead"; mpr dead-letters to exchange mpx by the
    // messages' keys, which routes mpr.dead back to mpr (and its own tasks nowhere).
    const services: RawService[] = [
      { name: "mpin", async: viaDefault("mpr.async") },
      { name: "mpr", async: classic({ "x-dead-letter-exchange": "mpx" }) },
    ];
    const mpx = exchange({ name: "mpx" });
    const ws = cyclesOf(services, [mpx, bind("mpx", "mpr.async", "mpr.async")]);
    expect(ws).toEqual([expect.stringMatching(/^services\[1\]\.async\.arguments\.x-dead-letter-exchange: x-dead-letter-exchange: "mpx" \(queue mpr\.async\): what other queues dead-letter into it comes back to it \(exchange "mpx" \(topic\) routes the key "mpr\.async", which they came in with, to it by mpr\.async\), and RabbitMQ drops/)]);
    expect(ws[0]).toContain("fix: dead-letter one of the queues that send to it to a queue outside the cycle, or make sure a message leaves it only when a worker rejects it");
    // Where mpx routes mpr's own tasks back too, the single-queue warning says it, and no second.
    const own = cyclesOf(services, [mpx, bind("mpx", "mpr.async.#", "mpr.async")]);
    expect(own).toHaveLength(1);
    expect(own[0]).toContain("back to the queue itself");
  });

  it("a long way round is named by its first queues and how many more", () => {
    const n = 9;
    const services: RawService[] = Array.from({ length: n }, (_, i) => ({ name: `mpq${String.fromCharCode(97 + i)}`, async: viaDefault(`mpq${String.fromCharCode(97 + ((i + 1) % n))}.async`) }));
    const ws = cyclesOf(services);
    expect(ws).toHaveLength(1);
    expect(ws[0]).toContain("(mpqa.async → mpqb.async → mpqc.async → mpqd.async → mpqe.async → … (4 more) → mpqa.async)");
  });
});

describe("a replaced queue that another queue dead-letters into by name", () => {
  // Measured on 3.10.8 (docs/safety.md): what is dead-lettered to the queue's name goes to the old
  // queue during the move (apply stops), and nowhere between its delete and the new declare.
  const userQueue = (name: string, args: Args) => ({ kind: "queue" as const, name, type: "classic" as const, durable: true, autoDelete: false, exclusive: false, arguments: args });
  const file = (more: RawService[] = []) => desiredOf(raw({ services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 2000 } } }, ...more] }), "async");
  const replaced = (d: ReturnType<typeof file>, extra: Parameters<typeof actual>[0], queue = "mplogin.async", resume = false) => {
    const before = d.resources.flatMap((r) => (r.kind === "queue" && r.name === queue ? (resume ? [] : [{ ...r, arguments: { "x-max-length": 1000 } }]) : [r]));
    const plan = diffCluster(d, actual([...before, ...extra], { queueFacts: { [queue]: { messages: 0, ready: 0, unacked: 0, consumers: 0, bytes: 0 } } }), "mp");
    const a = plan.actions.find((x) => x.op === "replace" && x.after.kind === "queue" && x.after.name === queue);
    return a?.op === "replace" ? a : undefined;
  };
  const retry = userQueue("retry.mplogin", { "x-message-ttl": 30000, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mplogin.async" });

  it("names the queue under the replace, with what happens and what to do, in text and JSON", () => {
    const a = replaced(file(), [retry]);
    expect(a?.namedDeadLetters?.queues).toEqual(["retry.mplogin"]);
    expect(a?.namedDeadLetters?.note).toBe(
      'dead letters by name: queue retry.mplogin dead-letters into it by name (x-dead-letter-exchange "" and x-dead-letter-routing-key "mplogin.async"): what is dead-lettered by name goes to the queue of that name, not through the bindings the replace moves onto topo.hold.mplogin.async, so what it dead-letters while the messages are moved out lands in the old queue, which apply then does not delete (it stops, and the next apply finishes the replace), and what it dead-letters in the moment between the old queue\'s delete and the new one\'s declare RabbitMQ drops, without a word; let it empty and stop what makes it dead-letter (a message TTL, workers that reject) for the apply, or dead-letter through an exchange bound to mplogin.async instead (docs/safety.md)',
    );
    const text = renderText({ clusters: [{ cluster: "async", endpoint: "e", vhost: "a", actions: [a!], warnings: [], degraded: [] }] });
    expect(text).toContain("      ! dead letters by name: queue retry.mplogin dead-letters into it by name");
  });

  it("a quorum sender that dead-letters at least once keeps what finds no queue in that moment: said apart from one that drops it", () => {
    // Measured on 3.10.8 and 4.3.6: such a queue kept all 20 messages it dead-lettered by name
    // while no queue had that name (messages_dlx 20), and delivered them 170 s after one was declared.
    const keeps = { ...userQueue("retry.kept", { "x-message-ttl": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mplogin.async", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" }), type: "quorum" as const };
    const alone = replaced(file(), [keeps])?.namedDeadLetters?.note ?? "";
    expect(alone).toContain(
      "which apply then does not delete (it stops, and the next apply finishes the replace), and what it dead-letters in the moment between the old queue's delete and the new one's declare RabbitMQ keeps in the sender (quorum, x-dead-letter-strategy at-least-once) and sends on at its next retry; let it empty",
    );
    expect(alone).not.toMatch(/drops/);
    expect(replaced(file(), [keeps, retry])?.namedDeadLetters?.note).toContain(
      "and what queue retry.mplogin dead-letters in the moment between the old queue's delete and the new one's declare RabbitMQ drops, without a word; what queue retry.kept dead-letters in the moment between the old queue's delete and the new one's declare RabbitMQ keeps in the sender (quorum, x-dead-letter-strategy at-least-once) and sends on at its next retry; let them empty",
    );
  });

  it("a policy's dead-letter settings count where the queue has no argument of its own; the file's own queues count too", () => {
    const byPolicy = userQueue("retry.mplogin", { "x-message-ttl": 30000 });
    const p = policy({ name: "retries", pattern: "^retry\\.", definition: { "dead-letter-exchange": "", "dead-letter-routing-key": "mplogin.async" } });
    expect(replaced(file(), [byPolicy, p])?.namedDeadLetters?.note).toContain('queue retry.mplogin dead-letters into it by name (policy "retries"\'s dead-letter-exchange "" and policy "retries"\'s dead-letter-routing-key "mplogin.async")');
    const half = policy({ name: "retries", pattern: "^retry\\.", definition: { "dead-letter-routing-key": "mplogin.async" } });
    expect(replaced(file(), [userQueue("retry.mplogin", { "x-dead-letter-exchange": "" }), half])?.namedDeadLetters?.note).toContain('(x-dead-letter-exchange "" and policy "retries"\'s dead-letter-routing-key "mplogin.async")');
    // The queue's own routing key wins over the policy's.
    expect(replaced(file(), [userQueue("retry.mplogin", { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "elsewhere" }), half])?.namedDeadLetters).toBeUndefined();
    const mine = file([{ name: "mpretry", sync: false, async: { arguments: { "x-message-ttl": 1000, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mplogin.async" } } }]);
    expect(replaced(mine, [])?.namedDeadLetters?.queues).toEqual(["mpretry.async"]);
  });

  it("where topo cannot tell which of two policies applies, and only one sends there, the queue may", () => {
    const q = userQueue("retry.mplogin", { "x-dead-letter-exchange": "" });
    const sends = policy({ name: "park", pattern: "^retry\\.", definition: { "dead-letter-routing-key": "mplogin.async" } });
    const other = policy({ name: "other", pattern: "mplogin$", definition: { "message-ttl": 1000 } });
    expect(replaced(file(), [q, sends, other])?.namedDeadLetters?.note).toContain("dead letters by name: queue retry.mplogin may dead-letter (topo cannot tell which policy applies to it) into it by name");
    expect(replaced(file(), [q, sends])?.namedDeadLetters?.note).toContain("dead letters by name: queue retry.mplogin dead-letters into it by name");
  });

  it("nothing where the sender goes through an exchange, names another queue, is deleted by the plan, or only the move back is left", () => {
    expect(replaced(file(), [userQueue("retry.mplogin", { "x-dead-letter-exchange": "mplogin", "x-dead-letter-routing-key": "mplogin.async" })])?.namedDeadLetters).toBeUndefined();
    expect(replaced(file(), [userQueue("retry.other", { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "other" })])?.namedDeadLetters).toBeUndefined();
    // A queue that dead-letters to its own name is the dead-letter cycle's warning, not this.
    const self = file().resources.map((r) => (r.kind === "queue" ? { ...r, arguments: { ...r.arguments, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mplogin.async" } } : r));
    expect(replaced({ ...file(), resources: self }, [])?.namedDeadLetters).toBeUndefined();
    // A service's queue this plan deletes sends nothing afterwards.
    const leaving = { ...userQueue("mpgone.async", { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mplogin.async" }) };
    expect(replaced(file(), [leaving])?.namedDeadLetters).toBeUndefined();
    // Finishing a replace whose old queue is gone: no delete is left, so no moment without the queue.
    const hold = { ...userQueue("topo.hold.mplogin.async", {}) };
    expect(replaced(file(), [retry, hold], "mplogin.async", true)?.namedDeadLetters).toBeUndefined();
  });
});
