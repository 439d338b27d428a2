// The AMQP user's topic permissions against the bindings a plan makes or removes (plan/topic-rights.ts):
// RabbitMQ checks a bind's or unbind's routing key on a topic exchange against the read pattern.

import { describe, expect, it } from "vitest";
import { topicProblem, topicRefusals } from "../../src/plan/topic-rights.js";
import type { Action, ActualCluster, Binding, ClusterPlan, Exchange } from "../../src/model.js";
import { keyOf } from "../../src/core/keys.js";
import { queue } from "../helpers/builders.js";

const exchange = (name: string, type = "topic"): Exchange => ({ kind: "exchange", name, type, durable: true, autoDelete: false, internal: false, arguments: {} });
const binding = (source: string, routingKey: string): Binding => ({ kind: "binding", source, destination: `${source}.async`, destinationType: "queue", routingKey, arguments: {} });
const plan = (...actions: Action[]): ClusterPlan => ({ cluster: "async", endpoint: "amqp://x", vhost: "v", actions, degraded: [], warnings: [] });
const actual = (...xs: Exchange[]): ActualCluster => ({ vhostExists: true, version: "3.10.8", nodes: [], resources: xs, queueFacts: {} });
const create = (b: Binding): Action => ({ op: "create", key: keyOf(b), after: b });

describe("topicRefusals", () => {
  it("finds a created, deleted or re-bound binding whose key the read pattern refuses, on topic exchanges only", () => {
    const q = queue({ name: "mpb.async" });
    const replace: Action = { op: "replace", key: keyOf(q), before: q, after: { ...q, arguments: { "x-max-length": 5 } }, because: [], rebind: [binding("mpb", "mpb.async.#")] };
    const p = plan(create(binding("mpa", "mpa.async.#")), { op: "delete", key: "b", before: binding("mpd", "mpd.async.#") }, replace, create(binding("mpc", "mpc.async.#")));
    const perms = [
      { exchange: "mpa", write: ".*", read: "^mpa\\.sync\\." },
      { exchange: "mpb", write: ".*", read: "^nothing$" },
      { exchange: "mpc", write: ".*", read: "^nothing$" },
      { exchange: "mpd", write: ".*", read: "^{username}\\." },
    ];
    const refused = topicRefusals(p, actual(exchange("mpa"), exchange("mpb"), exchange("mpc", "direct"), exchange("mpd")), perms, "deploy", "v");
    expect(refused.map((r) => `${r.exchange} ${r.routingKey}`)).toEqual(["mpa mpa.async.#", "mpd mpd.async.#", "mpb mpb.async.#"]);
    const problem = topicProblem(refused, "deploy", "v");
    expect(problem?.cause).toContain('user "deploy"\'s topic permissions in vhost "v" refuse bindings');
    expect(problem?.cause).toContain("on topic exchange mpa its read pattern ^mpa\\.sync\\. refuses routing key mpa.async.#");
    expect(problem?.hints[0]).toContain("rabbitmqctl set_topic_permissions -p v deploy EXCHANGE WRITE READ");
  });

  it("lets through what the pattern matches (unanchored, {username} and {vhost} expanded), and leaves {client_id} to the broker", () => {
    const p = plan(create(binding("mpa", "deploy.v.x")));
    const x = actual(exchange("mpa"));
    expect(topicRefusals(p, x, [{ exchange: "mpa", write: "", read: "{username}\\.{vhost}" }], "deploy", "v")).toEqual([]);
    expect(topicRefusals(p, x, [{ exchange: "mpa", write: "", read: "^{client_id}$" }], "deploy", "v")).toEqual([]);
    expect(topicRefusals(p, x, [{ exchange: "other", write: "", read: "^$" }], "deploy", "v")).toEqual([]);
    expect(topicProblem([], "deploy", "v")).toBeUndefined();
  });
});
