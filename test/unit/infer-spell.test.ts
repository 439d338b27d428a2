// The file's services: the fewest settings over the defaults, checked by reading them back.

import { describe, expect, it } from "vitest";
import type { Traffic } from "../../src/model.js";
import { allSettings, fewestSettings, settingsUnder, spellServices, type QueueToSpell } from "../../src/import/spell.js";
import type { Wanted } from "../../src/import/types.js";
import { wanted } from "../helpers/builders.js";

const CLUSTERS = [
  { name: "sync", vhost: "sv" },
  { name: "async", vhost: "/" },
];
const DEFAULTS = { sync: { cluster: "sync", durable: false, mirrored: true }, async: { cluster: "async", durable: true, mirrored: false } };
const q = (service: string, kind: Traffic, o: Partial<Wanted> = {}): QueueToSpell => ({
  service,
  kind,
  wanted: wanted(kind === "sync" ? { cluster: "sync", durable: false, mirrored: true, ...o } : { cluster: "async", ...o }),
});

describe("settingsUnder", () => {
  it("is what a queue is when its service says nothing", () => {
    expect(settingsUnder(DEFAULTS, "sync")).toEqual({ cluster: "sync", type: "classic", durable: false, mirrored: true, arguments: {} });
    expect(settingsUnder({ sync: { cluster: "s", type: "quorum", arguments: { "x-max-length": 1 } } }, "sync")).toEqual({
      cluster: "s",
      type: "quorum",
      durable: true,
      mirrored: false,
      arguments: { "x-max-length": 1 },
    });
  });
});

describe("fewestSettings", () => {
  const under = wanted({ cluster: "async", arguments: { "x-message-ttl": 1 } });

  it("says nothing of what the defaults already make", () => {
    expect(fewestSettings(under, under)).toEqual({});
  });

  it("says only what differs", () => {
    expect(fewestSettings(under, { ...under, cluster: "b", durable: false, arguments: { "x-message-ttl": 2, "x-max-length": 5 } })).toEqual({
      cluster: "b",
      durable: false,
      arguments: { "x-message-ttl": 2, "x-max-length": 5 },
    });
  });

  it("spells out durable and mirrored when it changes the type to classic, and neither otherwise", () => {
    const quorum = wanted({ type: "quorum" });
    expect(fewestSettings(quorum, wanted({ durable: true, mirrored: false }))).toEqual({ type: "classic", durable: true, mirrored: false });
    expect(fewestSettings(wanted({ durable: false }), quorum)).toEqual({ type: "quorum" });
  });
});

describe("allSettings", () => {
  it("writes every setting, durable and mirrored only for classic queues", () => {
    expect(allSettings(wanted({ arguments: { "x-max-length": 1 } }))).toEqual({ cluster: "sync", type: "classic", durable: true, mirrored: false, arguments: { "x-max-length": 1 } });
    expect(allSettings(wanted({ type: "stream" }))).toEqual({ cluster: "sync", type: "stream" });
  });
});

describe("spellServices", () => {
  it("names a service that matches the defaults, says false for a kind it lacks, and sorts by name", () => {
    const { services } = spellServices([q("mpb", "sync"), q("mpb", "async"), q("mpa", "async", { arguments: { "x-max-length": 5 } })], DEFAULTS, CLUSTERS, "mp");
    expect(services).toEqual([{ name: "mpa", sync: false, async: { arguments: { "x-max-length": 5 } } }, "mpb"]);
  });

  it("returns what topo reads from the file: the queues, on their clusters and vhosts", () => {
    const { desired } = spellServices([q("mpa", "sync"), q("mpa", "async", { durable: false })], DEFAULTS, CLUSTERS, "mp");
    expect(desired.clusters.map((c) => [c.target.name, c.target.amqp.vhost, c.queues.map((s) => [s.queue.name, s.queue.durable, s.mirrored])])).toEqual([
      ["sync", "sv", [["mpa.sync", false, true]]],
      ["async", "/", [["mpa.async", false, false]]],
    ]);
  });

  it("refuses defaults a service cannot undo: an argument one of the queues lacks", () => {
    const defaults = { ...DEFAULTS, async: { ...DEFAULTS.async, arguments: { "x-message-ttl": 1 } } };
    expect(() => spellServices([q("mpa", "async", { arguments: { "x-message-ttl": 1 } }), q("mpb", "async")], defaults, CLUSTERS, "mp")).toThrow(
      "import could not describe services mpb so that topo reads them back as they are",
    );
  });

  it("refuses defaults topo refuses", () => {
    const defaults = { sync: { cluster: "sync", type: "quorum" as const, mirrored: true } };
    expect(() => spellServices([q("mpa", "sync", { type: "quorum", durable: true, mirrored: false })], defaults, CLUSTERS, "mp")).toThrow(
      /^import produced defaults topo refuses: defaults\.sync\.mirrored: mirrored: true needs a classic queue/,
    );
  });
});
