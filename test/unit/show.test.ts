// topo show on a saved plan someone edited: what it prints cannot gain or lose a line.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { show } from "../../src/commands/saved.js";
import { savedPlan } from "../../src/plan/saved.js";
import { renderText } from "../../src/plan/render.js";
import type { ClusterPlan } from "../../src/model.js";
import { queue } from "../helpers/builders.js";

const dir = mkdtempSync(join(tmpdir(), "topo-show-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FORGED = "\n  - delete queue mplogin.async";
const cluster: ClusterPlan = {
  cluster: "async",
  endpoint: `amqp://ci:***@rabbit:5672/async${FORGED}`,
  vhost: "async",
  version: "3.10.8",
  actions: [{ op: "create", key: "queue|mpnew.async", after: queue({ name: "mpnew.async" }) }],
  degraded: [`a mirror is missing${FORGED}`],
  warnings: [`a warning\x1b[2K${FORGED}`],
};

describe("topo show", () => {
  it("a directory given as the plan is said to be one", () => {
    expect(() => show(dir, "0.1.0")).toThrow(`cannot read the saved plan ${dir}: it is a directory`);
  });

  it("prints an edited plan's free text on one line each: no forged line, no terminal escape", () => {
    const file = join(dir, "plan.json");
    const meta = { topoVersion: "0.1.0", file: "topology.yaml", fileDigest: "sha256:f", prefix: "mp", states: { async: { vhostExists: true, resources: [], operatorPolicies: [] } }, desiredDigests: { async: "sha256:da" }, createdAt: "2026-01-01T00:00:00.000Z" };
    writeFileSync(file, JSON.stringify(savedPlan({ clusters: [cluster] }, meta)));
    const s = show(file, "0.1.0");
    const text = `${s.source}\n${renderText(s.plan)}`;
    expect(text).not.toMatch(/^\s*- delete queue mplogin\.async/m);
    expect(text).not.toContain("\x1b");
    // Written without the digest topo plan -o writes: the reviewer is told it was edited.
    expect(s.source).toBe("saved plan of topology.yaml, made 2026-01-01T00:00:00.000Z by topo 0.1.0; EDITED after topo plan wrote it (it has no digest, which topo plan -o writes): topo apply refuses it");
    expect(text).toContain('! warning: "a warning\\u001b[2K\\n  - delete queue mplogin.async"');
    // What topo itself wrote is shown as it is.
    expect(text).toContain("+ create queue mpnew.async (classic, durable)");
    // A file name no topo plan -o writes (apply printed it raw in what it said of the file) is an edit: refused, quoted.
    writeFileSync(file, JSON.stringify(savedPlan({ clusters: [cluster] }, { ...meta, file: `topology.yaml${FORGED}` })));
    expect(() => show(file, "0.1.0")).toThrow(/it is damaged: file is "topology\.yaml\\n  - delete queue mplogin\.async", which holds control characters/);
  });
});
