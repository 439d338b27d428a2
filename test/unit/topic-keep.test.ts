// Pure: the topic permissions an exchange replace puts back on RabbitMQ 4 (plan/topic-keep.ts).

import { describe, expect, it } from "vitest";
import { dropsTopicsWithExchange, keepTopics, unkeptTopics } from "../../src/plan/topic-keep.js";
import { renderAction } from "../../src/plan/render.js";
import type { Action, ClusterPlan, Resource } from "../../src/model.js";

const exchange = (type: string): Resource => ({ kind: "exchange", name: "mplogin", type, durable: true, autoDelete: false, internal: false, arguments: {} }) as Resource;
const replace = (): Action => ({ op: "replace", key: "exchange|mplogin", before: exchange("direct"), after: exchange("topic"), because: ["type: direct -> topic"], rebind: [] });
const plan = (...actions: Action[]): ClusterPlan => ({ cluster: "async", endpoint: "", vhost: "async", actions, degraded: [], warnings: [] });

describe("topic permissions on a replaced exchange", () => {
  it("RabbitMQ 4 deletes them with the exchange, 3.x keeps them", () => {
    expect(dropsTopicsWithExchange("3.10.8")).toBe(false);
    expect(dropsTopicsWithExchange("4.0.5")).toBe(true);
    expect(dropsTopicsWithExchange("4.3.6")).toBe(true);
  });

  it("keeps every user's on the exchange, and no other exchange's; plan says whose", () => {
    const p = plan(replace());
    keepTopics(p, [
      { user: "edge", exchange: "mplogin", write: "^mplogin\\.sync\\.", read: "^$" },
      { user: "hand", exchange: "mplogin", write: "^x$", read: "" },
      { user: "edge", exchange: "mpwallet", write: ".*", read: ".*" },
    ]);
    const a = p.actions[0] as Extract<Action, { op: "replace" }>;
    expect(a.topics?.map((t) => `${t.user} ${t.exchange}`)).toEqual(["edge mplogin", "hand mplogin"]);
    expect(renderAction(a)).toContain("    then puts back the topic permissions of users edge, hand on it (RabbitMQ 4 deletes them with the exchange)");
    expect(unkeptTopics(p)).toBeUndefined();
  });

  it("one that could not be read is refused, and plan says why", () => {
    const p = plan(replace());
    keepTopics(p, { unread: "the management user deploy may not read them: it needs the administrator tag" });
    expect(unkeptTopics(p)).toEqual({ exchanges: ["mplogin"], why: "the management user deploy may not read them: it needs the administrator tag" });
    expect(renderAction(p.actions[0]!).join("\n")).toMatch(/! RabbitMQ 4 deletes every user's topic permission on an exchange with it, and topo could not read them to put them back: the management user deploy/);
  });
});
