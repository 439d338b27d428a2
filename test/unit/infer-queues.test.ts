// inferTopology's first steps on plain objects: which queues of the brokers the file describes.

import { describe, expect, it } from "vitest";
import { chooseKindClusters, findServiceQueues, pickOneQueuePerService, serviceQueueReader } from "../../src/import/queues.js";
import { exchange, importSource, queue, service } from "../helpers/builders.js";

describe("serviceQueueReader", () => {
  it("reads <service>.<kind> of its prefix, and no other name", () => {
    const read = serviceQueueReader("mp");
    expect(read("mplogin.sync")).toEqual({ service: "mplogin", kind: "sync" });
    expect(read("mp_a.async")).toEqual({ service: "mp_a", kind: "async" });
    expect(read("mp.sync")).toBeUndefined();
    expect(read("mplogin.jobs")).toBeUndefined();
    expect(read("mplogin.sync.extra")).toBeUndefined();
    expect(read("billing.sync")).toBeUndefined();
    expect(read("topo.hold.mplogin.sync")).toBeUndefined();
  });
});

describe("findServiceQueues", () => {
  it("finds the namespace's queues on every cluster, in order, with the place of their cluster", () => {
    const a = importSource("a", [...service("mpx", "sync"), queue({ name: "billing.jobs" }), exchange({ name: "mpy" })]);
    const b = importSource("b", [queue({ name: "mpx.async" }), queue({ name: "mpx.sync" })]);
    expect(findServiceQueues([a, b], "mp").map((f) => [f.source.name, f.order, f.service, f.kind, f.queue.name])).toEqual([
      ["a", 0, "mpx", "sync", "mpx.sync"],
      ["b", 1, "mpx", "async", "mpx.async"],
      ["b", 1, "mpx", "sync", "mpx.sync"],
    ]);
  });

  it("finds nothing of another prefix", () => {
    expect(findServiceQueues([importSource("a", service("svc_a", "sync"))], "mp")).toEqual([]);
  });
});

describe("chooseKindClusters", () => {
  const found = (...sources: ReturnType<typeof importSource>[]) => findServiceQueues(sources, "mp");

  it("puts a kind on the cluster holding most of its queues, and a kind without queues nowhere", () => {
    const a = importSource("a", [queue({ name: "mpa.sync" }), queue({ name: "mpb.sync" })]);
    const b = importSource("b", [queue({ name: "mpc.sync" })]);
    expect(chooseKindClusters(found(a, b), ["a", "b"])).toEqual({ sync: "a" });
  });

  it("breaks a tie for the cluster named like the kind, as the built-in defaults name them", () => {
    const x = importSource("x", [queue({ name: "mpa.async" })]);
    const async = importSource("async", [queue({ name: "mpb.async" })]);
    expect(chooseKindClusters(found(x, async), ["x", "async"])).toEqual({ async: "async" });
  });

  it("else breaks a tie for the first cluster given", () => {
    const a = importSource("a", [queue({ name: "mpa.sync" })]);
    const b = importSource("b", [queue({ name: "mpb.sync" })]);
    expect(chooseKindClusters(found(a, b), ["a", "b"])).toEqual({ sync: "a" });
    expect(chooseKindClusters(found(a, b), ["b", "a"])).toEqual({ sync: "b" });
  });
});

describe("pickOneQueuePerService", () => {
  it("keeps the queue on its kind's cluster and says why the other goes", () => {
    const a = importSource("a", [queue({ name: "mpa.sync" })]);
    const b = importSource("b", [queue({ name: "mpa.sync" }), queue({ name: "mpb.sync" })]);
    const { picked, reasons } = pickOneQueuePerService(findServiceQueues([a, b], "mp"), { sync: "b" });
    expect(picked.map((f) => `${f.queue.name}@${f.source.name}`)).toEqual(["mpa.sync@b", "mpb.sync@b"]);
    expect(reasons).toEqual([
      {
        cluster: "a",
        resource: a.actual.resources[1],
        text: "a service has one sync queue, on one cluster: the file puts mpa.sync on cluster b, which holds one too",
      },
    ]);
  });

  it("keeps the one on the first cluster when none is on the kind's cluster", () => {
    const a = importSource("a", [queue({ name: "mpa.async" })]);
    const b = importSource("b", [queue({ name: "mpa.async" })]);
    const { picked, reasons } = pickOneQueuePerService(findServiceQueues([a, b], "mp"), { async: "c" });
    expect(picked.map((f) => f.source.name)).toEqual(["a"]);
    expect(reasons.map((r) => r.cluster)).toEqual(["b"]);
  });

  it("keeps a service's sync and async queues apart", () => {
    const a = importSource("a", [queue({ name: "mpa.sync" }), queue({ name: "mpa.async" })]);
    const { picked, reasons } = pickOneQueuePerService(findServiceQueues([a], "mp"), { sync: "a", async: "a" });
    expect(picked.map((f) => f.queue.name)).toEqual(["mpa.sync", "mpa.async"]);
    expect(reasons).toEqual([]);
  });
});
