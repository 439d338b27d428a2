// Why what a broker holds differs from the file, object by object, on plain objects.

import { describe, expect, it } from "vitest";
import type { Action, Queue } from "../../src/model.js";
import { keyOf } from "../../src/core/keys.js";
import { annotateChanges, explainDifferences, reasonsOf } from "../../src/import/explain.js";
import type { Chosen, ImportSource, Reason, UserMirrors } from "../../src/import/types.js";
import { binding, chosen, exchange, importSource, policy, queue, service } from "../helpers/builders.js";

const NO_MIRRORS: UserMirrors = { all: [], partial: [] };
/** The file's queue `name`, as the broker holds it on `source`. */
const inFile = (source: ImportSource, name: string) => chosen(source, source.actual.resources.find((r): r is Queue => r.kind === "queue" && r.name === name)!);
/** The reasons for one cluster's objects other than topo's mirror policies (which always have one), by object. */
const explained = (sources: ImportSource[], file: Chosen[], mirrors = NO_MIRRORS) =>
  Object.fromEntries(
    explainDifferences(sources, file, mirrors, "mp")
      .filter((r) => !(r.resource.kind === "policy" && r.resource.name.startsWith("topo.mp.mirror.")))
      .map((r) => [`${r.cluster} ${keyOf(r.resource)}`, r.text]),
  );

describe("explainDifferences", () => {
  it("has nothing to say about a service as topo makes it", () => {
    const s = importSource("s", service("mpa", "sync"));
    expect(explained([s], [inFile(s, "mpa.sync")])).toEqual({});
  });

  it("explains an exchange without a queue of the file beside it, naming where its queues are", () => {
    const s = importSource("s", [exchange({ name: "mpa" }), exchange({ name: "mpb" }), exchange({ name: "billing" })]);
    const t = importSource("t", [queue({ name: "mpa.async" })]);
    expect(explained([s, t], [inFile(t, "mpa.async")])).toEqual({
      "s exchange|mpa": expect.stringMatching(/^no queue of service mpa is on this cluster in the file \(it has mpa\.async on cluster t\), and the file describes/),
      "s exchange|mpb": expect.stringMatching(/^no queue of service mpb is on this cluster in the file, and/),
      "t exchange|mpa": expect.stringMatching(/^queue mpa\.async has no exchange mpa;/),
      "t binding|mpa|queue|mpa.async|mpa.async.#|{}": expect.stringMatching(/^queue mpa\.async has no exchange mpa to be bound to;/),
    });
  });

  it("explains an exchange the file cannot describe, and a binding with another routing key", () => {
    const s = importSource("s", [exchange({ name: "mpa", type: "direct" }), queue({ name: "mpa.sync" }), binding({ source: "mpa", destination: "mpa.sync", routingKey: "k" })]);
    expect(explained([s], [inFile(s, "mpa.sync")])).toEqual({
      "s exchange|mpa": expect.stringMatching(/^the file cannot describe exchange properties/),
      "s binding|mpa|queue|mpa.sync|mpa.sync.#|{}": expect.stringMatching(/^queue mpa\.sync is not bound to mpa with mpa\.sync\.# \(only with \[k\]\);/),
      "s binding|mpa|queue|mpa.sync|k|{}": expect.stringMatching(/^the file describes only the binding \[mpa\.sync\.#\]/),
    });
  });

  it("explains bindings between services, to a queue the file has elsewhere, and an interrupted replace", () => {
    const s = importSource("s", [
      ...service("mpa", "sync"),
      ...service("mpb", "async"),
      binding({ source: "mpa", destination: "mpb.async", routingKey: "x" }),
      queue({ name: "topo.hold.mpa.sync" }),
    ]);
    const t = importSource("t", service("mpb", "async"));
    const reasons = explained([s, t], [inFile(s, "mpa.sync"), inFile(t, "mpb.async")]);
    expect(reasons).toEqual({
      "s exchange|mpb": expect.stringMatching(/^no queue of service mpb is on this cluster in the file \(it has mpb\.async on cluster t\)/),
      "s binding|mpb|queue|mpb.async|mpb.async.#|{}": "its queue mpb.async is not in the file on this cluster",
      "s binding|mpa|queue|mpb.async|x|{}": "the file cannot describe a binding from one service's exchange to another service's queue",
      "s queue|topo.hold.mpa.sync": "a replace by topo apply was interrupted; topo apply finishes it",
    });
  });

  it("explains topo's mirror policies, naming users' ha-mode all policies they take over", () => {
    const s = importSource("s", []);
    const mirrors: UserMirrors = { all: [{ cluster: "s", kind: "sync", policy: "ha", queues: ["mpa.sync", "mpb.sync"] }], partial: [] };
    const reasons = explainDifferences([s], [], mirrors, "mp");
    expect(reasons.map((r) => [keyOf(r.resource), r.text])).toEqual([
      ["policy|topo.mp.mirror.sync", expect.stringMatching(/^the user's policy ha \(mpa\.sync, mpb\.sync\) mirrors sync queues with ha-mode all; .*delete the user's policy/)],
      ["policy|topo.mp.mirror.async", expect.stringMatching(/^topo's mirroring policy follows from the file: its pattern covers exactly the async queues with mirrored: true/)],
    ]);
  });

  it("explains topo's other policies: an old mirror policy and one topo does not make", () => {
    const s = importSource("s", [
      policy({ name: "topo.mirror.sync", pattern: "^mp[a-z_]+\\.sync$" }),
      policy({ name: "topo.mp.custom", pattern: "^x$" }),
      policy({ name: "topo.mp.mirror.sync", pattern: "^mp[a-z_]+\\.sync$" }),
      policy({ name: "user", pattern: "^mp" }),
    ]);
    expect(explained([s], [])).toEqual({
      "s policy|topo.mirror.sync": expect.stringMatching(/^older versions of topo named their mirroring policy topo\.mirror\.sync; it becomes topo\.mp\.mirror\.sync/),
      "s policy|topo.mp.custom": "it is in topo's namespace (topo.mp.*) but is not a policy topo makes",
    });
  });
});

describe("reasonsOf", () => {
  it("keys one cluster's reasons by object, joining two for one object", () => {
    const q = queue({ name: "mpa.sync" });
    const reasons: Reason[] = [
      { cluster: "s", resource: q, text: "one" },
      { cluster: "t", resource: q, text: "elsewhere" },
      { cluster: "s", resource: exchange({ name: "mpa" }), text: "other" },
      { cluster: "s", resource: q, text: "two" },
    ];
    expect(reasonsOf("s", reasons)).toEqual(new Map([["queue|mpa.sync", "one; two"], ["exchange|mpa", "other"]]));
  });
});

describe("annotateChanges", () => {
  const q = queue({ name: "mpa.sync" });
  const hold = queue({ name: "topo.hold.mpa.sync" });
  const reasons = new Map([
    [keyOf(q), "the queue's reason"],
    [keyOf(hold), "interrupted"],
  ]);

  it("gives each action the reason for its object, or says the broker differs", () => {
    const actions: Action[] = [
      { op: "delete", key: keyOf(q), before: q },
      { op: "create", key: "exchange|mpa", after: exchange({ name: "mpa" }) },
    ];
    expect(annotateChanges(actions, reasons).map((c) => c.why)).toEqual(["the queue's reason", "the broker differs from anything the file can describe"]);
  });

  it("explains the replace that finishes an interrupted one by its holding queue", () => {
    const replace: Action = { op: "replace", key: keyOf(q), before: q, after: q, because: [], rebind: [], resume: { hold, holdBindings: [], queueDone: false } };
    expect(annotateChanges([replace], reasons)).toEqual([{ action: replace, why: "interrupted" }]);
  });
});
