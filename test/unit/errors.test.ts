// What --json says of an error: the cluster and object whenever one cluster's broker answered,
// whichever kind of error carries it (docs/errors.md).

import { describe, expect, it } from "vitest";
import { allOf, ApplyError, BrokerError, BUG_HINT, errorJson, formatProblem, LockError, TopoError } from "../../src/errors.js";
import { forEachCluster } from "../../src/commands/clusters.js";
import type { DesiredCluster } from "../../src/model.js";

const same = (s: string) => s;

describe("errorJson", () => {
  it("names the cluster and object of a broker error, of an apply it stopped, and of a lock timeout", () => {
    const refused = new BrokerError("sync", "declare queue mpnew.sync -> 406 PRECONDITION_FAILED", { status: 406, object: "queue mpnew.sync" });
    expect(errorJson(refused, same).error).toMatchObject({ code: "broker_refused", cluster: "sync", object: "queue mpnew.sync" });
    const stopped = new ApplyError(`${refused.message}\n  not done: ...`, [], false, "apply_incomplete", refused.place);
    expect(errorJson(stopped, same).error).toMatchObject({ code: "apply_incomplete", cluster: "sync", object: "queue mpnew.sync" });
    const lock = new LockError("cluster async: the apply lock is held", [], { cluster: "async", object: "queue topo.mp.lock" });
    expect(errorJson(lock, same).error).toMatchObject({ code: "lock_timeout", cluster: "async", object: "queue topo.mp.lock" });
  });

  it("names no cluster for an error of no one cluster", () => {
    const e = errorJson(new TopoError("cluster sync: x\ncluster async: y", [], false, "broker_refused"), same).error;
    expect(e).not.toHaveProperty("cluster");
    expect(e).not.toHaveProperty("object");
  });

  it("lists each cluster's own code when clusters fail in different ways, so a pipeline need not read the words", async () => {
    const clusters = [{ target: { name: "sync" } }, { target: { name: "async" } }] as unknown as DesiredCluster[];
    const failures: Record<string, Error> = {
      sync: new BrokerError("sync", "GET /api/overview -> 401 Login failed", { status: 401, hints: ["check the password"] }),
      async: new BrokerError("async", "connect amqp://h:1/a -> ECONNREFUSED", { status: "ECONNREFUSED", transient: true }),
    };
    const thrown = await forEachCluster(clusters, async (c) => Promise.reject(failures[c.target.name])).catch((e: unknown) => e);
    const e = errorJson(thrown, same).error as { code: string; errors?: unknown[] };
    expect(e.code).toBe("auth_failed");
    expect(e.errors).toEqual([
      { code: "auth_failed", message: "cluster sync: GET /api/overview -> 401 Login failed", cluster: "sync", hints: ["check the password"] },
      { code: "broker_unreachable", message: "cluster async: connect amqp://h:1/a -> ECONNREFUSED", cluster: "async" },
    ]);
    // One failure is that error itself, with no list.
    const one = await forEachCluster(clusters.slice(0, 1), async (c) => Promise.reject(failures[c.target.name])).catch((x: unknown) => x);
    expect(errorJson(one, same).error).not.toHaveProperty("errors");
  });
});

describe("allOf: one error for several clusters' failures", () => {
  it("failures that are not topo's own are a bug together too: no usage code, and the bug hint", () => {
    const both = allOf([new TypeError("a.split is not a function"), new TypeError("a.split is not a function (2)")]);
    expect(both).not.toBeInstanceOf(TopoError);
    expect(errorJson(both, (t) => t).error.code).toBe("internal");
    const mixed = allOf([new BrokerError("sync", "GET /api/nodes -> 500", { code: "broker_refused" }), new TypeError("x is undefined")]) as TopoError;
    expect(mixed.code).toBe("broker_refused");
    expect(mixed.hints).toContain(BUG_HINT);
  });
});

// A name's value quoted in its problem: "mpx\nesc.yaml is valid: 2 services\e[31m" printed a line
// of its own that read as validate's success, and coloured the rest.
describe("formatProblem: one line per problem", () => {
  it("shows a line break or a terminal escape the file wrote escaped", () => {
    const line = formatProblem({ file: "esc.yaml", line: 6, col: 11, message: 'service name "mpx\nesc.yaml is valid: 2 services\u001b[31mRED" must match ^mp[a-z_]+$' });
    expect(line).toBe('esc.yaml:6:11: service name "mpx\\u000aesc.yaml is valid: 2 services\\u001b[31mRED" must match ^mp[a-z_]+$');
    expect(line).not.toMatch(/[\n\u001b]/);
    expect(formatProblem({ file: "t.yaml", line: 1, col: 1, message: 'plain "words"' })).toBe('t.yaml:1:1: plain "words"');
  });
});
