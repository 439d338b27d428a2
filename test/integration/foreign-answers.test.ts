// A plan must not take what it could not read for what the broker holds. Between topo and the
// management API there may be a proxy, a gateway or a login page: their 404 is no word on the
// vhost, their 200 page is no listing, and a listing refused is not an empty one. Each case is
// answered by a proxy in front of the real management API, which passes every other request on.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { amqpUrl, api, runCli, testVhosts, uniqueName, writeFile } from "../helpers/broker.js";
import { managementProxy } from "../helpers/proxy.js";

const { fresh } = testVhosts();

/** What the proxy answers itself: for requests whose "METHOD /path" matches, this status, type and body. */
let rule: { match: RegExp; status: number; type: string; body: string; headers?: Record<string, string>; times?: number } | undefined;
let proxyUrl = "";
let close = (): void => {};

beforeAll(async () => {
  const proxy = await managementProxy({
    answer: (req, res) => {
      if (!rule?.match.test(`${req.method} ${req.url}`)) return false;
      // A rule for a number of times answers that many, then lets the requests through.
      if (rule.times !== undefined && rule.times-- <= 0) return false;
      req.resume();
      res.writeHead(rule.status, { "content-type": rule.type, ...rule.headers }).end(rule.body);
      return true;
    },
  });
  proxyUrl = proxy.url;
  close = proxy.close;
});
afterAll(() => close());

/** An applied async-only topology (no mirrored queue: nothing else is left uncompared), planned through the proxy. */
async function applied(): Promise<{ file: string; async: string; sync: string }> {
  const direct = fresh([{ name: "mplogin", sync: false }]);
  expect((await runCli(["apply", "-f", direct.file])).code).toBe(0);
  const { file } = fresh([{ name: "mplogin", sync: false }], { async: direct.async, sync: direct.sync, clusterExtra: { async: { management: proxyUrl } } });
  return { file, async: direct.async, sync: direct.sync };
}

const HTML = "text/html";
const NGINX_404 = "<html><h1>404 Not Found</h1>nginx</html>";

describe("what a plan could not read is not what the broker holds", () => {
  it("operator policies refused: plan says they were not compared, never a bare \"No changes.\"", async () => {
    const { file } = await applied();
    rule = { match: /^GET \/api\/operator-policies\//, status: 403, type: "application/json", body: JSON.stringify({ error: "not_authorised", reason: "Not administrator user" }) };
    try {
      const r = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
      expect(r.stdout).not.toMatch(/^No changes\.$/m);
      expect(r.stdout).toMatch(/No changes in what plan compared; not compared: operator policies/);
      expect(r.stdout + r.stderr).toMatch(/operator policies not compared: the management user \S+ could not read the vhost's operator policies/);
      const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
      expect(json.clusters.find((c: { name: string }) => c.name === "async").notCompared).toEqual(["operator policies"]);
    } finally {
      rule = undefined;
    }
  });

  for (const [what, match, status, type, body] of [
    ["a proxy's 404 page for the policies", /^GET \/api\/policies\//, 404, HTML, NGINX_404],
    ["a proxy's 404 page for the vhost's listings", /^GET \/api\/(exchanges|queues|bindings|policies)\//, 404, HTML, NGINX_404],
    ["a login page answered 200 for the exchanges", /^GET \/api\/exchanges\//, 200, HTML, "<html>Sign in</html>"],
    ["a queue listing cut short", /^GET \/api\/queues\//, 200, "application/json", '[{"name":"mplogin.async","type":"classic","durable":true,"excl'],
    ["an empty answer for the exchanges", /^GET \/api\/exchanges\//, 200, "application/json", ""],
    ["JSON that is no list for the queues", /^GET \/api\/queues\//, 200, "application/json", "{}"],
    ["null for the bindings", /^GET \/api\/bindings\//, 200, "application/json", "null"],
    ["a proxy's 401 page for the operator policies", /^GET \/api\/operator-policies\//, 401, HTML, "<html>401 Authorization Required</html>"],
  ] as const) {
    it(`${what}: broker_unreachable, naming the cluster and the request; no plan`, async () => {
      const { file } = await applied();
      rule = { match, status, type, body };
      try {
        const r = await runCli(["plan", "-f", file, "--detailed-exitcode", "--json"]);
        expect(r.code).toBe(1);
        const err = JSON.parse(r.stdout).error;
        expect(err.code).toBe("broker_unreachable");
        expect(err.message).toMatch(/^cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/\S+ -> not a management API answer: it answered /);
        expect(err.message).not.toMatch(/nginx|Sign in|Authorization Required/);
        const text = await runCli(["plan", "-f", file]);
        expect(text.stdout).not.toMatch(/create|No changes/);
        expect(text.stderr).toMatch(/hint: clusters\.async\.management must reach RabbitMQ's management API itself/);
      } finally {
        rule = undefined;
      }
    });
  }

  // RabbitMQ refuses a login in JSON; a proxy's own login in front of it answers a page. Taken for
  // the broker's, it was auth_failed with "the management API refused the credentials", and a
  // pipeline that branches on the code went to rotate a password that was right.
  it("a proxy's 401 page for the first request: broker_unreachable, pointing at the proxy, not auth_failed", async () => {
    const { file } = await applied();
    rule = { match: /^GET \/api\/cluster-name/, status: 401, type: HTML, body: "<html>401 Authorization Required</html>" };
    try {
      const r = await runCli(["plan", "-f", file, "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe("broker_unreachable");
      expect(err.message).toMatch(/^cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/cluster-name -> 401 /);
      expect(err.hints.join("\n")).toMatch(/a proxy or login page/);
      expect(err.hints.join("\n")).not.toMatch(/refused the credentials/);
    } finally {
      rule = undefined;
    }
  });

  // A limit on requests in front of the API: plan failed at once as broker_refused, with no hint.
  it("a 429 is tried again with backoff and said; one that lasts is broker_unreachable with what to do", async () => {
    const { file } = await applied();
    rule = { match: /^GET \/api\/queues\//, status: 429, type: "application/json", body: '{"error":"too many requests"}', headers: { "retry-after": "1" }, times: 1 };
    try {
      const once = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
      expect(once.code, once.stdout + once.stderr).toBe(0);
      expect(once.stderr).toMatch(/cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/queues\/\S+ -> 429 .*; trying again in \d+\.\d s \(try 2 of 5\)/);
      rule = { match: /^GET \/api\/queues\//, status: 429, type: "application/json", body: '{"error":"too many requests"}' };
      const lasting = await runCli(["plan", "-f", file, "--json"]);
      expect(lasting.code).toBe(1);
      const err = JSON.parse(lasting.stdout).error;
      expect(err.code).toBe("broker_unreachable");
      expect(err.hints.join("\n")).toMatch(/limits how many requests it takes \(429 Too Many Requests\), and topo tried again with backoff/);
    } finally {
      rule = undefined;
    }
  });

  it("another request's listing, or another vhost's, is no answer: broker_unreachable, never a plan", async () => {
    const { file, async } = await applied();
    const other = fresh([{ name: "mpother", sync: false }]);
    expect((await runCli(["apply", "-f", other.file])).code).toBe(0);
    const listing = async (path: string) => JSON.stringify((await api("GET", path)).body);
    const v = encodeURIComponent(async);
    const cases: [RegExp, string, RegExp][] = [
      // A cache that keys by vhost only: the queues for the exchanges, the exchanges for the queues.
      [/^GET \/api\/exchanges\//, await listing(`/api/queues/${v}?columns=name,vhost,type,durable,auto_delete,exclusive,arguments`), /its item 1 of \d+ \("[^"]+"\) lacks internal, so it is none of the exchanges of vhost/],
      [/^GET \/api\/queues\//, await listing(`/api/exchanges/${v}?columns=name,vhost,type,durable,auto_delete,internal,arguments`), /its item 1 of \d+ \(""\) is named "" \(the default exchange is; no queue is\), so it is none of the queues of vhost/],
      [/^GET \/api\/bindings\//, await listing(`/api/queues/${v}?columns=name,vhost`), /its item 1 of \d+ \("[^"]+"\) lacks source, so it is none of the bindings of vhost/],
      // Another vhost's, which would have planned its objects for this one (or "No changes.").
      [/^GET \/api\/exchanges\//, await listing(`/api/exchanges/${encodeURIComponent(other.async)}?columns=name,vhost,type`), /is of vhost topo-test-async-\w+, so it is none of the exchanges of vhost/],
    ];
    for (const [match, body, why] of cases) {
      rule = { match, status: 200, type: "application/json", body };
      try {
        const r = await runCli(["plan", "-f", file, "--detailed-exitcode", "--json"]);
        expect(r.code).toBe(1);
        const err = JSON.parse(r.stdout).error;
        expect(err.code).toBe("broker_unreachable");
        expect(err.message).toMatch(why);
      } finally {
        rule = undefined;
      }
    }
  });

  // A proxy or cache that answers items short of a field: a queue without `arguments` was read as
  // one without arguments (No changes. over a changed x-max-priority), an exchange without
  // `internal` as drifted (a replace apply carried out, then blamed on someone else).
  it("listing items short of a field their kind always has: broker_unreachable naming the item and the field, never a plan", async () => {
    const { file, async, sync } = await applied();
    // Real drift the plan must not hide: the queue declared again with x-max-priority.
    await api("DELETE", `/api/queues/${encodeURIComponent(async)}/mplogin.async`);
    await api("PUT", `/api/queues/${encodeURIComponent(async)}/mplogin.async`, { durable: true, auto_delete: false, arguments: { "x-max-priority": 5 } });
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(2);
    let strip: { path: RegExp; field: string } | undefined;
    const stripping = await managementProxy({
      change: (path, body) => {
        if (!strip?.path.test(path) || !Array.isArray(body)) return undefined;
        const field = strip.field;
        return body.map((x: Record<string, unknown>) => Object.fromEntries(Object.entries(x).filter(([k]) => k !== field)));
      },
    });
    try {
      const { file: through } = fresh([{ name: "mplogin", sync: false }], { async, sync, clusterExtra: { async: { management: stripping.url } } });
      for (const [path, field, item] of [
        [/^\/api\/queues\//, "arguments", /\("[^"]+"\)/],
        [/^\/api\/exchanges\//, "internal", /\("[^"]*"\)/],
        [/^\/api\/exchanges\//, "arguments", /\("[^"]*"\)/],
        [/^\/api\/bindings\//, "properties_key", /\("[^"]* -> [^"]+"\)/],
        [/^\/api\/bindings\//, "arguments", /\("[^"]* -> [^"]+"\)/],
        [/^\/api\/policies\//, "definition", /\("[^"]+"\)/],
      ] as const) {
        strip = { path, field };
        if (field === "definition") await api("PUT", `/api/policies/${encodeURIComponent(async)}/fa-unrelated`, { pattern: "^nothing$", definition: { "max-length": 1 }, "apply-to": "queues" });
        const r = await runCli(["plan", "-f", through, "--detailed-exitcode", "--json"]);
        expect(r.code, `${field}: ${r.stdout}`).toBe(1);
        const err = JSON.parse(r.stdout).error;
        expect(err.code).toBe("broker_unreachable");
        expect(err.message).toMatch(new RegExp(`-> not a management API answer: its item \\d+ of \\d+ ${item.source} lacks ${field}, so it is none of the \\w+ of vhost \\S+ asked for`));
      }
    } finally {
      strip = undefined;
      stripping.close();
    }
  });

  // The users' listing: a user whose tags were no list (12345) crashed plan as "internal", and one
  // whose tags were missing was read as untagged: user_conflict, with a hint to adopt it.
  it("a users listing whose tags are no list or missing: broker_unreachable naming the user and the field, never internal or user_conflict", async () => {
    const { async, sync } = await applied();
    const worker = uniqueName("fa_user").replace(/-/g, "_");
    let edit: ((u: Record<string, unknown>) => Record<string, unknown>) | undefined;
    let edited = /^\/api\/users\?/;
    const editing = await managementProxy({
      change: (path, body) => (edit && edited.test(path) && Array.isArray(body) ? body.map((u: Record<string, unknown>) => (u.name === worker && edit ? edit(u) : u)) : undefined),
    });
    const file = (management?: string, password = "fa-pw-1") =>
      writeFile(
        "topology.yaml",
        JSON.stringify({
          version: 1,
          // A prefix of its own: users are the whole broker's, and a user of prefix mp, made and
          // deleted here, made another test's saved plan (of prefix mp, with users) stale.
          prefix: "fa",
          clusters: { sync: { url: amqpUrl(sync), ...(management ? { management } : {}) }, async: { url: amqpUrl(async), ...(management ? { management } : {}) } },
          services: [{ name: "falogin", sync: false }],
          users: { [worker]: { password, consumes: ["falogin"] } },
        }),
      );
    try {
      expect((await runCli(["apply", "-f", file()])).code).toBe(0);
      const through = file(editing.url);
      expect((await runCli(["plan", "-f", through, "--detailed-exitcode"])).code).toBe(0);
      for (const [change, why] of [
        [(u: Record<string, unknown>) => ({ ...u, tags: 12345 }), "has tags that is not a list of tags"],
        [(u: Record<string, unknown>) => Object.fromEntries(Object.entries(u).filter(([k]) => k !== "tags")), "lacks tags"],
        [(u: Record<string, unknown>) => Object.fromEntries(Object.entries(u).filter(([k]) => k !== "password_hash")), "lacks password_hash"],
      ] as const) {
        edit = change;
        const r = await runCli(["plan", "-f", through, "--detailed-exitcode", "--json"]);
        expect(r.code, r.stdout + r.stderr).toBe(1);
        const err = JSON.parse(r.stdout).error;
        expect(err.code).toBe("broker_unreachable");
        expect(err.message).toMatch(new RegExp(`GET http://127\\.0\\.0\\.1:\\d+/api/users -> not a management API answer: its item \\d+ of \\d+ \\("${worker}"\\) ${why}, so it is none of the users asked for`));
      }
      // apply reads the users once more under its lock, before it writes one (user-writers.ts):
      // that answer is checked alike, not taken for a user someone changed since the plan.
      edit = (u) => ({ ...u, tags: 12345 });
      edited = /^\/api\/users\?columns=name,password_hash,tags(?:&topo_fresh=[^&]*)?$/;
      const r = await runCli(["apply", "-f", file(editing.url, "fa-pw-2"), "--json"]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe("broker_unreachable");
      expect(err.message).toMatch(new RegExp(`its item \\d+ of \\d+ \\("${worker}"\\) has tags that is not a list of tags, so it is none of the users asked for`));
      edit = undefined;
      expect((await runCli(["plan", "-f", file(undefined, "fa-pw-1"), "--detailed-exitcode"])).code).toBe(0);
    } finally {
      edit = undefined;
      editing.close();
      await api("DELETE", `/api/users/${worker}`);
    }
  });

  // The queue listing names the policy that applies to each queue; a policy list from before the
  // policy came (a cache) said "No changes." over a max-length that drops what passes 10.
  it("a policy the queue listing names and the policy list lacks: read again, then broker_unreachable, never \"No changes.\"", async () => {
    const { file, async, sync } = await applied();
    await api("PUT", `/api/policies/${encodeURIComponent(async)}/fa-cap`, { pattern: "^mplogin\\.async$", definition: { "max-length": 10 }, "apply-to": "queues", priority: 5 });
    const direct = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(direct.code).toBe(2);
    expect(direct.stdout).toMatch(/degraded: policy "fa-cap" sets max-length 10 on 1 queue \(mplogin\.async\)/);
    let policyGets = 0;
    const stale = await managementProxy({
      change: (path, body) => {
        if (!/^\/api\/policies\//.test(path) || !Array.isArray(body)) return undefined;
        policyGets++;
        return body.filter((p: { name: string }) => p.name !== "fa-cap");
      },
    });
    try {
      const { file: through } = fresh([{ name: "mplogin", sync: false }], { async, sync, clusterExtra: { async: { management: stale.url } } });
      const r = await runCli(["plan", "-f", through, "--detailed-exitcode"]);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).not.toMatch(/No changes/);
      expect(r.stderr).toMatch(/cluster async: vhost \S+: the broker's answers disagree: GET \/api\/queues\/\S+ says policy "fa-cap" applies to queue mplogin\.async, and GET \/api\/policies\/\S+ lists no policy of that name, after 7\.5 s of reading both again/);
      expect(r.stderr).toMatch(/hint: rabbitmqctl list_policies -p \S+ shows the vhost's policies: if it lists "fa-cap", a cache or proxy in between answers with stale data, and clusters\.async\.management must reach RabbitMQ's management API itself/);
      // Read once, then three times again.
      expect(policyGets).toBe(4);
      // A policy that comes while the plan reads is found when it reads again: the plan is made.
      policyGets = 0;
      const late = await managementProxy({
        change: (path, body) => {
          if (!/^\/api\/policies\//.test(path) || !Array.isArray(body)) return undefined;
          return policyGets++ === 0 ? body.filter((p: { name: string }) => p.name !== "fa-cap") : undefined;
        },
      });
      try {
        const { file: lateFile } = fresh([{ name: "mplogin", sync: false }], { async, sync, clusterExtra: { async: { management: late.url } } });
        const ok = await runCli(["plan", "-f", lateFile, "--detailed-exitcode"]);
        expect(ok.code, ok.stderr).toBe(2);
        expect(ok.stdout).toMatch(/degraded: policy "fa-cap" sets max-length 10 on 1 queue \(mplogin\.async\)/);
      } finally {
        late.close();
      }
    } finally {
      stale.close();
    }
  });

  it("an answer cut off mid-body on every try: broker_unreachable, saying so and what to do", async () => {
    const { async, sync } = await applied();
    const cutting = await managementProxy({
      answer: (req, res) => {
        if (!/^\/api\/bindings\//.test(req.url ?? "")) return false;
        req.resume();
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('[{"source":"mplogin","vhost":');
        setTimeout(() => res.socket?.destroy(), 20);
        return true;
      },
    });
    try {
      const { file: through } = fresh([{ name: "mplogin", sync: false }], { async, sync, clusterExtra: { async: { management: cutting.url } } });
      const r = await runCli(["plan", "-f", through, "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe("broker_unreachable");
      expect(err.message).toMatch(/^cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/bindings\/\S+ -> /);
      expect(err.hints.join("\n")).toMatch(/the connection was closed before the answer was complete, on every try: .* run topo again, and if it keeps happening, check what sits in between/);
    } finally {
      cutting.close();
    }
  });

  it("a proxy that decodes %2F in paths: the vhost it cannot reach is not taken for missing", async () => {
    const vhost = `fa-${Date.now().toString(36)}/x`;
    const { file } = fresh([{ name: "mplogin", sync: false }], { async: vhost });
    expect((await runCli(["apply", "-f", file, "--cluster", "async"])).code).toBe(0);
    const decoding = await managementProxy({ rewrite: (path) => path.replace(/%2F/gi, "/") });
    try {
      const through = fresh([{ name: "mplogin", sync: false }], { async: vhost, clusterExtra: { async: { management: decoding.url } } });
      const r = await runCli(["plan", "-f", through.file, "--cluster", "async", "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.code, err.message).toBe("broker_unreachable");
      // RabbitMQ, asked /api/bindings/VHOST/x, answers 406 without its JSON error; the listings it
      // answers 404 are checked against /api/vhosts, which names the vhost.
      expect(err.message).toMatch(/-> 406|which \/api\/vhosts lists: something between topo and RabbitMQ changes the path \(a proxy that decodes %2F\)/);
      expect(err.hints.join("\n")).toMatch(/changes the path it asks \(one that decodes %2F in a vhost's name\)|a proxy or cache in between answers for it/);
    } finally {
      decoding.close();
      await api("DELETE", `/api/vhosts/${encodeURIComponent(vhost)}`);
    }
  });

  it("a message-total listing that lacks a queue the plan deletes: no plan shows it as empty", async () => {
    const { async } = await applied();
    // Another service's file on the same vhost would delete mplogin's queue.
    const { file } = fresh([{ name: "mpother", sync: false }], { async, clusterExtra: { async: { management: proxyUrl } } });
    const totals = (await api("GET", `/api/queues/${encodeURIComponent(async)}?columns=name,vhost,messages,messages_unacknowledged`)).body as { name: string }[];
    rule = { match: /enable_queue_totals=true/, status: 200, type: "application/json", body: JSON.stringify(totals.filter((q) => q.name !== "mplogin.async")) };
    try {
      const r = await runCli(["plan", "-f", file, "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe("broker_unreachable");
      expect(err.message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/api\/queues\/\S+ -> not a management API answer: it lacks queue mplogin\.async, which the vhost's queue listing holds/);
    } finally {
      rule = undefined;
    }
  });

  it("a write answered by a page is not taken for made: apply stops there, naming the request", async () => {
    const { file, async } = fresh([{ name: "mplogin", sync: false }], { clusterExtra: { async: { management: proxyUrl } } });
    rule = { match: /^PUT \/api\/vhosts\//, status: 200, type: HTML, body: "<html>Sign in</html>" };
    try {
      const r = await runCli(["apply", "-f", file, "--cluster", "async"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cluster async: PUT http:\/\/127\.0\.0\.1:\d+\/api\/vhosts\/\S+ -> not a management API answer: it answered 200 \(text\/html\) with text that is not JSON/);
      expect(r.stderr).toMatch(/cluster async: 0 of \d+ changes were confirmed made before the failure; not confirmed \(writes sent before it may have been made too: topo plan --cluster async shows what is left\):\n {4}\+ create vhost /);
      expect(r.stderr).not.toMatch(/Sign in/);
      expect((await api("GET", `/api/vhosts/${encodeURIComponent(async)}`)).status).toBe(404);
    } finally {
      rule = undefined;
    }
  });

  // A cache in front of the management API that ignores RabbitMQ's `cache-control: no-cache`
  // (nginx's proxy_cache with proxy_ignore_headers Cache-Control, a "micro-cache" for the
  // management UI's polling) gave a plan the listings of the plan before: "No changes." over an
  // exchange deleted by hand, and an apply that did nothing said the broker matched the file.
  for (const [what, cache] of [
    ["keyed by the whole URI, no Age header (nginx)", { key: (path: string) => path }],
    ["keyed by the path alone, with an Age header (a cache that drops the query)", { key: (path: string) => path.split("?")[0] ?? path, age: true }],
  ] as const) {
    it(`a cache that gives back earlier answers, ${what}: never "No changes." over drift it hid`, async () => {
      const direct = fresh([{ name: "mplogin", sync: false }]);
      expect((await runCli(["apply", "-f", direct.file])).code).toBe(0);
      const caching = await managementProxy({ cache });
      try {
        const { file } = fresh([{ name: "mplogin", sync: false }], { async: direct.async, sync: direct.sync, clusterExtra: { async: { management: caching.url } } });
        // The cache fills with what a plan reads.
        await runCli(["plan", "-f", file]);
        await api("DELETE", `/api/exchanges/${encodeURIComponent(direct.async)}/mplogin`);
        expect((await runCli(["plan", "-f", direct.file, "--detailed-exitcode"])).code).toBe(2);
        // Stored more than a second ago: the Age a cache sends is then 1 or more.
        await new Promise((r) => setTimeout(r, 1_100));
        if (!("age" in cache)) {
          // Each read is the broker's: the drift is seen.
          const r = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
          expect(r.code, r.stdout + r.stderr).toBe(2);
          expect(r.stdout).toMatch(/^ {2}\+ create exchange mplogin \(topic, durable\)$/m);
          expect(r.stdout).not.toMatch(/No changes/);
        } else {
          const r = await runCli(["plan", "-f", file, "--detailed-exitcode", "--json"]);
          // A cache that keys by the path alone cannot be got past: its stored answer is refused.
          expect(r.code, r.stdout + r.stderr).toBe(1);
          const err = JSON.parse(r.stdout).error;
          expect(err.code).toBe("broker_unreachable");
          expect(err.message).toMatch(/^cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/\S+ -> not a management API answer: it answered 200 with Age: \d+, an answer a cache in between stored \d+ s ago \(RabbitMQ sends no Age header\), so it says what the broker held then, not now$/);
          expect(err.hints.join("\n")).toMatch(/clusters\.async\.management must reach RabbitMQ's management API itself \(http:\/\/<host>:15672, https on 15671\); a cache in between answers for it/);
        }
      } finally {
        caching.close();
      }
    });
  }

  it("a gateway's 503 after every retry is broker_unreachable, and a redirect says where it goes", async () => {
    const { file } = await applied();
    rule = { match: /^GET \/api\/queues\//, status: 503, type: HTML, body: "<html><body>503 Service Temporarily Unavailable</body></html>" };
    try {
      const r = await runCli(["plan", "-f", file, "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe("broker_unreachable");
      expect(err.message).toMatch(/\/api\/queues\/\S+ -> 503/);
      rule = { match: /^GET \/api\/queues\//, status: 302, type: HTML, body: "", headers: { location: "https://sso.example/login?next=/api/queues" } };
      const moved = await runCli(["plan", "-f", file]);
      expect(moved.code).toBe(1);
      expect(moved.stderr).toMatch(/\/api\/queues\/\S+ -> 302: it redirects to https:\/\/sso\.example\/login\?next=\/api\/queues/);
      expect(moved.stderr).toMatch(/hint: clusters\.async\.management must reach RabbitMQ's management API itself/);
    } finally {
      rule = undefined;
    }
  });
});
