// Saved plans and their markdown, on plain objects: no broker, no files.

import { describe, expect, it } from "vitest";
import type { Action, ClusterPlan, Plan, Policy, Resource } from "../../src/model.js";
import { keyOf } from "../../src/core/keys.js";
import { compareToSaved, desiredText, outsideSaved, outsideView, parseSavedPlan, planOf, savedPlan, SavedPlanFormatError, stateChanges, stateOf, stateText, type SavedPlan, type SavedState } from "../../src/plan/saved.js";
import { renderMarkdown } from "../../src/plan/markdown.js";
import type { RawConfig, RawService } from "../../src/config/normalize.js";
import { actual, binding, desiredOf, exchange, queue, raw, service } from "../helpers/builders.js";

const cluster = (actions: Action[], name = "async", o: Partial<ClusterPlan> = {}): ClusterPlan => ({
  cluster: name,
  endpoint: `amqp://topo-ci:***@rabbit:5672/${name}`,
  vhost: name,
  version: "3.10.8",
  actions,
  degraded: [],
  warnings: [],
  ...o,
});
const create = (name: string): Action => ({ op: "create", key: `queue|${name}`, after: queue({ name }) });
const del = (name: string, messages?: number): Action => ({ op: "delete", key: `queue|${name}`, before: queue({ name }), messages });
const replace: Action = {
  op: "replace",
  key: "queue|mppayment.async",
  before: queue({ name: "mppayment.async" }),
  after: queue({ name: "mppayment.async", arguments: { "x-max-length": 10 } }),
  because: ["arguments.x-max-length: (none) -> 10"],
  rebind: [binding({ source: "mppayment", destination: "mppayment.async" })],
  messages: 3,
  risks: [{ rule: "x-max-length", reason: "x-max-length 10 is below the 30 messages it holds", advice: "raise it" }],
};

const state = (resources: Resource[], o: Partial<SavedState> = {}): SavedState => ({ vhostExists: true, resources, operatorPolicies: [], ...o });
/** What async held when the plan was made: the queue the plan replaces, its service exchange and binding. */
const asyncSeen: Resource[] = [{ kind: "vhost", name: "async" }, exchange({ name: "mppayment" }), replace.op === "replace" ? replace.before : queue({ name: "x" }), binding({ source: "mppayment", destination: "mppayment.async" })];
const meta = { topoVersion: "0.1.0", file: "topology.yaml", fileDigest: "sha256:f", prefix: "mp", states: { async: state(asyncSeen), sync: state([]) }, desiredDigests: { async: "sha256:da", sync: "sha256:ds" }, createdAt: "2026-01-01T00:00:00.000Z" };
const plan: Plan = { clusters: [cluster([create("mpnew.async"), replace], "async"), cluster([], "sync")] };
const saved = (): SavedPlan => parseSavedPlan(JSON.stringify(savedPlan(plan, meta)));
const fresh = (p: ClusterPlan, st: SavedState = meta.states[p.cluster as "async"] ?? state([])) => ({ plan: p, state: st });
const cap: Policy = { kind: "policy", name: "cap", pattern: "^mp", applyTo: "queues", priority: 9, definition: { "max-length": 1 } };

describe("savedPlan / parseSavedPlan", () => {
  it("round-trips through JSON to the same plan", () => {
    const s = saved();
    expect(s).toMatchObject({ format: "topo-saved-plan", formatVersion: 4, topoVersion: "0.1.0", file: "topology.yaml", fileDigest: "sha256:f", prefix: "mp" });
    expect(s.clusters.map((c) => [c.cluster, c.state])).toEqual([["async", meta.states.async], ["sync", meta.states.sync]]);
    expect(planOf(s)).toEqual(JSON.parse(JSON.stringify(plan)));
  });

  it("keeps the clusters --cluster left out, for topo show to say so as plan did", () => {
    const partial = parseSavedPlan(JSON.stringify(savedPlan({ ...plan, unread: ["other"] }, meta)));
    expect(planOf(partial).unread).toEqual(["other"]);
    expect(() => parseSavedPlan(JSON.stringify({ ...savedPlan(plan, meta), unread: "other" }))).toThrow(/unread is not a list of cluster names/);
  });

  it("refuses text that is not a saved plan, or is damaged, or of another format version, saying which", () => {
    const why = (text: string) => {
      try {
        parseSavedPlan(text);
      } catch (e) {
        expect(e).toBeInstanceOf(SavedPlanFormatError);
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(why("{not json")).toMatch(/not JSON/);
    // A file given by mistake (a password file, a .env) is never quoted, not even its start.
    for (const text of ["MyVerySecretPassword\n", '{"format": "topo-saved-plan", "x": S3cretValue}', "S3cretValue"]) {
      expect(why(text)).toMatch(/not JSON/);
      expect(why(text)).not.toMatch(/S3cr|MyVery|My|S3/);
    }
    expect(why(JSON.stringify({ clusters: [] }))).toMatch(/not a plan saved by topo plan -o/);
    const good = savedPlan(plan, meta);
    // Cut short (an artifact's upload that did not finish), anywhere: said so, and nothing quoted.
    const whole = JSON.stringify(good, null, 2);
    for (const at of [1, 100, whole.indexOf('"sha256:f"') + 4, whole.length - 2]) {
      expect(why(whole.slice(0, at)), `cut at ${at}`).toBe("it ends before its JSON does: the file was cut short (a copy or an upload of it that did not finish?)");
    }
    expect(why(JSON.stringify({ ...good, formatVersion: 5, topoVersion: "9.0.0" }))).toMatch(/format 5, and this topo reads format 4 \(it was made by topo 9\.0\.0\)/);
    // Edited: never "format 4, and this topo reads format 4", nor "format undefined".
    expect(why(JSON.stringify({ ...good, formatVersion: "4" }))).toBe(`its formatVersion is "4", not a number: the file was edited (topo plan -o writes "formatVersion": 4)`);
    expect(why(JSON.stringify({ ...good, formatVersion: undefined }))).toBe(`its formatVersion is missing: the file was edited (topo plan -o writes "formatVersion": 4)`);
    for (const empty of ["", "  \n"]) expect(why(empty)).toBe("it is empty (a saved plan is the JSON file topo plan -o writes)");
    const broken = JSON.parse(JSON.stringify(good));
    broken.clusters[0].actions[0] = { op: "explode", key: "x" };
    delete broken.clusters[1].desiredDigest;
    expect(why(JSON.stringify(broken))).toMatch(/damaged: clusters\[0\]\.actions\[0\] is not an action; clusters\[1\]\.desiredDigest is not a string/);
    // The state apply compares the broker with: every object whole.
    const noState = JSON.parse(JSON.stringify(good));
    noState.clusters[0].state.resources[2].arguments = "x";
    noState.clusters[1].state = { vhostExists: true };
    expect(why(JSON.stringify(noState))).toMatch(/damaged: clusters\[0\]\.state\.resources\[2\]\.arguments is not an object; clusters\[1\]\.state is not a state \(vhostExists, resources, operatorPolicies\)/);
  });

  it("reads a plan an editor saved with a byte-order mark or CRLF line ends, which is still the same JSON", () => {
    const text = JSON.stringify(savedPlan(plan, meta), null, 2);
    for (const edited of [`\uFEFF${text}`, text.replace(/\n/g, "\r\n"), `\uFEFF${text.replace(/\n/g, "\r\n")}\r\n`]) {
      expect(parseSavedPlan(edited)).toEqual(parseSavedPlan(text));
    }
  });

  // What show prints must be what apply does: apply compares a saved plan with a fresh one by
  // cluster and by key, so a repeated cluster or action, or a resource apply would not read as
  // show prints it, would let show print more than apply carries out.
  it("refuses a plan edited by hand that repeats a cluster or an action, or whose resources are not whole", () => {
    const why = (edit: (j: any) => void) => {
      const j = JSON.parse(JSON.stringify(savedPlan(plan, meta)));
      edit(j);
      try {
        parseSavedPlan(JSON.stringify(j));
      } catch (e) {
        expect(e).toBeInstanceOf(SavedPlanFormatError);
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(why((j) => j.clusters.push(j.clusters[0]))).toMatch(/damaged: clusters\[2\] repeats cluster async/);
    expect(why((j) => (j.file = ""))).toMatch(/damaged: file names no file/);
    // A name that would set the terminal's title and write a line of its own is refused, and quoted, not printed.
    const forged = why((j) => (j.file = "x\u001b]0;pwned\u0007\n  hint: all good"));
    expect(forged).toMatch(/damaged: file is "x.*", which holds control characters/);
    expect(forged).not.toMatch(/[\u0000-\u001f]/);
    const key = why((j) => (j.clusters[0].actions[0].after.name = "mpx\u001b[31mRED\n  - delete queue all"));
    expect(key).toMatch(/damaged: clusters\[0\]\.actions\[0\]\.key is queue\|mpnew\.async, and its queue is "queue\|mpx/);
    expect(key).not.toMatch(/[\u0000-\u001f]/);
    expect(why((j) => j.clusters[0].actions.push(j.clusters[0].actions[0]))).toMatch(/damaged: clusters\[0\]\.actions\[2\] repeats create queue mpnew\.async/);
    expect(why((j) => (j.clusters[0].actions[0].key = "queue|mpother.async"))).toMatch(/damaged: clusters\[0\]\.actions\[0\]\.key is queue\|mpother\.async, and its queue is queue\|mpnew\.async/);
    expect(why((j) => delete j.clusters[0].actions[0].after.arguments)).toMatch(/damaged: clusters\[0\]\.actions\[0\]\.after\.arguments is not an object/);
    expect(why((j) => (j.clusters[0].actions[0].after = { kind: "queue" }))).toMatch(/clusters\[0\]\.actions\[0\]\.after\.name is not a string/);
    // What plan could not compare is printed on its last line: only a list of strings.
    expect(why((j) => (j.clusters[0].notCompared = [{ toString: null }]))).toMatch(/damaged: clusters\[0\]\.notCompared is not a list of strings/);
    expect(why((j) => (j.clusters[0].actions[0].after.kind = "widget"))).toMatch(/clusters\[0\]\.actions\[0\]\.after is not a resource/);
    expect(why((j) => (j.clusters[0].actions[1].rebind = [{ kind: "binding", source: "mppayment" }]))).toMatch(/clusters\[0\]\.actions\[1\]\.rebind\[0\]\.destination is not a string/);
    expect(why((j) => (j.clusters[0].actions[1].after.name = "mpother.async"))).toMatch(/clusters\[0\]\.actions\[1\]\.before is queue\|mppayment\.async, and its after is queue\|mpother\.async|key is queue\|mppayment\.async, and its queue is queue\|mpother\.async/);
  });
});

describe("compareToSaved", () => {
  // A saved plan of a large topology applied after another apply made it all: every action is no
  // longer needed, one line each, and pushed into the list by spreading, 200,000 of them overflowed
  // the call stack.
  it("lists 200,000 actions no longer needed, without overflowing the stack", () => {
    const big: Plan = { clusters: [cluster(Array.from({ length: 200_000 }, (_, i) => create(`mp${i}.async`)), "async"), cluster([], "sync")] };
    const made = parseSavedPlan(JSON.stringify(savedPlan(big, meta)));
    const lines = compareToSaved(made, [fresh(cluster([], "async"))]);
    expect(lines.filter((l) => l.startsWith("cluster async: no longer needed: create queue mp"))).toHaveLength(200_000);
  });

  it("finds nothing when the fresh plans are the saved ones, whatever the message counts and the user", () => {
    const counted = { ...replace, messages: 7, risks: [] } as Action;
    const asAdmin = (p: ClusterPlan) => ({ ...p, endpoint: p.endpoint.replace("topo-ci", "admin") });
    expect(compareToSaved(saved(), [fresh(asAdmin(cluster([create("mpnew.async"), counted], "async"))), fresh(asAdmin(cluster([], "sync")))])).toEqual([]);
  });

  it("names actions added, removed and different, and a changed broker state, per cluster", () => {
    const different = { ...replace, after: queue({ name: "mppayment.async", arguments: { "x-max-length": 20 } }), because: ["arguments.x-max-length: (none) -> 20"] } as Action;
    const changes = compareToSaved(saved(), [fresh(cluster([different, del("mpold.async")], "async"), state([...asyncSeen, queue({ name: "mpnew.async" }), queue({ name: "mpold.async" })])), fresh(cluster([], "sync"))]);
    expect(changes).toEqual([
      "cluster async: the broker's objects changed since the plan was made (2 objects):\n    queue mpnew.async: created since the plan\n    queue mpold.async: created since the plan",
      "cluster async: no longer needed: create queue mpnew.async",
      'cluster async: now replace queue mppayment.async, the plan says replace queue mppayment.async (its details differ: after.arguments.x-max-length: 10 -> 20; because: ["arguments.x-max-length: (none) -> 10"] -> ["arguments.x-max-length: (none) -> 20"])',
      "cluster async: not in the plan: delete queue mpold.async",
    ]);
  });

  it("says what an update not in the plan changes: a password changed on the broker by hand shows as the word password", () => {
    const user: Resource = { kind: "user", name: "mplogin", tags: ["topo.mp"] };
    const rotate: Action = { op: "update", key: "user|mplogin", before: user, after: user, changed: ["password"] };
    const retag: Action = { op: "update", key: "policy|cap", before: cap, after: { ...cap, definition: { "max-length": 2 } }, changed: ["definition.max-length: 1 -> 2"] };
    expect(compareToSaved(saved(), [fresh(cluster([create("mpnew.async"), replace, rotate, retag], "async"))])).toEqual([
      // No object the state holds changed: the cause is one it does not hold (rv2: a plan saved by
      // another build was said to be stale as if the broker had changed).
      "cluster async: the broker's objects are as the plan saw them; the plan differs by what it does not hold (a user's password, another prefix's apply mark, a user's rights on other vhosts) or by topo itself (a plan saved by another build of topo 0.1.0)",
      "cluster async: not in the plan: update user mplogin (password)",
      "cluster async: not in the plan: update policy cap (definition.max-length: 1 -> 2)",
    ]);
  });

  it("names each warning, degraded and not-compared line the reviewer did not see, but not a count that changed by itself", () => {
    const held = (n: number) => `left alone: 1 service of prefix "mpx" (mpxlogin; its queue holds ${n} messages); topo changes only prefix "mp"'s objects and never these`;
    const claimed = `this plan deletes service mpxlogin (its exchange or queues), named inside prefix "mpx" too, which another topology uses on this vhost (its apply mark, lock or policy is here): if that file lists it, it is that file's; check before applying with --allow-destructive, or choose prefixes that do not start with each other`;
    const made = savedPlan({ clusters: [cluster([create("mpnew.async"), replace], "async", { warnings: [held(3), "gone since"], degraded: ["queue mp1.async is down"] }), cluster([], "sync")] }, meta);
    const s = parseSavedPlan(JSON.stringify(made));
    const now = (o: Partial<ClusterPlan>) => compareToSaved(s, [fresh(cluster([create("mpnew.async"), replace], "async", { degraded: ["queue mp1.async is down"], ...o }))]);
    // The same warnings, with another message count (and one gone since): the plan holds.
    expect(now({ warnings: [held(4000)] })).toEqual([]);
    expect(now({ warnings: [held(3), claimed], degraded: ["queue mp1.async is down", "queue mp2.async is down"], notCompared: ["users and permissions"] })).toEqual([
      `cluster async: a warning the plan did not show: ${claimed}`,
      "cluster async: degraded, which the plan did not show: queue mp2.async is down",
      "cluster async: not compared, which the plan compared: users and permissions",
    ]);
  });

  it("notices an endpoint that points elsewhere, and a cluster the plan does not hold", () => {
    const moved = cluster([], "sync", { endpoint: "amqp://topo-ci:***@other:5672/sync" });
    expect(compareToSaved(saved(), [fresh(moved), fresh(cluster([], "extra"))])).toEqual([
      "cluster sync: its endpoint is now amqp://other:5672/sync, the plan was made for amqp://rabbit:5672/sync",
      "cluster extra: not in the saved plan",
    ]);
  });

  it("notices a vhost other than the plan's, which topo show prints as the plan's", () => {
    const edited = parseSavedPlan(JSON.stringify(saved()).replace('"vhost":"sync"', '"vhost":"other"'));
    expect(JSON.stringify(edited)).toContain('"vhost":"other"');
    expect(compareToSaved(edited, [fresh(cluster([], "sync"))])).toEqual(['cluster sync: its vhost is now "sync", the plan says "other"']);
  });
});

describe("stateText", () => {
  const desired = desiredOf(raw({ services: [{ name: "mplogin", sync: false }] }), "async");
  const base = [{ kind: "vhost", name: "a" } as const, ...service("mplogin", "async")];

  it("ignores message counts and objects outside topo's view (a worker's reply queue, the apply lock)", () => {
    const before = stateText(stateOf(desired, actual(base, { queueFacts: { "mplogin.async": { messages: 1 } } }), "mp"));
    const after = stateText(
      stateOf(
        desired,
        actual([...base, queue({ name: "celery@host.reply", exclusive: true }), queue({ name: "topo.mp.lock" }), exchange({ name: "celery.pidbox", type: "fanout" })], {
          queueFacts: { "mplogin.async": { messages: 99, consumers: 3 } },
        }),
        "mp",
      ),
    );
    expect(after).toBe(before);
  });

  it("changes with a queue in the namespace, a binding on a service's exchange, a policy, or the vhost", () => {
    const before = stateText(stateOf(desired, actual(base), "mp"));
    expect(stateText(stateOf(desired, actual([...base, queue({ name: "mpnew.async" })]), "mp"))).not.toBe(before);
    expect(stateText(stateOf(desired, actual([...base, binding({ source: "mplogin", destination: "audit", routingKey: "#" })]), "mp"))).not.toBe(before);
    expect(stateText(stateOf(desired, actual([...base, { kind: "policy", name: "limits", pattern: ".*", applyTo: "queues", priority: 5, definition: { "max-length": 5 } }]), "mp"))).not.toBe(before);
    expect(stateText(stateOf(desired, actual(base, { vhostExists: false }), "mp"))).not.toBe(before);
  });

  it("changes with an operator policy: it limits the file's queues as a user's policy does, and what a replace may lose with them", () => {
    const cap = { kind: "policy", name: "cap", pattern: ".*", applyTo: "queues", priority: 0, definition: { "max-length": 2 } } as const;
    const before = stateText(stateOf(desired, actual(base, { operatorPolicies: [] }), "mp"));
    expect(stateText(stateOf(desired, actual(base, { operatorPolicies: [cap] }), "mp"))).not.toBe(before);
    expect(stateText(stateOf(desired, actual(base, { operatorPolicies: [{ ...cap, definition: { "max-length": 3 } }] }), "mp"))).not.toBe(
      stateText(stateOf(desired, actual(base, { operatorPolicies: [cap] }), "mp")),
    );
  });
});

describe("stateChanges", () => {
  const seen = state(asyncSeen);

  it("says what changed in each object: created, deleted, or which fields, with a policy's pattern and definition", () => {
    const lowered = { ...cap, definition: { "max-length": 5, "overflow": "reject-publish" } };
    expect(stateChanges(state([...asyncSeen, cap]), state([...asyncSeen.slice(0, 2), asyncSeen[3] as Resource, lowered]))).toEqual([
      'policy cap: changed since the plan: definition.max-length: 1 -> 5, definition.overflow: (none) -> "reject-publish"',
      "queue mppayment.async: deleted since the plan",
    ]);
    expect(stateChanges(seen, state(asyncSeen, { operatorPolicies: [cap] }))).toEqual(['operator policy cap: created since the plan (pattern ^mp, apply-to queues, priority 9, definition {"max-length":1})']);
    expect(stateChanges(state([]), state([], { vhostExists: false }))).toEqual(["the vhost: deleted since the plan"]);
  });

  it("says of an object still there but now another prefix's that it is left alone, not deleted", () => {
    const mine = [exchange({ name: "mpxfoo" }), queue({ name: "mpxfoo.async" }), binding({ source: "mpxfoo", destination: "mpxfoo.async" })];
    // A file of prefix mpx applied since: its apply mark makes mpxfoo its own, out of mp's view.
    const mark = exchange({ name: "topo.mpx.generation" });
    const now = actual([...asyncSeen, ...mine, mark]);
    const desired = desiredOf(raw({ services: ["mppayment"] }), "async");
    const [was, fresh] = [stateOf(desired, actual([...asyncSeen, ...mine]), "mp"), stateOf(desired, now, "mp")];
    expect(was.resources).toContainEqual(mine[1]);
    expect(fresh.resources).not.toContainEqual(mine[1]);
    expect(stateChanges(was, fresh, undefined, outsideView(now, "mp"))).toEqual([
      `binding mpxfoo -> mpxfoo.async [mpxfoo.async.#]: still there, but prefix "mpx"'s since the plan (another topology's apply mark, lock or policy is on the vhost now), so topo leaves it alone`,
      `exchange mpxfoo: still there, but prefix "mpx"'s since the plan (another topology's apply mark, lock or policy is on the vhost now), so topo leaves it alone`,
      `queue mpxfoo.async: still there, but prefix "mpx"'s since the plan (another topology's apply mark, lock or policy is on the vhost now), so topo leaves it alone`,
    ]);
  });

  it("lets a vhost apply made be there, with every right granted on it, and nothing else", () => {
    const before = state([], { vhostExists: false });
    const vhost: Action = { op: "create", key: "vhost|async", after: { kind: "vhost", name: "async" } };
    const granted = [{ kind: "permission", user: "topo-ci", configure: ".*", write: ".*", read: ".*" } as const];
    const made = { made: [vhost], granted: ["topo-ci"] };
    expect(stateChanges(before, state([vhost.after, ...granted]), made)).toEqual([]);
    expect(stateChanges(before, state([vhost.after, cap]), made)).toEqual(['policy cap: created since the plan (pattern ^mp, apply-to queues, priority 9, definition {"max-length":1})']);
    expect(stateChanges(before, state([vhost.after, { ...granted[0], read: "^x$" }]), made)).toEqual(["permission of topo-ci: created since the plan (configure .*, write .*, read ^x$)"]);
    // Without apply having made it, the vhost is new to the plan.
    expect(stateChanges(before, state([vhost.after]))).toEqual(["vhost async: created since the plan"]);
  });
});

describe("desiredText", () => {
  it("is the same for the same file and values, and differs when a ${VAR} gives a queue another argument or a service another name", () => {
    const of = (services: RawService[]) => desiredText(desiredOf(raw({ services }), "async"));
    const base = of([{ name: "mplogin", async: { arguments: { "x-max-length": 100 } } }]);
    expect(of([{ name: "mplogin", async: { arguments: { "x-max-length": 100 } } }])).toBe(base);
    expect(of([{ name: "mplogin", async: { arguments: { "x-max-length": 200 } } }])).not.toBe(base);
    expect(of([{ name: "mpwallet", async: { arguments: { "x-max-length": 100 } } }])).not.toBe(base);
  });

  it("is the same whoever topo connects as: the plan job may read as a read-only user and apply write as another", () => {
    const users = { pay: { password: "p", consumes: ["mplogin"] } } as unknown as RawConfig["users"];
    const as = (user: string) =>
      desiredText(desiredOf(raw({ clusters: { sync: { url: `amqp://${user}:p@h:5672/s` }, async: { url: `amqp://${user}:p@h:5672/a` } }, users }), "async"));
    expect(as("topo-apply")).toBe(as("topo-plan"));
    expect(desiredOf(raw({ users }), "async").users?.connectsAs).toContain("u");
  });
});

describe("renderMarkdown", () => {
  it("prints a summary line, a section per cluster, replaces and deletes first with their reasons, in a diff fence", () => {
    const md = renderMarkdown({ clusters: [cluster([create("mpnew.async"), del("mpold.async", 2), replace], "async", { warnings: ["w1"] }), cluster([], "sync")] }, { source: "saved plan of topology.yaml" });
    expect(md).toBe(
      [
        "**topo plan**: Plan: 1 to create, 0 to update, 1 to replace, 1 to delete.",
        "",
        "<sub>saved plan of topology.yaml</sub>",
        "",
        "<details open><summary>cluster async: 3 changes (2 destructive)</summary>",
        "",
        "`cluster async: amqp://topo-ci:***@rabbit:5672/async (RabbitMQ 3.10.8)`",
        "",
        "```diff",
        "! warning: w1",
        "-/+ replace queue mppayment.async [holds 3 messages]",
        "    because arguments.x-max-length: (none) -> 10",
        "    ! messages at risk: x-max-length 10 is below the 30 messages it holds",
        "    then re-creates its 1 binding",
        "- delete queue mpold.async [holds 2 messages]",
        "+ create queue mpnew.async (classic, durable)",
        "```",
        "",
        "</details>",
        "",
        "<details><summary>cluster sync: no changes</summary>",
        "",
        "`cluster sync: amqp://topo-ci:***@rabbit:5672/sync (RabbitMQ 3.10.8)`",
        "",
        "No changes.",
        "",
        "</details>",
      ].join("\n"),
    );
  });

  it("points down to the degraded lines, which come after its summary line", () => {
    const md = renderMarkdown({ clusters: [cluster([], "sync", { degraded: ["queue mplogin.sync is not mirrored"] })] });
    expect(md.split("\n")[0]).toBe('**topo plan**: No changes. 1 degraded (topo cannot repair it: see "! degraded" below).');
    expect(md).toContain("! degraded: queue mplogin.sync is not mirrored");
  });

  it("escapes HTML in the summary", () => {
    expect(renderMarkdown({ clusters: [cluster([], "a<b>")] })).toContain("<summary>cluster a&lt;b&gt;: no changes</summary>");
  });
});

describe("outsideSaved (a retry after a lost connection)", () => {
  const made = replace.op === "replace" ? replace.after : queue({ name: "x" });
  const hold = queue({ name: "topo.hold.mppayment.async" });

  it("accepts what is left of the saved plan, a replace that now resumes or re-creates another binding included", () => {
    const resumed: Action = { ...replace, before: made, rebind: [], messages: 0, resume: { hold, holdBindings: [], queueDone: true } };
    // The replace mid-way: the queue has its new arguments, its binding is not back yet, its messages wait in the holding queue.
    const midway = state([...asyncSeen.slice(0, 2), made, hold, binding({ source: "mppayment", destination: hold.name })]);
    expect(outsideSaved(saved(), fresh(cluster([resumed], "async"), midway))).toEqual([]);
    expect(outsideSaved(saved(), fresh(cluster([], "async"), state([...asyncSeen.slice(0, 2), made, asyncSeen[3] as Resource, queue({ name: "mpnew.async" })])))).toEqual([]);
    expect(outsideSaved(saved(), fresh(cluster([create("mpnew.async"), replace], "async")))).toEqual([]);
    // Cut during the move out: the old queue is there, its binding on the holding queue; the new
    // plan resumes the replace and binds the queue again, which the replace does when it finishes.
    const moving: Action = { ...replace, rebind: [], resume: { hold, holdBindings: [], queueDone: false } };
    const rebind = binding({ source: "mppayment", destination: "mppayment.async" });
    const bindAgain: Action = { op: "create", key: keyOf(rebind), after: rebind };
    expect(outsideSaved(saved(), fresh(cluster([moving, bindAgain], "async"), midway))).toEqual([]);
    // Not so without the replace resuming.
    expect(outsideSaved(saved(), fresh(cluster([bindAgain], "async"), midway))).toContainEqual(expect.stringMatching(/^cluster async: not in the plan: create binding mppayment -> mppayment\.async/));
  });

  it("accepts a replace by delete and re-create cut after its delete: the object created as the replace makes it, and the bindings it puts back", () => {
    const after = replace.op === "replace" ? replace.after : queue({ name: "x" });
    const rebound = binding({ source: "mppayment", destination: "mppayment.async" });
    const bindAgain: Action = { op: "create", key: keyOf(rebound), after: rebound };
    const gone = state(asyncSeen.slice(0, 2));
    expect(outsideSaved(saved(), fresh(cluster([{ op: "create", key: replace.key, after }, bindAgain], "async"), gone))).toEqual([]);
    // Created with another shape than the replace's, it is another plan.
    const other: Action = { op: "create", key: replace.key, after: queue({ name: "mppayment.async", arguments: { "x-max-length": 5 } }) };
    expect(outsideSaved(saved(), fresh(cluster([other, bindAgain], "async"), gone))).toEqual([
      "cluster async: now create queue mppayment.async, the plan says replace queue mppayment.async",
      "cluster async: not in the plan: create binding mppayment -> mppayment.async [mppayment.async.#]",
    ]);
    // The replace done, its binding to make again is not part of it.
    expect(outsideSaved(saved(), fresh(cluster([bindAgain], "async"), state([...asyncSeen.slice(0, 2), after])))).toContainEqual(
      expect.stringMatching(/^cluster async: not in the plan: create binding mppayment -> mppayment\.async/),
    );
  });

  it("names every object another hand changed, whether the plan touches it or not", () => {
    // The queue the plan replaces, as neither the plan saw it nor makes it; a policy nobody planned.
    const other = queue({ name: "mppayment.async", arguments: { "x-max-length": 7 } });
    const changed = state([...asyncSeen.slice(0, 2), other, asyncSeen[3] as Resource, cap]);
    expect(outsideSaved(saved(), fresh(cluster([], "async"), changed))[0]).toBe(
      "cluster async: the broker's objects changed since the plan was made (2 objects):\n" +
        '    policy cap: created since the plan (pattern ^mp, apply-to queues, priority 9, definition {"max-length":1})\n' +
        "    queue mppayment.async: changed since the plan: arguments.x-max-length: (none) -> 7",
    );
  });

  it("holds what apply confirmed made to what it made: an object another hand put back or changed after that is named", () => {
    const made = create("mpnew.async");
    const after = queue({ name: "mpnew.async" });
    // Confirmed: mpnew.async was created. Another hand deleted it again while apply waited.
    expect(outsideSaved(saved(), fresh(cluster([made, replace], "async")), [], [made])).toEqual([
      "cluster async: the broker's objects changed since the plan was made (1 object):\n    queue mpnew.async: deleted since apply made it",
    ]);
    expect(outsideSaved(saved(), fresh(cluster([replace], "async"), state([...asyncSeen, { ...after, arguments: { "x-max-length": 3 } }])), [], [made])[0]).toBe(
      "cluster async: the broker's objects changed since the plan was made (1 object):\n    queue mpnew.async: changed since apply made it: arguments.x-max-length: (none) -> 3",
    );
    // As apply made it: nothing to say.
    expect(outsideSaved(saved(), fresh(cluster([replace], "async"), state([...asyncSeen, after])), [], [made])).toEqual([]);
  });

  it("names every action the saved plan does not hold, or holds with another result", () => {
    const otherLimit: Action = { ...replace, after: queue({ name: "mppayment.async", arguments: { "x-max-length": 99 } }) };
    expect(outsideSaved(saved(), fresh(cluster([create("mpnew.async"), del("mpold.async"), otherLimit], "async"), state([...asyncSeen, queue({ name: "mpold.async" })])))).toEqual([
      "cluster async: the broker's objects changed since the plan was made (1 object):\n    queue mpold.async: created since the plan",
      "cluster async: not in the plan: delete queue mpold.async",
      "cluster async: replace queue mppayment.async, with another result than the plan's",
    ]);
    expect(outsideSaved(saved(), fresh(cluster([del("mpnew.async")], "async"), state([...asyncSeen, queue({ name: "mpnew.async", durable: false })])))).toEqual([
      "cluster async: the broker's objects changed since the plan was made (1 object):\n    queue mpnew.async: created since the plan",
      "cluster async: now delete queue mpnew.async, the plan says create queue mpnew.async",
    ]);
    expect(outsideSaved(saved(), fresh(cluster([create("mpnew.sync")], "sync")))).toEqual(["cluster sync: not in the plan: create queue mpnew.sync"]);
  });

  it("lists the first ten changed objects of a cluster and counts the rest", () => {
    const many = Array.from({ length: 13 }, (_, i) => queue({ name: `mpx${String(i).padStart(2, "0")}.async` }));
    const [entry] = outsideSaved(saved(), fresh(cluster([], "async"), state([...asyncSeen, ...many])));
    expect(entry?.split("\n")).toEqual([
      "cluster async: the broker's objects changed since the plan was made (13 objects):",
      ...many.slice(0, 10).map((q) => `    queue ${q.name}: created since the plan`),
      "    ... and 3 more",
    ]);
  });
});
