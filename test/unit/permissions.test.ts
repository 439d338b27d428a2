// The least rights of topo's users, on plain objects: the exact regexes, and what they let through
// when RabbitMQ matches names against them (Erlang's re and JavaScript's RegExp agree on these:
// anchors, (?:|), classes and counts). The integration test (least-privilege.test.ts) shows the
// same rules working, and refusing, with real Celery workers.

import { describe, expect, it } from "vitest";
import type { RawConfig } from "../../src/config/normalize.js";
import type { DesiredCluster } from "../../src/model.js";
import { DEFAULT_EXCHANGE, listedNames, NOTHING, REPLY_QUEUE, rightsOn, type Grant, type VhostRights } from "../../src/core/permissions.js";
import { desiredOf, raw } from "../helpers/builders.js";

// mplogin has both kinds (sync on cluster sync, async on cluster async), mpwallet only sync,
// mpaudit only async.
const THREE: RawConfig = raw({ services: ["mplogin", { name: "mpwallet", async: false }, { name: "mpaudit", sync: false }] });
const SYNC = desiredOf(THREE, "sync");
const ASYNC = desiredOf(THREE, "async");

const grant = (user: string, consumes: string[], publishes: string[] | "all" = []): Grant => ({ user, consumes, publishes });
const rights = (c: DesiredCluster, g: Grant, prefix = "mp"): VhostRights => {
  const r = rightsOn(c, g, prefix);
  expect(r, `${g.user} on ${c.target.name}`).toBeDefined();
  return r!;
};

/** Does RabbitMQ's check `name =~ regex` pass? */
const allows = (regex: string, name: string) => new RegExp(regex).test(name);
const topic = (r: VhostRights, exchange: string) => r.topics.find((t) => t.exchange === exchange);

// A Celery 5.2 client's reply queue name, as the experiments saw it (kombu's uuid3 of the app).
const OID = "287e2d36-a4da-3806-85c8-b4ea1c610663";

describe("rightsOn: a worker", () => {
  it("reads its own queue, answers through the default exchange, sends the sync tasks it lists, and its own again (retries)", () => {
    const r = rights(SYNC, grant("mplogin", ["mplogin"], ["mpwallet"]));
    expect(r).toEqual({
      configure: `^${REPLY_QUEUE}$`,
      write: "^(?:amq\\.default|mplogin|mpwallet)$",
      read: `^(?:mplogin\\.sync|${REPLY_QUEUE})$`,
      topics: [
        { exchange: "mplogin", write: "^mplogin\\.sync\\.[A-Za-z0-9_]+$", read: NOTHING },
        { exchange: "mpwallet", write: "^mpwallet\\.sync\\.[A-Za-z0-9_]+$", read: NOTHING },
      ],
    });
    // Its retries: its own queue's task names, not the other kind's (its async queue is another cluster's).
    expect(allows(topic(r, "mplogin")!.write, "mplogin.sync.register")).toBe(true);
    expect(allows(topic(r, "mplogin")!.write, "mplogin.async.audit")).toBe(false);
    expect(allows(r.read, "mplogin.sync")).toBe(true);
    expect(allows(r.read, OID)).toBe(true);
    expect(allows(r.configure, OID)).toBe(true);
    for (const other of ["mpwallet.sync", "mplogin.async", "mplogin.sync.x", "xmplogin.sync", "mploginXsync", `${OID}.reply.celery.pidbox`, "celeryev.abc"]) {
      expect(allows(r.read, other), other).toBe(false);
    }
    // No configure on any service object: it can neither re-declare nor delete them.
    for (const name of ["mplogin.sync", "mpwallet.sync", "mplogin", "mpwallet", "celery.pidbox", "celeryev"]) expect(allows(r.configure, name), name).toBe(false);
    expect(allows(r.write, DEFAULT_EXCHANGE)).toBe(true);
    for (const name of ["mpaudit", "amq.topic", "amqXdefault", "mpwallet2", "mplogin2", "celery"]) expect(allows(r.write, name), name).toBe(false);
    const keys = topic(r, "mpwallet")!.write;
    expect(allows(keys, "mpwallet.sync.balance")).toBe(true);
    for (const key of ["mpwallet.sync", "mpwallet.sync.", "mpwallet.async.credit", "mpwallet.sync.a.b", "mpwallet.sync.log-in", "mpwallet.sync.#", "mplogin.sync.register", "mpwalletXsyncXbalance"]) {
      expect(allows(keys, key), key).toBe(false);
    }
  });

  it("needs no reply queue where the cluster has no sync queue, and no default exchange when it answers nothing", () => {
    // mplogin on the async cluster: consumes mplogin.async, sends mpaudit's async tasks, and its own again.
    expect(rights(ASYNC, grant("mplogin", ["mplogin"], ["mpwallet", "mpaudit"]))).toEqual({
      configure: NOTHING,
      write: "^(?:mpaudit|mplogin)$",
      read: "^mplogin\\.async$",
      topics: [
        { exchange: "mpaudit", write: "^mpaudit\\.async\\.[A-Za-z0-9_]+$", read: NOTHING },
        { exchange: "mplogin", write: "^mplogin\\.async\\.[A-Za-z0-9_]+$", read: NOTHING },
      ],
    });
    // A sync-only worker that calls nothing: read its queue, answer, and send its own tasks again,
    // which on a cluster with sync queues (rpc:// results) declares its reply queue first.
    expect(rights(SYNC, grant("mpwallet", ["mpwallet"]))).toEqual({
      configure: `^${REPLY_QUEUE}$`,
      write: "^(?:amq\\.default|mpwallet)$",
      read: "^mpwallet\\.sync$",
      topics: [{ exchange: "mpwallet", write: "^mpwallet\\.sync\\.[A-Za-z0-9_]+$", read: NOTHING }],
    });
    // An async-only worker that calls nothing: read its queue, and send its own tasks again.
    expect(rights(ASYNC, grant("mpaudit", ["mpaudit"]))).toEqual({
      configure: NOTHING,
      write: "^mpaudit$",
      read: "^mpaudit\\.async$",
      topics: [{ exchange: "mpaudit", write: "^mpaudit\\.async\\.[A-Za-z0-9_]+$", read: NOTHING }],
    });
  });

  it("gets nothing on a cluster where none of its services has a queue", () => {
    expect(rightsOn(ASYNC, grant("mpwallet", ["mpwallet"]), "mp")).toBeUndefined();
    expect(rightsOn(SYNC, grant("mpaudit", ["mpaudit"], ["mpaudit"]), "mp")).toBeUndefined();
    // Names the topology does not have grant nothing, and never reach a regex.
    expect(rightsOn(SYNC, grant("ghost", ["mpghost"], ["mpnobody", "amq.default", ".*"]), "mp")).toBeUndefined();
    const r = rights(SYNC, grant("mplogin", ["mplogin", ".*"], ["mpnobody", ".*"]));
    expect(r).toEqual({
      configure: `^${REPLY_QUEUE}$`,
      write: "^(?:amq\\.default|mplogin)$",
      read: "^mplogin\\.sync$",
      topics: [{ exchange: "mplogin", write: "^mplogin\\.sync\\.[A-Za-z0-9_]+$", read: NOTHING }],
    });
  });

  it("consumes both kinds where one cluster holds both, and sends either kind where it may", () => {
    const one = raw({ clusters: { main: { url: "amqp://u:p@h:5672/m" } }, defaults: { sync: { cluster: "main" }, async: { cluster: "main" } }, services: ["mplogin", "mpwallet"] });
    const c = desiredOf(one, "main");
    const r = rights(c, grant("mplogin", ["mplogin"], ["mpwallet"]));
    expect(r.read).toBe(`^(?:mplogin\\.async|mplogin\\.sync|${REPLY_QUEUE})$`);
    expect(r.topics).toEqual([
      { exchange: "mplogin", write: "^mplogin\\.(?:async|sync)\\.[A-Za-z0-9_]+$", read: NOTHING },
      { exchange: "mpwallet", write: "^mpwallet\\.(?:async|sync)\\.[A-Za-z0-9_]+$", read: NOTHING },
    ]);
    expect(allows(r.topics[1]!.write, "mpwallet.async.credit") && allows(r.topics[1]!.write, "mpwallet.sync.balance")).toBe(true);
    expect(allows(r.topics[1]!.write, "mpwallet.other.x")).toBe(false);
    // The module of a cluster with sync queues has rpc:// results, and Celery declares the
    // sender's reply queue before sending even an async task: configure on it, but no read, for
    // a user that sends async tasks only, and for a worker, which sends its retries.
    const asyncOnly = raw({ clusters: { main: { url: "amqp://u:p@h:5672/m" } }, defaults: { sync: { cluster: "main" }, async: { cluster: "main" } }, services: ["mplogin", { name: "mpwallet", sync: false }] });
    expect(rights(desiredOf(asyncOnly, "main"), grant("mplogin", ["mplogin"], ["mpwallet"]))).toEqual({
      configure: `^${REPLY_QUEUE}$`,
      write: "^(?:amq\\.default|mplogin|mpwallet)$",
      read: "^(?:mplogin\\.async|mplogin\\.sync)$",
      topics: [
        { exchange: "mplogin", write: "^mplogin\\.(?:async|sync)\\.[A-Za-z0-9_]+$", read: NOTHING },
        { exchange: "mpwallet", write: "^mpwallet\\.async\\.[A-Za-z0-9_]+$", read: NOTHING },
      ],
    });
    expect(rights(c, grant("mpwallet", ["mpwallet"])).configure).toBe(`^${REPLY_QUEUE}$`);
  });
});

describe("rightsOn: the edge", () => {
  it("publishes every service's task names on the cluster and reads only its reply queue", () => {
    const edge = grant("edge", [], "all");
    expect(rights(SYNC, edge)).toEqual({
      configure: `^${REPLY_QUEUE}$`,
      write: "^(?:mplogin|mpwallet)$",
      read: `^${REPLY_QUEUE}$`,
      topics: [
        { exchange: "mplogin", write: "^mplogin\\.sync\\.[A-Za-z0-9_]+$", read: NOTHING },
        { exchange: "mpwallet", write: "^mpwallet\\.sync\\.[A-Za-z0-9_]+$", read: NOTHING },
      ],
    });
    // Async only: fire and forget, so no reply queue at all.
    expect(rights(ASYNC, edge)).toEqual({
      configure: NOTHING,
      write: "^(?:mpaudit|mplogin)$",
      read: NOTHING,
      topics: [
        { exchange: "mpaudit", write: "^mpaudit\\.async\\.[A-Za-z0-9_]+$", read: NOTHING },
        { exchange: "mplogin", write: "^mplogin\\.async\\.[A-Za-z0-9_]+$", read: NOTHING },
      ],
    });
    const r = rights(SYNC, edge);
    for (const q of ["mplogin.sync", "mpwallet.sync"]) expect(allows(r.read, q) || allows(r.configure, q), q).toBe(false);
    expect(allows(r.write, DEFAULT_EXCHANGE)).toBe(false);
  });

  it("gives every exchange it may write to a topic permission (without one, any routing key goes)", () => {
    for (const c of [SYNC, ASYNC]) {
      for (const g of [grant("edge", [], "all"), grant("mplogin", ["mplogin"], ["mpwallet", "mpaudit", "mplogin"]), grant("mpwallet", ["mpwallet"])]) {
        const r = rightsOn(c, g, "mp");
        if (!r) continue;
        const exchanges = c.resources.filter((x) => x.kind === "exchange").map((x) => x.name);
        for (const e of exchanges.filter((e) => allows(r.write, e))) expect(topic(r, e), `${g.user} on ${c.target.name}: ${e}`).toBeDefined();
        expect(r.topics.map((t) => t.exchange)).toEqual(exchanges.filter((e) => allows(r.write, e)));
      }
    }
  });
});

describe("rightsOn: names in regexes", () => {
  it("anchors every regex and escapes the dots of queue names", () => {
    const r = rights(SYNC, grant("mplogin", ["mplogin"], "all"));
    for (const re of [r.configure, r.write, r.read, ...r.topics.flatMap((t) => [t.write, t.read])]) expect(re).toMatch(/^\^.*\$$/);
    expect(allows(r.read, "mploginxsync")).toBe(false);
    expect(allows(r.write, "amqxdefault")).toBe(false);
  });

  it("matches a Celery client's reply queue and nothing named like a service or Celery's own objects", () => {
    const reply = new RegExp(`^${REPLY_QUEUE}$`);
    expect(reply.test(OID)).toBe(true);
    for (const name of [OID.toUpperCase(), `${OID}.reply.celery.pidbox`, `x${OID}`, "mplogin.sync", "celery", "celeryev.0b2d"]) expect(reply.test(name), name).toBe(false);
  });

  it("takes service names of the prefix only: a prefix is lowercase letters and _, so a name holds no regex metacharacter but the escaped dot", () => {
    // normalize never lets another name through; rightsOn refuses to put one into a regex anyway.
    expect(() => rightsOn(SYNC, grant("mplogin", ["mplogin"]), "zz")).toThrow("service mplogin of cluster sync is not a service name of prefix zz");
    const prefixed = raw({ prefix: "ab_", services: ["ab_login"] });
    expect(rights(desiredOf(prefixed, "sync"), grant("u", ["ab_login"]), "ab_").read).toBe("^ab_login\\.sync$");
  });
});

describe("rightsOn: services whose names start with another's", () => {
  // mplogin, mplogin_x, mplogin_sync and mploginb: each name is a prefix of, or starts like,
  // another's, and mplogin_sync's queue ends like mplogin's. Every user must reach exactly its
  // own queues and the exchanges it lists, and route only its listed service's task names.
  const NAMES = ["mplogin", "mplogin_x", "mplogin_sync", "mploginb"];
  const FILE = raw({ services: NAMES });
  it("gives each user exactly its own queues, the exchanges it lists, and their task names", () => {
    for (const c of [desiredOf(FILE, "sync"), desiredOf(FILE, "async")]) {
      const queues = c.queues.map((q) => q.queue.name);
      NAMES.forEach((svc, i) => {
        const callee = NAMES[(i + 1) % NAMES.length]!;
        const r = rights(c, grant(svc, [svc], [callee]));
        expect(queues.filter((q) => allows(r.read, q)), `${svc} reads`).toEqual([`${svc}.${c.target.name}`]);
        expect(queues.filter((q) => allows(r.configure, q))).toEqual([]);
        expect([...NAMES, DEFAULT_EXCHANGE].filter((e) => allows(r.write, e)).sort(), `${svc} writes`).toEqual([...(c.target.name === "sync" ? [DEFAULT_EXCHANGE] : []), callee, svc].sort());
        expect(r.topics.map((t) => t.exchange)).toEqual([callee, svc].sort());
        const keys = NAMES.flatMap((s) => [`${s}.sync.t`, `${s}.async.t`]);
        expect(keys.filter((k) => allows(topic(r, callee)!.write, k)), `${svc} routes`).toEqual([`${callee}.${c.target.name}.t`]);
        expect(keys.filter((k) => allows(topic(r, svc)!.write, k)), `${svc} retries`).toEqual([`${svc}.${c.target.name}.t`]);
      });
    }
  });
});

describe("listedNames: the names a pattern of topo's lists", () => {
  const NAMES = ["mplogin", "mplogin_x", "mplogin_sync", "mploginb"];
  const FILE = raw({ services: NAMES });
  // Every name an exchange or a queue of the file has, the default exchange, and names a careless
  // unescape would let through. Not a reply queue: its pattern is left out of the list.
  const universe = (c: DesiredCluster) => [...c.queues.map((q) => q.queue.name), ...NAMES, DEFAULT_EXCHANGE, "", "mploginXsync", "amqXdefault"];
  it("lists exactly the names of the universe the regex allows, for every pattern rightsOn writes", () => {
    for (const c of [desiredOf(FILE, "sync"), desiredOf(FILE, "async")]) {
      const names = universe(c);
      for (const [i, svc] of NAMES.entries()) {
        for (const g of [grant(svc, [svc], [NAMES[(i + 1) % NAMES.length]!]), grant(svc, [], [svc]), grant(svc, NAMES, "all"), grant(svc, [svc], [])]) {
          const r = rightsOn(c, g, "mp");
          if (!r) continue;
          for (const pattern of [r.read, r.write, r.configure]) {
            const listed = listedNames(pattern);
            expect(listed, pattern).toBeDefined();
            expect(names.filter((n) => listed!.includes(n) && allows(pattern, n)).sort(), pattern).toEqual(names.filter((n) => allows(pattern, n)).sort());
          }
        }
      }
    }
  });
  it("says a pattern it cannot read as a list is none", () => {
    expect(listedNames(NOTHING)).toEqual([""]);
    const withReplies = `^(?:mplogin\\.sync|${REPLY_QUEUE})$`;
    expect(allows(withReplies, OID)).toBe(true);
    expect(listedNames(withReplies)).toEqual(["mplogin.sync"]);
    for (const p of [".*", "^mp.*$", "^mplogin\\.sync$|^mpwallet\\.sync$", "^(?:a)|(?:b)$", "^(?:a\\|b)$", "^mplogin.sync$", "mplogin\\.sync", "^(?:mplogin\\.sync|mp[a-z]+)$"]) {
      expect(listedNames(p), p).toBeUndefined();
    }
  });
});
