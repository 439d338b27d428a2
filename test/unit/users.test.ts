// Users from the file: normalize's checks, the password comparison against RabbitMQ's salted
// hashes, and how diff plans users, permissions and topic permissions (never a password or hash).

import { describe, expect, it } from "vitest";
import { createHmac, scryptSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { normalize } from "../../src/config/normalize.js";
import { USER_NAME_RULE, USER_TAG_RULE } from "../../src/core/naming.js";
import { loadConfig } from "../../src/config/load.js";
import { credentials, FINGERPRINT_SCRYPT, isSha256Hash, rabbitHash } from "../../src/config/credentials.js";
import { diffCluster } from "../../src/plan/diff.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { renderMarkdown } from "../../src/plan/markdown.js";
import { userConflicts } from "../../src/plan/users.js";
import { importUsers, passwordlessUsers, passwordVariable, userChanges } from "../../src/import/users.js";
import { definitionsOf } from "../../src/export/definitions.js";
import { renderGraph } from "../../src/plan/graph.js";
import type { Action, ActualCluster, DesiredCluster, Permission, Resource, TopicPermission, User } from "../../src/model.js";
import { actual, importSource, raw, service } from "../helpers/builders.js";

const SECRET = "s3cret/with:chars@";

function users(extra: Record<string, unknown> = {}) {
  return raw({
    services: ["mplogin", "mpwallet"],
    users: {
      edge: { password: "edge-pass", publishes: "all" },
      mplogin: { password: SECRET, consumes: ["mplogin"], publishes: ["mpwallet"], ...extra },
    },
  });
}

function cluster(r = users(), name = "sync"): DesiredCluster {
  const { desired, problems } = normalize(r);
  expect(problems).toEqual([]);
  return desired.clusters.find((c) => c.target.name === name)!;
}

/** The broker as topo left it after applying `c`, with `hashes` for the users' stored passwords. */
function applied(c: DesiredCluster, hashes: Record<string, string>, more: Resource[] = []): ActualCluster {
  return actual([...c.resources, ...more], {
    userHashes: Object.fromEntries(Object.entries(hashes).map(([u, hash]) => [u, { hash, algorithm: "rabbit_password_hashing_sha256" }])),
    userVhosts: Object.fromEntries(c.resources.filter((r): r is User => r.kind === "user").map((u) => [u.name, [c.target.amqp.vhost]])),
  });
}

describe("passwords against RabbitMQ's stored hash", () => {
  it("matches a hash RabbitMQ made (rabbitmqctl hash_password guest), whatever its salt, and nothing else", () => {
    // GET /api/users/guest on a fresh Debian 3.10 node.
    const stored = { hash: "myVe/f9ovJL0FbtylAqb/aTGAQZavgkT0ARey3aOWRhBp7Bw", algorithm: "rabbit_password_hashing_sha256" };
    const c = credentials(new Map([["guest", { password: "guest" }], ["other", { password: "guest2" }]]));
    expect(c.matches("guest", stored)).toBe(true);
    expect(c.matches("other", stored)).toBe(false);
    // Two hashes of one password differ by their salt, and each matches.
    const a = rabbitHash("guest");
    const b = rabbitHash("guest");
    expect(a).not.toBe(b);
    expect(c.matches("guest", { hash: a, algorithm: stored.algorithm })).toBe(true);
    expect(c.matches("guest", { hash: rabbitHash("guest", undefined, "rabbit_password_hashing_sha512"), algorithm: "rabbit_password_hashing_sha512" })).toBe(true);
    expect(c.matches("guest", { hash: "", algorithm: stored.algorithm })).toBe(false);
    expect(c.matches("guest", { hash: stored.hash, algorithm: "some_plugin" })).toBe(false);
  });

  it("compares a password_hash as is, and sends a freshly salted hash for a password, never the password", () => {
    const h = rabbitHash("x");
    expect(isSha256Hash(h)).toBe(true);
    const c = credentials(new Map([["a", { hash: h }], ["b", { password: SECRET }]]));
    expect(c.matches("a", { hash: h, algorithm: "rabbit_password_hashing_sha256" })).toBe(true);
    expect(c.matches("a", { hash: rabbitHash("x"), algorithm: "rabbit_password_hashing_sha256" })).toBe(false);
    expect(c.hashFor("a")).toEqual({ password_hash: h, hashing_algorithm: "rabbit_password_hashing_sha256" });
    const sent = c.hashFor("b");
    expect(JSON.stringify(sent)).not.toContain(SECRET);
    expect(c.matches("b", { hash: sent.password_hash, algorithm: sent.hashing_algorithm })).toBe(true);
    // Nothing enumerable: serialising the object shows no password.
    expect(JSON.stringify(c)).toBe("{}");
  });
});

describe("the fingerprint a saved plan keeps of the users' passwords", () => {
  it("is scrypt at OWASP's cost, not a fast hash that whoever holds the plan (a CI artifact) could guess the passwords against", () => {
    const key = "00112233445566778899aabbccddeeff";
    const one = credentials(new Map([["mplogin", { password: "hunter22" }]]));
    // The key is in the plan beside the digest: an HMAC under it is as quick to guess against as a bare sha256.
    expect(one.fingerprint(key)).not.toBe(createHmac("sha256", key).update(JSON.stringify(["mplogin", "password", "hunter22"])).digest("hex"));
    // OWASP's password storage cheat sheet: scrypt with N=2^15, r=8, p=3 (or a costlier setting).
    expect(FINGERPRINT_SCRYPT.N).toBeGreaterThanOrEqual(2 ** 15);
    expect(FINGERPRINT_SCRYPT.r).toBeGreaterThanOrEqual(8);
    expect(FINGERPRINT_SCRYPT.N * FINGERPRINT_SCRYPT.r * FINGERPRINT_SCRYPT.p).toBeGreaterThanOrEqual(2 ** 15 * 8 * 3);
    expect(one.fingerprint(key)).toBe(scryptSync(JSON.stringify([["mplogin", "password", "hunter22"]]), key, 32, FINGERPRINT_SCRYPT).toString("hex"));
    // Still tells passwords apart, and a key apart.
    expect(credentials(new Map([["mplogin", { password: "hunter23" }]])).fingerprint(key)).not.toBe(one.fingerprint(key));
    expect(one.fingerprint(`${key}0`)).not.toBe(one.fingerprint(key));
  });
});

describe("normalize: the users section", () => {
  it("grants a user rights only on clusters where its services have queues", () => {
    const r = raw({
      services: ["mplogin", { name: "mppay", sync: false }],
      users: { pay: { password: "p", consumes: ["mppay"] } },
    });
    const sync = cluster(r, "sync");
    const async = cluster(r, "async");
    expect(sync.resources.filter((x) => x.kind === "user")).toEqual([]);
    expect(async.resources.filter((x) => x.kind === "user")).toEqual([{ kind: "user", name: "pay", tags: ["topo.mp"] }]);
    expect(async.resources.find((x) => x.kind === "permission")).toMatchObject({ user: "pay", read: "^mppay\\.async$", configure: "^$" });
  });

  it("does not say a user gets rights on no cluster when the cluster of its services is itself refused", () => {
    const r = users();
    r.clusters = { ...r.clusters, sync: { url: "amqp://u:p@h:99999/s" }, async: { url: "amqp://u:p@h:99999/a" } };
    const { problems } = normalize(r);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.map((p) => p.message)).not.toContainEqual(expect.stringMatching(/gets rights on no cluster/));
  });

  it("nor when the file's url was refused as it was read (an unset variable), which takes the cluster out before normalize", () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-users-"));
    const file = join(dir, "t.yaml");
    const text = (url: string) => `version: 1\nclusters:\n  sync:\n    url: ${url}/s\n  async:\n    url: ${url}/a\nservices: [mplogin]\nusers:\n  edge:\n    password: p\n    publishes: all\n`;
    writeFileSync(file, text("amqp://u:${TOPO_TEST_UNSET_PW}@h:5672"));
    const problems = (() => {
      try {
        loadConfig(file, {});
        return [];
      } catch (e) {
        return (e as { problems: { message: string }[] }).problems.map((p) => p.message);
      }
    })();
    expect(problems).toContainEqual(expect.stringMatching(/TOPO_TEST_UNSET_PW is not set/));
    expect(problems).not.toContainEqual(expect.stringMatching(/gets rights on no cluster/));
  });

  it("nor when its service's queue was left out for a problem reported at its own place (a refused setting, an unknown cluster, a refused entry)", () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-users-"));
    const file = join(dir, "t.yaml");
    writeFileSync(
      file,
      [
        "version: 1",
        "clusters:",
        "  sync: { url: amqp://u:p@h:5672/s }",
        "services:",
        "  - { name: mplogin, sync: false, async: { durable: maybe } }",
        "  - { name: mppay, sync: false, async: { cluster: nowhere } }",
        "  - { name: mpwallet, sync: false }",
        "  - { name: mpaudit, sync: false, bogus: 1 }",
        "  - { name: MpBad }",
        "  - { name: mpx_bad, sync: { cluster: nowhere }, async: false }",
        "users:",
        "  login: { password: p, consumes: [mplogin] }",
        "  pay: { password: p, consumes: [mppay] }",
        "  wallet: { password: p, consumes: [mpwallet] }",
        "  audit: { password: p, consumes: [mpaudit] }",
        "  edge: { password: p, publishes: all }",
        "  bad: { password: p, consumes: [MpBad, mpx_bad] }",
        "",
      ].join("\n"),
    );
    let problems: string[] = [];
    try {
      loadConfig(file, {});
    } catch (e) {
      problems = (e as { problems: { message: string }[] }).problems.map((p) => p.message);
    }
    expect(problems).toContainEqual(expect.stringMatching(/must be a boolean/));
    expect(problems).toContainEqual(expect.stringMatching(/unknown cluster "nowhere"/));
    expect(problems).toContainEqual(expect.stringMatching(/service name "MpBad" must match/));
    // Each of these users' services has a queue in the file, left out only for the problem above.
    expect(problems.filter((m) => /gets rights on no cluster|no service named/.test(m))).toEqual([]);
  });

  it("still says it of a user whose services really have no queue", () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-users-"));
    const file = join(dir, "t.yaml");
    writeFileSync(file, "version: 1\nclusters:\n  sync: { url: amqp://u:p@h:5672/s }\nservices:\n  - { name: mplogin, async: false }\n  - { name: mpwallet, sync: false, async: { durable: maybe } }\nusers:\n  login: { password: p, consumes: [mplogin] }\n  ghost: { password: p, consumes: [mplogin] }\n");
    let problems: string[] = [];
    try {
      loadConfig(file, {});
    } catch (e) {
      problems = (e as { problems: { message: string }[] }).problems.map((p) => p.message);
    }
    expect(problems).toEqual([expect.stringMatching(/must be a boolean/)]);
    const r = raw({ services: [{ name: "mplogin", sync: false, async: false }], users: { login: { password: "p", consumes: ["mplogin"] } } });
    expect(normalize(r).problems.map((p) => p.message)).toContainEqual(expect.stringMatching(/user login gets rights on no cluster/));
  });

  it("refuses a tag in topo's namespace other than the file's own marker: it would mark the user as another topology's, which could then take it over or delete it", () => {
    const { problems } = normalize(users({ tags: ["management", "topo.mp", "topo.other", "topo.mpx"] }));
    expect(problems.map((p) => `${p.path.join(".")}: ${p.message}`)).toEqual([
      `users.mplogin.tags.2: "topo.other" is in topo's namespace (topo.<prefix> marks a user as that prefix's topology's); topo adds this file's marker topo.mp itself: remove it`,
      `users.mplogin.tags.3: "topo.mpx" is in topo's namespace (topo.<prefix> marks a user as that prefix's topology's); topo adds this file's marker topo.mp itself: remove it`,
    ]);
    expect(cluster(users({ tags: ["management", "topo.mp"] })).resources.find((r) => r.kind === "user" && r.name === "mplogin")).toEqual({ kind: "user", name: "mplogin", tags: ["management", "topo.mp"] });
  });

  it("refuses what cannot be a user, each at its place", () => {
    const { problems } = normalize(
      raw({
        clusters: { sync: { url: "amqp://topo:p@h:5672/s" }, async: { url: "amqp://topo:p@h:5672/a" } },
        services: ["mplogin"],
        users: {
          both: { password: "a", password_hash: rabbitHash("a"), consumes: ["mplogin"] },
          none: { consumes: ["mplogin"] },
          badhash: { password_hash: "abc", consumes: ["mplogin"] },
          // 36 bytes decoded by a lenient decoder, but not base64 RabbitMQ takes (400 not_base64).
          padded: { password_hash: `${rabbitHash("a")}=`, consumes: ["mplogin"] },
          padded2: { password_hash: `${rabbitHash("a")}==`, consumes: ["mplogin"] },
          spaced: { password_hash: ` ${rabbitHash("a")}`, consumes: ["mplogin"] },
          good: { password_hash: rabbitHash("a"), consumes: ["mplogin"] },
          ghost: { password: "a", consumes: ["mpnothere"] },
          typo: { password: "a", consumes: ["mplogni"] },
          idle: { password: "a" },
          topo: { password: "a", consumes: ["mplogin"] },
        },
      }),
    );
    const by = (u: string) => problems.filter((p) => p.path[1] === u).map((p) => p.message);
    expect(by("both")).toEqual(["user both has both password and password_hash; give one"]);
    expect(by("none")[0]).toMatch(/^user none needs a password \(password: \$\{VAR\}\) or a password_hash/);
    expect(by("badhash")[0]).toMatch(/not a RabbitMQ sha256 password hash/);
    for (const u of ["padded", "padded2", "spaced"]) expect(by(u)[0], u).toMatch(/not a RabbitMQ sha256 password hash/);
    expect(by("good")).toEqual([]);
    expect(by("ghost")).toEqual(['no service named "mpnothere" in the file (services: mplogin)']);
    // One slip from a service of the file: the one meant, said.
    expect(by("typo")).toEqual(['no service named "mplogni" in the file; did you mean "mplogin"? (services: mplogin)']);
    expect(by("idle")[0]).toMatch(/neither consumes nor publishes/);
    expect(by("topo")[0]).toMatch(/is the user topo itself connects as/);
    // No problem quotes a password or a hash.
    expect(JSON.stringify(problems)).not.toMatch(/"a"|abc/);
  });

  it("shares users between clusters of one broker: both create them, only the first deletes", () => {
    const r = users();
    expect(cluster(r, "sync").users).toMatchObject({ onBroker: ["edge", "mplogin"], deletes: true, vhosts: ["s", "a"] });
    expect(cluster(r, "async").users).toMatchObject({ onBroker: ["edge", "mplogin"], deletes: false });
    const apart = cluster({ ...r, clusters: { sync: { url: "amqp://u:p@h1:5672/s" }, async: { url: "amqp://u:p@h2:5672/a" } } }, "async");
    expect(apart.users).toMatchObject({ deletes: true, vhosts: ["a"] });
  });

  it("manages no user without a users section", () => {
    expect(cluster(raw({ services: ["mplogin"] })).users).toBeUndefined();
  });
});

describe("diff: users, permissions and topic permissions", () => {
  it("creates them, then sees no change once the broker stores the same password under any salt", () => {
    const c = cluster();
    const fresh = diffCluster(c, actual([{ kind: "vhost", name: "s" }], { userHashes: {}, userVhosts: {} }), "mp");
    expect(fresh.actions.filter((a) => a.op === "create" && a.after.kind === "user").map((a) => a.key)).toEqual(["user|edge", "user|mplogin"]);
    const same = applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) });
    expect(diffCluster(c, same, "mp").actions).toEqual([]);
  });

  it("shows a changed password as the word (password), nowhere its value or either hash", () => {
    const c = cluster();
    const old = rabbitHash("the-old-one");
    const plan = diffCluster(c, applied(c, { edge: rabbitHash("edge-pass"), mplogin: old }), "mp");
    expect(plan.actions.map((a) => [a.op, a.key, a.op === "update" ? a.changed : []])).toEqual([["update", "user|mplogin", ["password"]]]);
    const text = renderText({ clusters: [plan] });
    expect(text).toContain("~ update user mplogin (password)");
    const json = JSON.stringify(planJson({ clusters: [plan] }));
    for (const out of [text, json]) {
      expect(out).not.toContain(SECRET);
      expect(out).not.toContain(old);
      expect(out).not.toContain("the-old-one");
    }
  });

  it("updates tags and permissions in place, listing old and new regexes", () => {
    const c = cluster(users({ tags: ["management"] }));
    const now = applied(cluster(), { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) });
    const loose = now.resources.map((r) => (r.kind === "permission" && r.user === "mplogin" ? { ...r, read: ".*" } : r));
    const plan = diffCluster(c, { ...now, resources: loose }, "mp");
    expect(plan.actions.map((a) => [a.op, a.key])).toEqual([
      ["update", "user|mplogin"],
      ["update", "permission|mplogin"],
    ]);
    const text = renderText({ clusters: [plan] });
    expect(text).toContain('~ update user mplogin (tags)\n      tags: ["topo.mp"] -> ["management","topo.mp"]');
    expect(text).toMatch(/~ update permission of mplogin\n\s+read: "\.\*" -> "\^\(\?:/);
  });

  it("revokes one exchange's topic permission to ^$ while others stay, and clears them when none stays", () => {
    const c = cluster();
    const stray: TopicPermission = { kind: "topic-permission", user: "mplogin", exchange: "mpold", write: "^mpold\\..*$", read: "^$" };
    const now = applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }, [stray, ...service("mpold", "sync")]);
    const plan = diffCluster(c, now, "mp").actions.filter((a) => a.key.startsWith("topic-permission"));
    expect(plan).toMatchObject([{ op: "update", key: "topic-permission|mplogin|mpold", after: { write: "^$", read: "^$" } }]);
    // Revoked: no more changes.
    const revoked = { ...now, resources: now.resources.map((r) => (r.kind === "topic-permission" && r.exchange === "mpold" ? { ...r, write: "^$" } : r)) };
    expect(diffCluster(c, revoked, "mp").actions.filter((a) => a.key.startsWith("topic-permission"))).toEqual([]);
    // An exchange already gone: RabbitMQ 4 would refuse the revoke, and the entry allows nothing.
    const gone0 = { ...now, resources: now.resources.filter((r) => !(r.kind === "exchange" && r.name === "mpold")) };
    expect(gone0.resources.some((r) => r.kind === "exchange" && r.name === "mpold")).toBe(false);
    expect(diffCluster(c, gone0, "mp").actions.filter((a) => a.key.startsWith("topic-permission"))).toEqual([]);
    // amq.topic is never in the listing (the broker's own), and always there: an entry of the
    // user's on it (an adopted user's, made by hand) is revoked like any other.
    const onAmq: TopicPermission = { kind: "topic-permission", user: "mplogin", exchange: "amq.topic", write: ".*", read: ".*" };
    const amq = applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }, [onAmq]);
    expect(diffCluster(c, amq, "mp").actions.filter((a) => a.key.startsWith("topic-permission"))).toMatchObject([{ op: "update", key: "topic-permission|mplogin|amq.topic", after: { write: "^$", read: "^$" } }]);
    // The user no longer publishes to other services: every entry but its own service's (its
    // retries) is revoked.
    const noPub = cluster(users({ publishes: [] }));
    const fewer = diffCluster(noPub, revoked, "mp").actions.filter((a) => a.key.startsWith("topic-permission|mplogin"));
    expect(fewer.map((a) => `${a.op} ${a.key}`)).toEqual(["update topic-permission|mplogin|mpwallet"]);
    // A user whose services have no queue on this cluster keeps no entry here: they go in one clear.
    const elsewhere = cluster(raw({ services: ["mplogin", "mpwallet", { name: "mpaudit", sync: false }], users: { edge: { password: "edge-pass", publishes: "all" }, mplogin: { password: SECRET, consumes: ["mpaudit"] } } }));
    const gone = diffCluster(elsewhere, revoked, "mp").actions.filter((a) => a.key.startsWith("topic-permission|mplogin"));
    expect(gone.map((a) => a.op)).toEqual(["delete", "delete", "delete"]);
  });

  it("deletes a marked user the file dropped, with its rights, but never an unmarked one or another topology's", () => {
    const c = cluster();
    const mine = { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) };
    const dropped: Resource[] = [
      { kind: "user", name: "mpold", tags: ["topo.mp"] },
      { kind: "permission", user: "mpold", configure: "^$", write: "^$", read: "^mpold\\.sync$" } satisfies Permission,
      { kind: "user", name: "alice", tags: ["administrator"] },
      { kind: "permission", user: "alice", configure: ".*", write: ".*", read: ".*" },
      { kind: "user", name: "otherteam", tags: ["topo.mp"] },
      { kind: "user", name: "nascent", tags: ["topo.mp"] },
    ];
    const now = applied(c, mine, dropped);
    now.userVhosts = { ...now.userVhosts, mpold: ["s"], alice: ["s"], otherteam: ["teamb"] };
    const plan = diffCluster(c, now, "mp");
    expect(plan.actions.map((a) => `${a.op} ${a.key}`)).toEqual(["delete user|mpold", "delete permission|mpold"]);
    expect(plan.warnings.join("\n")).toContain("left alone: user otherteam carries topo's tag but has permissions on vhost teamb that this file does not manage");
    // Marked but with no rights anywhere: maybe another apply is creating it. Never deleted.
    expect(plan.warnings.join("\n")).toContain("left alone: user nascent carries topo's tag but has permissions on no vhost");
    // The second cluster of the same broker does not delete (the first does).
    const second = cluster(users(), "async");
    expect(diffCluster(second, { ...now, resources: now.resources }, "mp").actions.filter((a) => a.op === "delete" && a.key.startsWith("user|"))).toEqual([]);
  });

  it("the second cluster of a broker deletes a dropped user whose only rights are on its own vhost: revoking them alone (apply --cluster) would leave a user nothing can delete", () => {
    const second = cluster(users(), "async");
    expect(second.users?.deletes).toBe(false);
    const now = applied(second, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }, [
      { kind: "user", name: "mppayold", tags: ["topo.mp"] },
      { kind: "permission", user: "mppayold", configure: "^$", write: "^$", read: "^mppay\\.async$" } satisfies Permission,
      { kind: "user", name: "both", tags: ["topo.mp"] },
      { kind: "permission", user: "both", configure: "^$", write: "^$", read: "^mpold\\.async$" } satisfies Permission,
    ]);
    now.userVhosts = { ...now.userVhosts, mppayold: ["a"], both: ["a", "s"] };
    const plan = diffCluster(second, now, "mp");
    // `both` has rights on the first cluster's vhost too: the first cluster deletes it.
    expect(plan.actions.map((a) => `${a.op} ${a.key}`)).toEqual(["delete user|mppayold", "delete permission|both", "delete permission|mppayold"]);
    expect(plan.warnings).toEqual([]);
  });

  it("never deletes or strips the user topo itself connects as, even when it carries topo's tag", () => {
    const c = cluster();
    const now = applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }, [
      { kind: "user", name: "u", tags: ["administrator", "topo.mp"] },
      { kind: "permission", user: "u", configure: ".*", write: ".*", read: ".*" },
    ]);
    now.userVhosts = { ...now.userVhosts, u: ["s"] };
    expect(diffCluster(c, now, "mp").actions).toEqual([]);
  });

  it("nor the user another cluster of the file connects as: a cluster that deletes users would take the other's own rights away", () => {
    // One broker, two vhosts, topo connecting to each as a different user.
    const r = users();
    r.clusters = { sync: { url: "amqp://opsa:p@h:5672/s" }, async: { url: "amqp://opsb:p@h:5672/a", management: "http://opsa:p@h:15672" } };
    const sync = cluster(r, "sync");
    expect(sync.users?.deletes).toBe(true);
    const now = applied(sync, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }, [
      { kind: "user", name: "opsb", tags: ["administrator", "topo.mp"] },
      { kind: "permission", user: "opsb", configure: ".*", write: ".*", read: ".*" },
    ]);
    now.userVhosts = { ...now.userVhosts, opsb: ["s", "a"] };
    expect(diffCluster(sync, now, "mp").actions).toEqual([]);
  });

  it("names a file user that exists unmarked (or is another prefix's) as a conflict, unless adopted", () => {
    const c = cluster();
    const now = actual([{ kind: "user", name: "mplogin", tags: [] }, { kind: "user", name: "edge", tags: ["topo.mpx"] }], { userHashes: {}, userVhosts: {} });
    expect(userConflicts(c, now, "mp").map((x) => x.message)).toEqual([
      "user edge exists and belongs to another topology (its tag is topo.mpx, not topo.mp); topo does not take it over",
      "user mplogin exists without topo's tag topo.mp (topo did not create it, or the tag was taken off it); topo never changes a user it does not manage",
    ]);
    const adopted = cluster(users({ adopt: true }));
    expect(userConflicts(adopted, now, "mp").map((x) => x.user)).toEqual(["edge"]);
    // Adopting marks it: tags and password are updated.
    const plan = diffCluster(adopted, { ...now, userHashes: { mplogin: { hash: rabbitHash("x"), algorithm: "rabbit_password_hashing_sha256" } } }, "mp");
    expect(plan.actions.find((a) => a.key === "user|mplogin")).toMatchObject({ op: "update", changed: ['tags: [] -> ["topo.mp"]', "password"] });
  });

  it("never adopts another topology's user: adopt takes a user without topo's tag, and the refusal does not advise adopt for one", () => {
    const r = users();
    (r.users as Record<string, Record<string, unknown>>).edge = { password: "edge-pass", publishes: "all", adopt: true };
    const now = actual([{ kind: "user", name: "edge", tags: ["topo.mpx"] }], { userHashes: {}, userVhosts: {} });
    const conflicts = userConflicts(cluster(r), now, "mp");
    expect(conflicts.map((x) => x.message)).toEqual(["user edge exists and belongs to another topology (its tag is topo.mpx, not topo.mp); topo does not take it over"]);
    expect(conflicts[0]?.hint).not.toMatch(/adopt: true/);
    expect(conflicts[0]?.hint).toMatch(/prefix "mpx"/);
  });

  // A user with two prefixes' markers was deleted by either file that did not list it, and taken
  // over (the other marker stripped, its rights rewritten) by one that did.
  it("a user that carries another prefix's marker beside this one's is both topologies': never deleted, never taken over, adopt or not", () => {
    const c = cluster();
    const now = applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }, [
      { kind: "user", name: "shared", tags: ["topo.mp", "topo.zz"] },
      { kind: "permission", user: "shared", configure: "", write: "", read: "^zzlogin\\.async$" } satisfies Permission,
    ]);
    now.userVhosts = { ...now.userVhosts, shared: ["s"] };
    expect(diffCluster(c, now, "mp").actions.filter((a) => a.key.includes("shared"))).toEqual([]);
    for (const adopt of [false, true]) {
      const r = users();
      (r.users as Record<string, Record<string, unknown>>).shared = { password: "shared-pass", consumes: ["mplogin"], ...(adopt ? { adopt: true } : {}) };
      const conflicts = userConflicts(cluster(r), now, "mp");
      expect(conflicts.map((x) => x.message)).toEqual(["user shared exists and belongs to another topology as well (it carries topo.zz beside topo.mp); topo does not take it over"]);
      expect(conflicts[0]?.hint).toMatch(/prefix "zz"/);
    }
  });

  it("says when a user's new password or tags reach vhosts the file does not manage (an adopted user, or one another topology of the prefix lists too)", () => {
    const c = cluster(users({ adopt: true }));
    const now = applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash("the other app's password") });
    now.userVhosts = { ...now.userVhosts, mplogin: ["s", "teamb", "teamc"] };
    const plan = diffCluster(c, now, "mp");
    expect(plan.actions.map((a) => `${a.op} ${a.key}`)).toEqual(["update user|mplogin"]);
    expect(plan.warnings).toEqual([
      `user mplogin also has permissions on vhosts teamb, teamc, which this file does not manage: its new password applies there too (a user is the broker's, not the vhost's), and whatever connects there as mplogin must then use the file's password; give the service a user of its own if they should not share it`,
    ]);
    // Tags alone: the same, naming what changes.
    now.resources = now.resources.map((r) => (r.kind === "user" && r.name === "mplogin" ? { ...r, tags: ["management", "topo.mp"] } : r));
    now.userHashes = { ...now.userHashes, mplogin: { hash: rabbitHash(SECRET), algorithm: "rabbit_password_hashing_sha256" } };
    expect(diffCluster(c, now, "mp").warnings).toEqual([
      `user mplogin also has permissions on vhosts teamb, teamc, which this file does not manage: its new tags apply there too (a user is the broker's, not the vhost's); give the service a user of its own if they should not share it`,
    ]);
    // Rights only in the file's vhosts (the other cluster's included), or no change: nothing to say.
    now.userVhosts = { ...now.userVhosts, mplogin: ["s", "a"] };
    expect(diffCluster(c, now, "mp").warnings).toEqual([]);
    now.userVhosts = { ...now.userVhosts, mplogin: ["s", "teamb"] };
    now.resources = now.resources.map((r) => (r.kind === "user" && r.name === "mplogin" ? { ...r, tags: ["topo.mp"] } : r));
    expect(diffCluster(c, now, "mp").warnings).toEqual([]);
  });

  it("compares nothing about users when the broker would not list them, and says so", () => {
    const c = cluster();
    const plan = diffCluster(c, actual(c.resources.filter((r) => !["user", "permission", "topic-permission"].includes(r.kind)), { usersUnreadable: "the management user mon may not list users (it needs the administrator tag)" }), "mp");
    expect(plan.actions).toEqual([]);
    expect(plan.warnings).toEqual(["users and permissions not compared: the management user mon may not list users (it needs the administrator tag); apply will refuse to run until topo may read them"]);
    // "No changes." would be untrue of what was not read: the last line says what was left out.
    expect(plan.notCompared).toEqual(["users and permissions"]);
    expect(renderText({ clusters: [plan] }).split("\n").at(-1)).toBe(`No changes in what plan compared; not compared: users and permissions (see "! warning" above).`);
    expect(planJson({ clusters: [plan] }).clusters).toMatchObject([{ notCompared: ["users and permissions"] }]);
    expect(renderText({ clusters: [plan] })).toContain("\n  no changes in what plan compared (not compared: users and permissions)\n");
    expect(renderMarkdown({ clusters: [plan] })).toContain("<summary>cluster sync: no changes in what plan compared (not compared: users and permissions)</summary>");
    const more = { ...plan, actions: diffCluster(c, actual([], { usersUnreadable: "x" }), "mp").actions };
    expect(renderText({ clusters: [more] }).split("\n").at(-1)).toMatch(/^Plan: \d+ to create, 0 to update, 0 to replace, 0 to delete\. Not compared: users and permissions \(see "! warning" above\)\.$/);
    // Read and compared: nothing to add.
    expect(diffCluster(c, applied(c, { edge: rabbitHash("edge-pass"), mplogin: rabbitHash(SECRET) }), "mp").notCompared).toEqual([]);
  });

  it("says users were not compared also where the file grants no one rights there (users: {} deletes every marked user)", () => {
    const c = cluster(raw({ services: ["mplogin"], users: {} }));
    expect(c.users?.onBroker).toEqual([]);
    const plan = diffCluster(c, actual(c.resources, { usersUnreadable: "the management user mon may not list users (it needs the administrator tag)" }), "mp");
    expect(plan.actions).toEqual([]);
    expect(plan.notCompared).toEqual(["users and permissions"]);
    expect(renderText({ clusters: [plan] }).split("\n").at(-1)).toBe(`No changes in what plan compared; not compared: users and permissions (see "! warning" above).`);
  });

  it("leaves everything about users alone for a desired state without users (a file without the section)", () => {
    const c = cluster(raw({ services: ["mplogin"] }));
    const now = actual([...c.resources, ...service("mplogin", "sync").slice(0, 0), { kind: "user", name: "x", tags: ["topo.mp"] }], { userHashes: {}, userVhosts: {} });
    expect(diffCluster(c, now, "mp").actions).toEqual([]);
  });
});

describe("import: the users section from the broker", () => {
  it("reads what each marked user consumes and publishes off its regexes, and never a password", () => {
    const c = cluster();
    const sync = importSource("s", [...c.resources.filter((r) => r.kind !== "vhost"), ...service("mplogin", "sync"), ...service("mpwallet", "sync")]);
    const other: Resource[] = [
      { kind: "user", name: "alice", tags: ["administrator"] },
      { kind: "permission", user: "alice", configure: ".*", write: ".*", read: ".*" },
      { kind: "user", name: "elsewhere", tags: ["topo.mp"] },
      { kind: "user", name: "idle", tags: ["topo.mp", "monitoring"] },
      { kind: "permission", user: "idle", configure: "^$", write: "^$", read: "^$" },
    ];
    sync.actual.resources.push(...other);
    const out = importUsers([sync], ["mplogin", "mpwallet"], "mp");
    expect(out.users).toEqual([
      // Every service, by name: `all` would grant it the services added to the file later too.
      { name: "edge", passwordEnv: "EDGE_PASSWORD", consumes: [], publishes: ["mplogin", "mpwallet"], tags: [] },
      { name: "mplogin", passwordEnv: "MPLOGIN_PASSWORD", consumes: ["mplogin"], publishes: ["mpwallet"], tags: [] },
    ]);
    // alice is not topo's; elsewhere has rights only on vhosts not imported; idle has none here.
    expect(out.skipped).toEqual([expect.stringMatching(/^user idle carries topo's tag topo\.mp but its permissions on these vhosts let it consume or publish to no service/)]);
    // Another topology's marker beside this one's: that topology's user as well, which a plan of
    // the file would refuse to take over; import leaves it out.
    const login = sync.actual.resources.find((r): r is User => r.kind === "user" && r.name === "mplogin")!;
    login.tags = ["management", "topo.mp", "topo.other"];
    const shared = importUsers([sync], ["mplogin", "mpwallet"], "mp");
    expect(shared.users.map((u) => u.name)).toEqual(["edge"]);
    expect(shared.skipped).toContain("user mplogin carries topo's tag topo.mp and another topology's (topo.other), so it is that topology's as well: import leaves it out, and a plan of the file never deletes or changes it");
  });

  it("leaves out, and says why, a marked user the file cannot hold: a name the schema refuses, or the user topo connects as; and a tag the file cannot hold", () => {
    // Anyone may tag a user topo.mp: one named "svc bot+1", or topo's own user. Writing them made
    // a file that did not validate, and import failed with "this is a bug in topo".
    const sync = importSource("s", [...service("mplogin", "sync")]);
    for (const name of ["svc bot+1", "ops", "ok"]) {
      sync.actual.resources.push({ kind: "user", name, tags: ["topo.mp", "odd tag", "management"] }, { kind: "permission", user: name, configure: "^$", write: "^$", read: "^mplogin\\.sync$" });
    }
    const out = importUsers([sync], ["mplogin"], "mp", [], ["ops"]);
    expect(out.users).toEqual([{ name: "ok", passwordEnv: "OK_PASSWORD", consumes: ["mplogin"], publishes: [], tags: ["management"] }]);
    expect(out.skipped).toEqual([
      `user ops carries topo's tag topo.mp but is the user topo connects as, which a file cannot list, so import leaves it out (a plan never deletes it)`,
      `user "svc bot+1" carries topo's tag topo.mp but a file cannot name it: a user name is 1 to 128 letters, digits, _ . @ and - (starting with a letter or a digit); import leaves it out (a plan of the file would delete it: rename it, or take topo's tag off it)`,
    ]);
    // The file cannot hold the tag "odd tag": plan of the imported file takes it off, and import lists that change.
    // The rules are the schema's.
    const schema = JSON.parse(readFileSync(join(import.meta.dirname, "../../schemas/topology.schema.json"), "utf8"));
    expect(USER_NAME_RULE.source).toBe(schema.properties.users.propertyNames.pattern);
    expect(USER_TAG_RULE.source).toBe(schema.definitions.user.properties.tags.items.pattern);
  });

  it("reads an empty permission as RabbitMQ does, allowing nothing, and names a pattern it cannot read rather than guess", () => {
    // JavaScript's empty RegExp matches every name: a user without rights was written consuming
    // and publishing every service, and apply gave it those rights.
    const sync = importSource("s", [...service("mplogin", "sync"), ...service("mpcart", "sync")]);
    const perms: [string, string, string][] = [
      ["none", "", ""],
      ["pub", "^mplogin$", ""],
      ["nocase", "", "(?i)^MPLOGIN\\.sync$"],
      ["anchors", "", "\\Ampcart\\.sync\\z"],
    ];
    for (const [name, write, read] of perms) sync.actual.resources.push({ kind: "user", name, tags: ["topo.mp"] }, { kind: "permission", user: name, configure: "", write, read });
    const out = importUsers([sync], ["mplogin", "mpcart"], "mp");
    expect(out.users.map((u) => [u.name, u.consumes, u.publishes])).toEqual([["pub", [], ["mplogin"]]]);
    const said = out.skipped.join("\n");
    expect(said).toMatch(/^user none carries topo's tag topo\.mp but its permissions on these vhosts let it consume or publish to no service/m);
    expect(said).toContain(`user nocase: topo cannot read its permission read "(?i)^MPLOGIN\\\\.sync$" on vhost s (RabbitMQ reads permissions as PCRE), so import counted it as allowing nothing`);
    expect(said).toContain(`user anchors: topo cannot read its permission read "\\\\Ampcart\\\\.sync\\\\z" on vhost s`);
  });

  it("gives each user a variable of its own, apart from those the clusters' urls read", () => {
    // hi.u2 and hi-u2 both read ${HI_U2_PASSWORD}, so one of the two passwords could not be given
    // and apply would set it to the other's; a user named rabbitmq would read the urls' variable.
    const sync = importSource("s", [...service("mplogin", "sync")]);
    for (const name of ["hi.u2", "hi-u2", "rabbitmq"]) {
      sync.actual.resources.push({ kind: "user", name, tags: ["topo.mp"] }, { kind: "permission", user: name, configure: "^$", write: "^$", read: "^mplogin\\.sync$" });
    }
    const out = importUsers([sync], ["mplogin"], "mp", ["RABBITMQ_PASSWORD"]);
    expect(out.users.map((u) => [u.name, u.passwordEnv])).toEqual([
      ["hi-u2", "HI_U2_PASSWORD"],
      ["hi.u2", "HI_U2_PASSWORD_2"],
      ["rabbitmq", "RABBITMQ_PASSWORD_2"],
    ]);
  });

  it("lists the password of a user the broker holds none for, and leaves every other password out", () => {
    // A file cannot say "no password": plan shows (password) for such a user whatever the variable
    // holds, and apply gives it a password login. import listed nothing.
    const sync = importSource("s", [...service("mplogin", "sync")]);
    sync.actual.userHashes = { kept: { hash: rabbitHash("x"), algorithm: "rabbit_password_hashing_sha256" } };
    const written = ["kept", "cert"].map((name) => ({ name, passwordEnv: passwordVariable(name), consumes: ["mplogin"], publishes: [], tags: [] }));
    const passwordless = passwordlessUsers(written, [sync]);
    expect([...passwordless]).toEqual([["cert", "CERT_PASSWORD"]]);
    // Users not read: nothing is known of their passwords.
    expect(passwordlessUsers(written, [importSource("s", [])]).size).toBe(0);
    const update = (name: string, changed: string[]) => ({ op: "update", key: `user|${name}`, changed, before: { kind: "user", name, tags: [] }, after: { kind: "user", name, tags: [] } }) as Action;
    const out = userChanges([update("kept", ["password"]), update("cert", ["password"]), update("both", ["tags", "password"])], passwordless);
    expect(out.map((c) => [(c.action as Extract<Action, { op: "update" }>).after, (c.action as Extract<Action, { op: "update" }>).changed])).toEqual([
      [{ kind: "user", name: "cert", tags: [] }, ["password"]],
      [{ kind: "user", name: "both", tags: [] }, ["tags"]],
    ]);
    expect(out[0]!.why).toContain("the broker holds no password for this user (it logs in with a client certificate, or not at all), and a file cannot say so: apply sets the value of ${CERT_PASSWORD} as its password");
    expect(userChanges([update("cert", ["password"])]).length).toBe(0);
  });

  it("names the password variable after the user, as an environment variable can be named", () => {
    expect(passwordVariable("mplogin")).toBe("MPLOGIN_PASSWORD");
    expect(passwordVariable("edge-1.prod@x")).toBe("EDGE_1_PROD_X_PASSWORD");
    expect(passwordVariable("1st")).toBe("U_1ST_PASSWORD");
  });
});

describe("export definitions and graph know users", () => {
  it("definitions carry each user with a freshly salted hash of its password, its permissions and topic permissions", () => {
    const c = cluster();
    const d = definitionsOf(c);
    const text = JSON.stringify(d);
    expect(text).not.toContain(SECRET);
    expect(d.users?.map((u) => [u.name, u.tags, u.hashing_algorithm])).toEqual([
      ["edge", "topo.mp", "rabbit_password_hashing_sha256"],
      ["mplogin", "topo.mp", "rabbit_password_hashing_sha256"],
    ]);
    const mine = d.users?.find((u) => u.name === "mplogin") as { password_hash: string };
    expect(credentials(new Map([["x", { password: SECRET }]])).matches("x", { hash: mine.password_hash, algorithm: "rabbit_password_hashing_sha256" })).toBe(true);
    // The cluster's AMQP user (u) gets every right on the vhost, as apply grants it on a vhost it
    // creates: without them an imported vhost refused u, and topo's plan with it.
    expect(d.permissions.map((p) => p.user)).toEqual(["u", "edge", "mplogin"]);
    expect(d.permissions[0]).toEqual({ user: "u", vhost: "s", configure: ".*", write: ".*", read: ".*" });
    expect(d.topic_permissions?.map((p) => `${p.user} ${p.exchange}`)).toEqual(["edge mplogin", "edge mpwallet", "mplogin mplogin", "mplogin mpwallet"]);
    const plain = definitionsOf(cluster(raw({ services: ["mplogin"] })));
    expect(plain.users).toBeUndefined();
    expect(plain.permissions).toEqual([{ user: "u", vhost: "s", configure: ".*", write: ".*", read: ".*" }]);
  });

  it("graph draws who consumes which queue and publishes to which exchange", () => {
    const { desired } = normalize(users());
    const g = renderGraph(desired, "mermaid");
    expect(g).toContain('u_sync_mplogin(["user mplogin"])');
    expect(g).toContain('q_sync_mplogin_sync -->|"consumes"| u_sync_mplogin');
    expect(g).toContain('u_sync_mplogin -->|"publishes"| x_sync_mpwallet');
    expect(g).not.toContain(SECRET);
  });
});
