// The pure parts of route, graph, definitions export and the output helpers, on plain objects.

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { normalize, type RawConfig } from "../../src/config/normalize.js";
import { loadConfig } from "../../src/config/load.js";
import { definitionsOf, definitionsWarnings } from "../../src/export/definitions.js";
import { renderGraph } from "../../src/plan/graph.js";
import { bindingsInto, bindingsIntoWarnings, deliver, foreignBindings, foreignBindingWarnings, parseTaskName, routeTask, topicMatches } from "../../src/plan/route.js";
import { Ownership } from "../../src/core/naming.js";
import type { ActualCluster, Binding, Exchange, Policy, Resource } from "../../src/model.js";
import { renderText } from "../../src/plan/render.js";
import { paintFor, Progress } from "../../src/output.js";
import { ansi } from "../../src/plan/render.js";

const ROOT = join(import.meta.dirname, "../..");

const raw = (o: Partial<RawConfig> = {}): RawConfig => ({
  version: 1,
  clusters: { sync: { url: "amqp://u:secretpw@h:5672/s" }, async: { url: "amqp://u:secretpw@h:5672/a" } },
  services: ["mplogin", { name: "mppayment", sync: false, async: { type: "quorum", arguments: { "x-delivery-limit": 5 } } }],
  ...o,
});

function desired(r: RawConfig = raw()) {
  const n = normalize(r);
  expect(n.problems).toEqual([]);
  return n.desired;
}

describe("topic matching", () => {
  // RabbitMQ's rules: words split on ".", "*" exactly one word, "#" zero or more words.
  it.each([
    ["mplogin.sync.#", "mplogin.sync.register", true],
    ["mplogin.sync.#", "mplogin.sync", true],
    ["mplogin.sync.#", "mplogin.sync.a.b.c", true],
    ["mplogin.sync.#", "mplogin.async.register", false],
    ["mplogin.sync.#", "mplogin.syncx.register", false],
    ["*.sync.*", "mplogin.sync.register", true],
    ["*.sync.*", "mplogin.sync", false],
    ["*.sync.*", "mplogin.sync.a.b", false],
    ["#", "", true],
    ["#", "a.b.c", true],
    ["#.register", "mplogin.sync.register", true],
    ["#.register", "register", true],
    ["a.#.b", "a.b", true],
    ["a.#.b", "a.x.y.b", true],
    ["a.#.b", "a.x.y.c", false],
    ["#.#", "a", true],
    ["a.*.#", "a", false],
    ["a.*.#", "a.b", true],
    ["exact", "exact", true],
    ["exact", "exactly", false],
  ])("%s against %s: %s", (pattern, key, want) => {
    expect(topicMatches(pattern, key)).toBe(want);
  });

  it("stays fast on patterns full of # (no exponential backtracking)", () => {
    const pattern = Array.from({ length: 60 }, () => "#").join(".") + ".z";
    const key = Array.from({ length: 200 }, () => "a").join(".");
    expect(topicMatches(pattern, key)).toBe(false);
  });
});

describe("route", () => {
  it("splits a task name by the router rule, or says which part breaks it", () => {
    expect(parseTaskName("mplogin.sync.register", "mp")).toEqual({ ok: true, service: "mplogin", kind: "sync", task: "register" });
    // The task part is letters, digits and _: the exported Celery router and topo's users' topic
    // permissions refuse any other, so no client topo sets up could send it.
    expect(parseTaskName("mplogin.async.a.b", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/task part "a.b" breaks the router rule/) });
    // A line break or a terminal escape in the name typed is shown escaped: it forged a line.
    const forged = parseTaskName("mplogin.sync.a\nOK: routed\u001b[31m", "mp");
    expect(forged).toMatchObject({ ok: false, why: expect.stringMatching(/^task part "a\\nOK: routed\\u001b\[31m" breaks the router rule/) });
    expect(forged.ok ? "" : forged.why).not.toMatch(/[\n\u001b]/);
    expect(parseTaskName("mplogin.sync.log-in", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/task part "log-in" breaks the router rule/) });
    expect(parseTaskName("mplogin.sync.Reg_1", "mp")).toEqual({ ok: true, service: "mplogin", kind: "sync", task: "Reg_1" });
    // A routing key is an AMQP short string: at most 255 bytes.
    expect(parseTaskName(`mplogin.sync.${"a".repeat(242)}`, "mp")).toMatchObject({ ok: true });
    expect(parseTaskName(`mplogin.sync.${"a".repeat(243)}`, "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/is 256 bytes long: a routing key is at most 255 bytes/) });
    expect(parseTaskName("mplogin.sync", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/has 2 words/) });
    expect(parseTaskName("MpLogin.sync.x", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/service "MpLogin" breaks the router rule: it must match \^mp\[a-z_\]\+\$/) });
    expect(parseTaskName("login.sync.x", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/prefix "mp"/) });
    expect(parseTaskName("mplogin.later.x", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/kind "later" is neither sync nor async/) });
    expect(parseTaskName("mplogin.sync..x", "mp")).toMatchObject({ ok: false, why: expect.stringMatching(/empty word/) });
    // Names the exported Celery router does not take as the topology's are not refused by it: Celery
    // sends them to task_default_queue. route must say so, not that the router refuses them.
    const DEFAULT = /the Celery router of topo export celery leaves it to Celery's default: task_default_queue/;
    for (const name of ["MpLogin.sync.x", "login.sync.x", "mplogin.later.x", "health.ping", "celery.chord_unlock", "mplogin"]) {
      expect(parseTaskName(name, "mp"), name).toMatchObject({ ok: false, why: expect.stringMatching(DEFAULT) });
    }
    // ...while those it takes as the topology's and then refuses (TopoRouteError) say nothing of a default.
    for (const name of ["mplogin.sync", "mplogin.sync.", "mplogin.sync..x", "mplogin.sync.log-in", `mplogin.sync.${"a".repeat(243)}`]) {
      expect(parseTaskName(name, "mp"), name).toMatchObject({ ok: false, why: expect.not.stringMatching(DEFAULT) });
    }
  });

  it("finds the cluster, exchange, routing key and matching queues from the desired state", () => {
    expect(routeTask(desired(), "mplogin.sync.register")).toEqual({
      ok: true,
      route: { task: "mplogin.sync.register", service: "mplogin", kind: "sync", cluster: "sync", vhost: "s", exchange: "mplogin", routingKey: "mplogin.sync.register", queues: ["mplogin.sync"] },
    });
    expect(routeTask(desired(), "mppayment.async.charge")).toMatchObject({ ok: true, route: { cluster: "async", vhost: "a", queues: ["mppayment.async"] } });
  });

  it("says why a name would be unroutable", () => {
    expect(routeTask(desired(), "mppayment.sync.charge")).toMatchObject({ ok: false, why: expect.stringMatching(/mppayment has no sync queue/), hint: expect.stringMatching(/mppayment.async.charge/) });
    expect(routeTask(desired(), "mpnobody.sync.x")).toMatchObject({ ok: false, why: expect.stringMatching(/no service mpnobody in the file/), hint: "add mpnobody to services:" });
    // One slip from a service of the file: the task meant, said first.
    expect(routeTask(desired(), "mplogn.sync.register")).toMatchObject({ ok: false, hint: "did you mean mplogin? (mplogin.sync.register); or add mplogn to services:" });
    const noAsync = desired(raw({ services: [{ name: "mplogin", async: false }] }));
    expect(routeTask(noAsync, "mplogin.async.x")).toMatchObject({ ok: false, hint: "publish it as mplogin.sync.x, or give mplogin an async queue" });
  });
});

describe("where the broker delivers (deliver)", () => {
  const x = (name: string, type = "topic", args: Record<string, string> = {}): Exchange => ({ kind: "exchange", name, type, durable: true, autoDelete: false, internal: false, arguments: args });
  const bq = (source: string, destination: string, routingKey: string): Binding => ({ kind: "binding", source, destination, destinationType: "queue", routingKey, arguments: {} });
  const bx = (source: string, destination: string, routingKey: string): Binding => ({ kind: "binding", source, destination, destinationType: "exchange", routingKey, arguments: {} });
  const pol = (name: string, pattern: string, priority: number, ae: string, applyTo: Policy["applyTo"] = "exchanges"): Policy => ({ kind: "policy", name, pattern, applyTo, priority, definition: { "alternate-exchange": ae } });
  const key = "mplogin.sync.register";

  it("follows exchange-to-exchange bindings by each exchange's type, each exchange once", () => {
    const rs: Resource[] = [x("mplogin"), x("fan", "fanout"), x("dir", "direct"), bq("mplogin", "mplogin.sync", "mplogin.sync.#"), bx("mplogin", "fan", "#"), bq("fan", "f", ""), bx("fan", "dir", ""), bq("dir", "d", key), bq("dir", "nod", "other"), bx("dir", "mplogin", key), bx("mplogin", "amq.fanout", "*.sync.*"), bq("amq.fanout", "a", "")];
    const d = deliver(rs, "mplogin", key);
    expect(d.queues).toEqual(["a", "d", "f", "mplogin.sync"]);
    expect(d.unknown).toEqual([]);
  });

  it("an exchange named as an object's member that does not exist routes nothing, as any missing one", () => {
    // The broker's own exchanges were looked up on a plain object: `constructor` was found there.
    // A binding from it, as a state read part-way may hold, was followed by a "type" that was a function.
    const rs: Resource[] = [x("mplogin"), bx("mplogin", "constructor", "#"), bq("constructor", "c", "#"), bx("mplogin", "toString", "#"), bq("toString", "t", "#")];
    expect(deliver(rs, "mplogin", key)).toMatchObject({ queues: [], unknown: [] });
  });

  it("passes a message no binding takes to the alternate exchange: the exchange's argument before any policy", () => {
    const base: Resource[] = [x("ae1", "fanout"), x("ae2", "fanout"), bq("ae1", "q1", ""), bq("ae2", "q2", "")];
    expect(deliver([...base, x("mplogin", "topic", { "alternate-exchange": "ae1" }), pol("p", "^mplogin$", 9, "ae2")], "mplogin", key)).toMatchObject({ queues: ["q1"], alternates: [{ from: "mplogin", to: "ae1", by: "its alternate-exchange argument" }] });
    expect(deliver([...base, x("mplogin"), pol("low", "^mp", 1, "ae1"), pol("high", "^mplogin$", 2, "ae2")], "mplogin", key)).toMatchObject({ queues: ["q2"], alternates: [{ by: "policy high" }] });
    // A policy for queues does not apply to exchanges; a message a binding takes never goes to the alternate.
    expect(deliver([...base, x("mplogin"), pol("p", "^mplogin$", 1, "ae1", "queues")], "mplogin", key).queues).toEqual([]);
    expect(deliver([...base, x("mplogin"), bq("mplogin", "m", "#"), pol("p", "^mplogin$", 1, "ae1")], "mplogin", key).queues).toEqual(["m"]);
    // Equal priorities: RabbitMQ does not say which applies.
    expect(deliver([...base, x("mplogin"), pol("a", "^mplogin$", 1, "ae1"), pol("b", "^mp", 1, "ae2")], "mplogin", key).unknown).toEqual([expect.stringMatching(/same priority/)]);
  });

  it("says what it cannot tell: an exchange that routes by headers", () => {
    const d = deliver([x("mplogin"), x("h", "headers"), bx("mplogin", "h", "#"), bq("h", "hq", ""), bq("mplogin", "m", "#")], "mplogin", key);
    expect(d.queues).toEqual(["m"]);
    expect(d.unknown).toEqual([expect.stringMatching(/exchange h \(type headers\)/)]);
  });
});

describe("bindings topo does not manage", () => {
  it("are the bindings from a service exchange of the cluster that topo does not own, named in one warning", () => {
    const d = desired().clusters.find((c) => c.target.name === "async")!;
    const b = (source: string, destination: string, routingKey: string, destinationType: Binding["destinationType"] = "queue"): Binding => ({ kind: "binding", source, destination, destinationType, routingKey, arguments: {} });
    const actual: ActualCluster = {
      vhostExists: true,
      version: "3.10.8",
      nodes: [],
      queueFacts: {},
      resources: [
        ...d.resources,
        b("mppayment", "audit", "*.async.charge"),
        b("mplogin", "archive", "#", "exchange"),
        b("billing", "mplogin.async", "x"), // into a service queue: bindingsInto, below
        b("mpgone", "audit", "#"), // a service exchange the file does not want here
        // An interrupted replace's holding queue carries the queue's routes: topo's own, and
        // deleting them by hand would drop every task published until the next apply.
        b("mplogin", "topo.hold.mplogin.async", "mplogin.async.#"),
      ],
    };
    const found = foreignBindings(d, actual, Ownership.of("mp", actual.resources));
    expect(found.map((x) => `${x.source}>${x.destination}`)).toEqual(["mplogin>archive", "mppayment>audit"]);
    expect(foreignBindingWarnings(found)).toEqual([
      "2 bindings from service exchanges that topo does not manage: mplogin -> exchange archive [#], mppayment -> audit [*.async.charge]; the broker routes the tasks they match there too, beside the file's queues; topo neither changes nor deletes them (delete them by hand if not wanted)",
    ]);
    expect(foreignBindingWarnings([])).toEqual([]);
    // Into the file's queues and service exchanges from exchanges topo does not manage: the
    // broker routes what is published there to the service's workers too. Not the default
    // exchange's (the broker's own), nor one into a queue or exchange the file does not want here.
    const into = bindingsInto(d, { ...actual, resources: [...actual.resources, b("amq.topic", "mppayment", "#", "exchange"), b("", "mplogin.async", "mplogin.async"), b("billing", "audit", "#")] }, Ownership.of("mp", actual.resources));
    expect(into.map((x) => `${x.source}>${x.destination}`)).toEqual(["amq.topic>mppayment", "billing>mplogin.async"]);
    expect(bindingsIntoWarnings(into)).toEqual([
      "2 bindings into the file's queues or service exchanges from exchanges topo does not manage: amq.topic -> exchange mppayment [#], billing -> mplogin.async [x]; the broker routes what is published there to the service's workers too; topo neither changes nor deletes them (delete them by hand if not wanted)",
    ]);
    expect(bindingsIntoWarnings([])).toEqual([]);
    // An exchange named like a service but not of the shape topo makes (a user's direct mpold) is
    // left alone with its bindings, so its route into a file's queue is named too; a topo-shaped
    // one that left the file is deleted with its bindings, and plan lists that instead.
    const ex = (name: string, type: string): Resource => ({ kind: "exchange", name, type, durable: true, autoDelete: false, internal: false, arguments: {} });
    const named = [ex("mpold", "direct"), b("mpold", "mplogin.async", "x"), ex("mpgone", "topic"), b("mpgone", "mplogin.async", "mpgone.async.#")];
    const withNamed = { ...actual, resources: [...actual.resources, ...named] };
    expect(bindingsInto(d, withNamed, Ownership.of("mp", withNamed.resources)).map((x) => `${x.source}>${x.destination}`)).toEqual(["billing>mplogin.async", "mpold>mplogin.async"]);
  });
});

describe("graph", () => {
  it("draws every cluster, exchange, queue and binding of the example in Mermaid", () => {
    const { desired: d } = loadConfig(join(ROOT, "topology.yaml"), {});
    const g = renderGraph(d, "mermaid");
    expect(g.startsWith("flowchart LR\n")).toBe(true);
    expect(g).toContain('subgraph c_sync["cluster sync (vhost sync)"]');
    expect(g).toContain('subgraph c_async["cluster async (vhost async)"]');
    expect(g).toContain('x_sync_mplogin -->|"mplogin.sync.#"| q_sync_mplogin_sync');
    expect(g).toContain('q_async_mppayment_async[("mppayment.async<br/>classic, durable, x-max-length=100000")]');
    expect(g).toContain('q_sync_mplogin_sync[("mplogin.sync<br/>classic, transient, mirrored")]');
    expect(g).not.toContain("mppayment.sync");
    // One subgraph per cluster, one edge per binding.
    expect(g.match(/subgraph /g)).toHaveLength(2);
    expect(g.match(/-->/g)).toHaveLength(5);
  });

  it("gives every cluster, exchange, queue and user an id of its own, even when their names differ only in characters an id cannot hold", () => {
    const d = desired(
      raw({
        clusters: { "a-b": { url: "amqp://u:p@h:5672/s" }, a_b: { url: "amqp://u:p@h:5672/a" } },
        defaults: { sync: { cluster: "a-b" }, async: { cluster: "a_b" } },
        services: ["mplogin"],
        users: { "w.x": { password: "p1", consumes: ["mplogin"] }, w_x: { password: "p2", consumes: ["mplogin"] } },
      } as Partial<RawConfig>),
    );
    const dot = renderGraph(d, "dot");
    const boxes = [...dot.matchAll(/^ {2}subgraph (\S+) \{$/gm)].map((m) => m[1]);
    const nodes = [...dot.matchAll(/^ {4}(\S+) \[label=/gm)].map((m) => m[1]);
    // 2 clusters, each with its exchange, its queue and both users.
    expect(boxes.length).toBe(2);
    expect(new Set(boxes).size).toBe(2);
    expect(nodes.length).toBe(8);
    expect(new Set(nodes).size).toBe(8);
    const mermaid = renderGraph(d, "mermaid");
    const mBoxes = [...mermaid.matchAll(/^ {2}subgraph (\S+)\[/gm)].map((m) => m[1]);
    const mNodes = [...mermaid.matchAll(/^ {4}([A-Za-z0-9_]+)(?:\{\{|\[\(|\(\[)/gm)].map((m) => m[1]);
    expect(new Set(mBoxes).size).toBe(2);
    expect(mNodes.length).toBe(8);
    expect(new Set(mNodes).size).toBe(8);
    // Each edge joins nodes of its own box.
    for (const box of dot.split(/^ {2}subgraph /m).slice(1)) {
      const own = new Set([...box.matchAll(/^ {4}(\S+) \[label=/gm)].map((m) => m[1]));
      for (const e of box.matchAll(/^ {4}(\S+) -> (\S+) /gm)) expect([own.has(e[1]), own.has(e[2])]).toEqual([true, true]);
    }
  });

  it("writes names and values into Mermaid's HTML labels as they are, never as markup or entities", () => {
    const d = desired(
      raw({
        clusters: { sync: { url: "amqp://u:p@h:5672/%3Cb%3Ex%3C%2Fb%3E" }, async: { url: "amqp://u:p@h:5672/a%26lt%3B" } },
        services: [{ name: "mplogin", async: { arguments: { "x-dead-letter-exchange": "#quot;<i>&amp;" } } }],
      }),
    );
    const mermaid = renderGraph(d, "mermaid");
    // What Mermaid draws: its entity codes (#name; and #123;) become HTML entities, then HTML is rendered.
    const html = (label: string) => label.replace(/#(\w+);/g, "&$1;");
    const text = (h: string) =>
      h.replace(/<br\/>/g, "\n").replace(/&(#?\w+);/g, (_, e: string) => ({ quot: '"', lt: "<", gt: ">", amp: "&" })[e] ?? String.fromCharCode(Number(e.replace("#", ""))));
    const labels = [...mermaid.matchAll(/\["([^"]*)"\]|\(\["([^"]*)"\]\)|\{\{"([^"]*)"\}\}|\[\("([^"]*)"\)\]/g)].map((m) => html(m[1] ?? m[2] ?? m[3] ?? m[4] ?? ""));
    for (const l of labels) expect(l.replace(/<br\/>/g, "")).not.toMatch(/[<>]/);
    const shown = labels.map(text);
    expect(shown).toContain("cluster sync (vhost <b>x</b>)");
    expect(shown).toContain("cluster async (vhost a&lt;)");
    expect(shown).toContain('mplogin.async\nclassic, durable, x-dead-letter-exchange="#quot;<i>&amp;"');
  });

  it("draws the same in Graphviz DOT, with a box per cluster", () => {
    const g = renderGraph(desired(), "dot");
    expect(g).toMatch(/^digraph topo \{/);
    expect(g).toContain("subgraph cluster_c_sync {");
    expect(g).toContain('x_async_mppayment -> q_async_mppayment_async [label="mppayment.async.#"];');
    expect(g).toContain('q_async_mppayment_async [label="mppayment.async\\nquorum, durable, x-delivery-limit=5", shape=cylinder];');
    expect(g.trim().endsWith("}")).toBe(true);
  });
});

describe("definitions export", () => {
  it("holds exactly the desired objects of one cluster, in RabbitMQ's format, with no password", () => {
    const d = desired();
    const async = definitionsOf(d.clusters.find((c) => c.target.name === "async")!, d.prefix);
    expect(async.vhosts).toEqual([{ name: "a" }]);
    expect(async.exchanges).toEqual([
      { name: "mplogin", vhost: "a", type: "topic", durable: true, auto_delete: false, internal: false, arguments: {} },
      { name: "mppayment", vhost: "a", type: "topic", durable: true, auto_delete: false, internal: false, arguments: {} },
      // The prefix's apply mark, as an apply leaves it: a shorter prefix's file leaves these services alone.
      { name: "topo.mp.generation", vhost: "a", type: "fanout", durable: true, auto_delete: false, internal: true, arguments: { "x-topo-generation": "definitions" } },
    ]);
    expect(async.queues).toEqual([
      { name: "mplogin.async", vhost: "a", durable: true, auto_delete: false, arguments: {} },
      // Non-classic types carry x-queue-type, exactly as topo (and a kombu worker) declares them.
      { name: "mppayment.async", vhost: "a", durable: true, auto_delete: false, arguments: { "x-delivery-limit": 5, "x-queue-type": "quorum" } },
    ]);
    expect(async.bindings).toContainEqual({ source: "mppayment", vhost: "a", destination: "mppayment.async", destination_type: "queue", routing_key: "mppayment.async.#", arguments: {} });
    expect(async.policies).toEqual([]);
    const sync = definitionsOf(d.clusters.find((c) => c.target.name === "sync")!);
    expect(sync.policies).toEqual([
      { vhost: "s", name: "topo.mp.mirror.sync", pattern: "^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$", "apply-to": "queues", definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, priority: 0 },
    ]);
    expect(JSON.stringify([sync, async])).not.toContain("secretpw");
  });

  it("says that RabbitMQ 4 refuses the mirror policy, and only where the definitions carry one", () => {
    const d = desired();
    const [w, ...more] = definitionsWarnings(d.clusters.find((c) => c.target.name === "sync")!);
    expect(more).toEqual([]);
    expect(w).toContain("topo.mp.mirror.sync (ha-mode: all) for 1 mirrored classic queue (mplogin.sync)");
    expect(w).toContain("RabbitMQ 4 has no classic queue mirroring, and an import there fails part-way");
    expect(w).toContain("type: quorum");
    expect(definitionsWarnings(d.clusters.find((c) => c.target.name === "async")!)).toEqual([]);
    // The migrated file: quorum sync queues, no mirror policy, nothing to say.
    const q = desired(raw({ defaults: { sync: { type: "quorum" } } }));
    expect(definitionsWarnings(q.clusters.find((c) => c.target.name === "sync")!)).toEqual([]);
  });

  // Measured on 3.10.8: a user with the management tag, and another topology's, imported from
  // these definitions with tags topo.mp and the new password; their old passwords no longer logged
  // in. Plan refuses both (user_conflict); the export, which reads no broker, said nothing.
  it("says that RabbitMQ's import takes over a user of the same name, whoever made it, where the definitions carry users", () => {
    const d = desired(raw({ defaults: { sync: { type: "quorum" } }, users: { edge: { password: "p1-x", publishes: "all" }, mplogin: { password: "p2-x", consumes: ["mplogin"] } } } as Partial<RawConfig>));
    for (const name of ["sync", "async"]) {
      const ws = definitionsWarnings(d.clusters.find((c) => c.target.name === name)!);
      expect(ws, name).toEqual([expect.stringMatching(/^the definitions carry 2 users \(edge, mplogin\): RabbitMQ's import replaces a user of the same name that exists, whoever made it, with this password and topo's tags, where topo apply refuses .* \(user_conflict\); .*run topo plan against the broker you import into first/)]);
    }
  });
});

describe("output", () => {
  it("colours only a terminal, and never with NO_COLOR or --no-color", () => {
    const tty = { isTTY: true };
    expect(paintFor(tty, true, {})("create", "x")).toBe("\x1b[32mx\x1b[0m");
    expect(paintFor({ isTTY: false }, true, {})("create", "x")).toBe("x");
    expect(paintFor({}, true, {})("create", "x")).toBe("x");
    expect(paintFor(tty, true, { NO_COLOR: "1" })("create", "x")).toBe("x");
    // The spec: an empty NO_COLOR does not count.
    expect(paintFor(tty, true, { NO_COLOR: "" })("create", "x")).toBe("\x1b[32mx\x1b[0m");
    expect(paintFor(tty, false, {})("create", "x")).toBe("x");
  });

  it("colours each plan line by what it does", () => {
    const text = renderText(
      {
        clusters: [
          {
            cluster: "sync",
            endpoint: "amqp://u:***@h/s",
            vhost: "s",
            warnings: ["w"],
            degraded: [],
            actions: [{ op: "create", key: "exchange|mpa", after: { kind: "exchange", name: "mpa", type: "topic", durable: true, autoDelete: false, internal: false, arguments: {} } }],
          },
        ],
      },
      ansi,
    );
    expect(text).toContain("\x1b[32m  + create exchange mpa (topic, durable)\x1b[0m");
    expect(text).toContain("\x1b[33m  ! warning: w\x1b[0m");
    expect(text).toContain("\x1b[1mPlan: 1 to create, 0 to update, 0 to replace, 0 to delete.\x1b[0m");
  });

  it("reports a large apply in a log at each quarter, and a small one not at all", () => {
    const lines: string[] = [];
    const p = new Progress((s) => lines.push(s), false);
    for (let i = 1; i <= 50; i++) p.update("small", i, 50);
    for (let i = 1; i <= 400; i++) p.update("big", i, 400);
    expect(lines).toEqual(["cluster big: 100 of 400 changes made (25%)\n", "cluster big: 200 of 400 changes made (50%)\n", "cluster big: 300 of 400 changes made (75%)\n"]);
  });

  it("says every 30 s that a cluster is still waiting while it makes no change, in a log and on a terminal, and stops once it is done", () => {
    for (const tty of [false, true]) {
      let now = 0;
      const written: string[] = [];
      const p = new Progress((s) => written.push(s), tty, () => now);
      const said = () => written.filter((w) => w.includes("still waiting"));
      p.update("sync", 1, 6001); // the start: one change made by an earlier step
      p.update("async", 0, 10);
      now = 29_999;
      p.tick();
      expect(said()).toEqual([]);
      now = 30_000;
      p.tick();
      expect(said()).toEqual([
        "cluster sync: 1 of 6001 changes made, none in the last 30 s; still waiting for the broker\n",
        "cluster async: 0 of 10 changes made, none in the last 30 s; still waiting for the broker\n",
      ]);
      // A change made starts the quiet anew; the same count again does not.
      now = 40_000;
      p.update("async", 1, 10);
      p.update("sync", 1, 6001);
      now = 55_000;
      p.tick();
      expect(said()).toHaveLength(2);
      now = 60_000;
      p.tick();
      expect(said().at(-1)).toBe("cluster sync: 1 of 6001 changes made, none in the last 60 s; still waiting for the broker\n");
      now = 70_000;
      p.tick();
      expect(said().at(-1)).toBe("cluster async: 1 of 10 changes made, none in the last 30 s; still waiting for the broker\n");
      p.update("async", 10, 10);
      p.end();
      now = 200_000;
      p.tick();
      expect(said()).toHaveLength(4);
    }
  });

  it("says what a long step is doing while it makes headway (a replace moving messages), not that it waits for the broker", () => {
    // Measured: a replace of a queue of 100,000 messages took 130 s, and its log said four times
    // "0 of 1 changes made, none in the last 124 s; still waiting for the broker" while it moved them.
    let now = 0;
    const written: string[] = [];
    const p = new Progress((s) => written.push(s), false, () => now);
    p.update("async", 0, 1);
    now = 20_000;
    p.busy("async", "moving the messages of queue mplogin.async to topo.hold.mplogin.async: 51200 moved");
    now = 30_000;
    p.tick();
    expect(written).toEqual(["cluster async: 0 of 1 changes made; moving the messages of queue mplogin.async to topo.hold.mplogin.async: 51200 moved\n"]);
    // A move that stopped making headway is a wait again, counted from the last change.
    now = 60_000;
    p.tick();
    expect(written.at(-1)).toBe("cluster async: 0 of 1 changes made, none in the last 60 s; still waiting for the broker\n");
    // A change made forgets the step; a cluster not under way is not said busy.
    p.busy("async", "moving the messages of queue mplogin.async back from topo.hold.mplogin.async: 256 moved");
    p.update("async", 1, 2);
    p.busy("sync", "moving");
    now = 90_000;
    p.tick();
    expect(written.at(-1)).toBe("cluster async: 1 of 2 changes made, none in the last 30 s; still waiting for the broker\n");
    expect(written.join("")).not.toContain("cluster sync");
  });

  it("never says that a cluster whose apply is over still waits, while another goes on", () => {
    // Measured: cluster sync failed at 9 s (its vhost deleted), and while cluster async moved a
    // queue's messages for 160 s more its log said four times "cluster sync: 0 of 1 changes made,
    // none in the last 124 s; still waiting for the broker".
    for (const tty of [false, true]) {
      let now = 0;
      const written: string[] = [];
      const p = new Progress((s) => written.push(s), tty, () => now);
      p.update("sync", 0, 1);
      p.update("async", 0, 1);
      now = 9_000;
      p.ended("sync");
      p.ended("sync");
      for (now = 30_000; now <= 160_000; now += 5_000) p.tick();
      expect(written.join("")).not.toContain("cluster sync");
      expect(written.join("")).toContain("cluster async: 0 of 1 changes made, none in the last 30 s; still waiting for the broker\n");
      if (tty) expect(written.join("")).not.toMatch(/\bsync 0\/1/);
    }
  });

  it("on a terminal, draws one counter line after a moment, clears it for log lines and at the end", () => {
    let now = 0;
    const written: string[] = [];
    const p = new Progress((s) => written.push(s), true, () => now);
    p.update("async", 1, 10);
    expect(written).toEqual([]); // not within the first moment
    now = 400;
    p.update("async", 2, 10);
    p.update("sync", 1, 5);
    expect(written).toEqual(["\r\x1b[Kapplying: async 2/10"]);
    now = 600;
    p.update("sync", 2, 5);
    expect(written.at(-1)).toBe("\r\x1b[Kapplying: async 2/10, sync 2/5");
    p.log("cluster sync: something to say");
    expect(written.slice(-3)).toEqual(["\r\x1b[K", "cluster sync: something to say\n", "\r\x1b[Kapplying: async 2/10, sync 2/5"]);
    p.end();
    expect(written.at(-1)).toBe("\r\x1b[K");
  });
});
