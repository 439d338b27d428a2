// Fail fast, and say exactly what is wrong (issue #11): wrong ports, missing rights, Ctrl-C and
// one change count. Each test runs the real CLI against the real broker and checks the exit code,
// the words and, for the fail-fast cases, the time taken (bounds generous for a busy machine).

import { spawn } from "node:child_process";
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { adminManagementUrl, amqpUrl, api, broker, CLI, createVhost, publish, runCli, uniqueName, vh, testVhosts, withChannel, writeTopology } from "../helpers/broker.js";
import { ManagementClient } from "../../src/broker/http.js";
import { amqpProxy } from "../helpers/proxy.js";
import type { BrokerError } from "../../src/errors.js";

const { fresh, vhosts } = testVhosts();
const users: string[] = [];
afterEach(async () => {
  await Promise.all(users.splice(0).map((u) => api("DELETE", `/api/users/${encodeURIComponent(u)}`)));
});

async function user(tags: string): Promise<{ user: string; password: string }> {
  const name = uniqueName("user");
  users.push(name);
  expect((await api("PUT", `/api/users/${name}`, { password: "pw-secret", tags })).status).toBeLessThan(300);
  return { user: name, password: "pw-secret" };
}

/**
 * A management URL as a user who writes policies but may not read other users' permissions (tags
 * policymaker and monitoring, full rights on `vhosts`): apply then cannot check the AMQP user's
 * permissions before it writes, and the broker's own refusal is what names them.
 */
async function policymakerManagementUrl(...vhosts: string[]): Promise<string> {
  const u = await user("policymaker,monitoring");
  for (const v of vhosts) expect((await api("PUT", `/api/permissions/${vh(v)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
  const b = broker();
  return `http://${u.user}:${u.password}@${b.host}:${new URL(b.mgmtBase).port}`;
}

async function timed(args: string[]) {
  const started = Date.now();
  const r = await runCli(args);
  return { ...r, ms: Date.now() - started };
}

/** A local port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe("wrong ports fail at once", () => {
  it("an AMQP url where nothing listens fails plan and apply at once, without reconnecting", async () => {
    const port = await closedPort();
    const b = broker();
    const { file } = fresh(["mplogin"], { clusterExtra: { sync: { url: `amqp://${b.user}:${b.password}@${b.host}:${port}/x` } } });
    for (const cmd of ["plan", "apply"]) {
      const r = await timed([cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cluster sync: connect amqp://.*:${port}/x -> .*ECONNREFUSED`));
      expect(r.stderr).toMatch(/hint: nothing accepts AMQP connections/);
      expect(r.stderr).not.toMatch(/reconnecting|cluster sync: cluster sync:/);
      expect(r.ms).toBeLessThan(15_000);
    }
  });

  it("two clusters wrong in different ways (one's AMQP port, the other's management port): plan and apply name both", async () => {
    const [amqpPort, mgmtPort] = [await closedPort(), await closedPort()];
    const b = broker();
    const { file } = fresh(["mplogin"], {
      clusterExtra: { sync: { url: `amqp://${b.user}:${b.password}@${b.host}:${amqpPort}/x` }, async: { management: `http://${b.host}:${mgmtPort}` } },
    });
    for (const cmd of ["plan", "apply"]) {
      const r = await timed([cmd, "-f", file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cluster sync: connect amqp://.*:${amqpPort}/x -> .*ECONNREFUSED`));
      expect(r.stderr).toMatch(new RegExp(`cluster async: GET http://.*:${mgmtPort}/api/.* -> connect ECONNREFUSED 127\\.0\\.0\\.1:${mgmtPort}\n`));
      expect(r.ms).toBeLessThan(15_000);
    }
  });

  it("a management URL on the AMQP port says it is not a management API and suggests 15672", async () => {
    const b = broker();
    const { file } = fresh(["mplogin"], { clusterExtra: { sync: { management: `http://${b.host}:${b.amqpPort}` } } });
    for (const cmd of ["plan", "apply"]) {
      const r = await timed([cmd, "-f", file, "--cluster", "sync", "--json"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not a management API/);
      expect(r.stderr).toMatch(/hint: set clusters\.sync\.management to the management API, usually http:\/\/.*:15672/);
      expect(r.stderr).not.toMatch(/Parse Error/);
      expect(JSON.parse(r.stdout).error.code).toBe("broker_unreachable");
      expect(r.ms).toBeLessThan(15_000);
    }
  });

  it("an HTTP server that is not RabbitMQ's management API is named as such, with neither its page nor the credentials it echoes", async () => {
    // What a wrong management URL reaches: a web server's 404 page, a proxy's redirect to a login
    // page, a server that allows no GET, a debug endpoint that echoes the request (Authorization included).
    const replies: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
      "404 page": (_req, res) => res.writeHead(404, { "content-type": "text/html" }).end("<html><body><h1>404 Not Found</h1><hr>nginx</body></html>"),
      "redirect": (req, res) => res.writeHead(302, { location: `https://sso.example.com/login?next=${req.url}` }).end(),
      "405": (_req, res) => res.writeHead(405, { "content-type": "text/plain" }).end("Method Not Allowed"),
      // Its other paths answer at once: whichever reply comes first, the probe's verdict is the one said.
      "slow probe": (req, res) => {
        const page = () => res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
        if (req.url?.startsWith("/api/cluster-name")) setTimeout(page, 500);
        else page();
      },
      "echo": (req, res) => res.writeHead(400, { "content-type": "text/plain" }).end(`bad request: ${req.method} ${req.url} authorization=${req.headers.authorization}`),
    };
    const password = "Pw-echoed-4711";
    const b = broker();
    for (const [what, reply] of Object.entries(replies)) {
      const server = createHttpServer(reply);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      try {
        const port = (server.address() as { port: number }).port;
        const { file } = fresh(["mplogin"], { clusterExtra: { sync: { url: `amqp://${b.user}:${password}@${b.host}:${b.amqpPort}/x`, management: `http://127.0.0.1:${port}` } } });
        const r = await runCli(["plan", "-f", file, "--cluster", "sync", "--json"]);
        const all = r.stdout + r.stderr;
        expect(r.code, what).toBe(1);
        expect(JSON.parse(r.stdout).error.code, `${what}\n${all}`).toBe("broker_unreachable");
        expect(r.stderr, what).toMatch(new RegExp(`cluster sync: GET http://127\\.0\\.0\\.1:${port}/api/cluster-name -> not a management API: `));
        expect(r.stderr, what).toMatch(/hint: set clusters\.sync\.management to the management API/);
        expect(all, what).not.toMatch(/<html|the object or vhost does not exist/);
        expect(all, what).not.toContain(Buffer.from(`${b.user}:${password}`).toString("base64"));
        expect(all, what).not.toContain(password);
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
    }
  });

  it("https:// or amqps:// on a plain port: says the port does not speak TLS, without OpenSSL's dump, broker_unreachable", async () => {
    const b = broker();
    const mgmt = new URL(b.mgmtBase);
    const { file } = fresh(["mplogin"], {
      clusterExtra: { sync: { management: `https://${mgmt.host}` }, async: { url: `amqps://${b.user}:${b.password}@${b.host}:${b.amqpPort}/x` } },
    });
    for (const cluster of ["sync", "async"]) {
      const r = await timed(["plan", "-f", file, "--cluster", cluster, "--json"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cluster ${cluster}: .* -> .*wrong version number`));
      expect(r.stderr).toMatch(/hint: the port does not speak TLS/);
      expect(r.stderr).not.toMatch(/SSL routines|openssl|0A00010B/);
      expect(JSON.parse(r.stdout).error.code).toBe("broker_unreachable");
    }
  });

  it("a port that accepts and never answers (Erlang distribution, 25672) fails within the probe's bound", async () => {
    const b = broker();
    const { file: mgmt } = fresh(["mplogin"], { clusterExtra: { sync: { management: `http://${b.host}:25672` } } });
    const m = await timed(["plan", "-f", mgmt, "--cluster", "sync"]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/is this a management API\?|not a management API/);
    expect(m.stderr).toMatch(/:15672/);
    expect(m.ms).toBeLessThan(15_000);

    const { file: amqp } = fresh(["mplogin"], { clusterExtra: { sync: { url: `amqp://${b.user}:${b.password}@${b.host}:25672/x`, management: b.mgmtBase } } });
    const a = await timed(["apply", "-f", amqp, "--cluster", "sync"]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/not an AMQP broker/);
    expect(a.ms).toBeLessThan(15_000);
  });
});

/**
 * A proxy in front of the real management API that holds the answers `hold` names: for ever
 * ("never"), or for that many milliseconds; everything else passes straight through.
 */
async function slowManagement(hold: (url: string) => number | "never" | undefined) {
  const real = new URL(broker().mgmtBase);
  const held: ServerResponse[] = [];
  const proxy = createHttpServer((req, res) => {
    const wait = hold(req.url ?? "");
    if (wait === "never") return void held.push(res);
    const pass = () => {
      const up = httpRequest({ host: real.hostname, port: real.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      req.pipe(up);
    };
    if (wait === undefined) pass();
    else setTimeout(pass, wait);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  return {
    port: (proxy.address() as { port: number }).port,
    close: async () => {
      for (const res of held) res.destroy();
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    },
  };
}

describe("a busy broker is neither a wrong URL nor a dead one", () => {
  it("a management API whose overview is slow (a broker of many queues totals them for it) is not taken for a wrong URL", async () => {
    // /api/overview never answers, as on a broker whose overview sums tens of thousands of queues
    // for longer than the probe waits (6.8 s measured at 30,000 queues on the shared 3.10 broker).
    const b = broker();
    const proxy = await slowManagement((url) => (url.startsWith("/api/overview") ? "never" : undefined));
    try {
      const { file } = fresh(["mplogin"], { clusterExtra: { sync: { management: `http://${b.user}:${b.password}@127.0.0.1:${proxy.port}` } } });
      const r = await runCli(["plan", "-f", file, "--cluster", "sync"]);
      expect(r.stderr).not.toMatch(/not a management API/);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Plan: 5 to create/);
    } finally {
      await proxy.close();
    }
  });

  it("a listing of the vhost that takes longer than an ordinary request's 30 s (a vhost of 25,000 services on a busy broker) is waited for", async () => {
    // Measured on a slow 2-core machine: the ten requests of the read of two 25,000-service vhosts
    // took 19 to 42 s while the broker worked on the statistics of their 50,000 queues.
    const b = broker();
    const { sync, file: direct } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", direct, "--cluster", "sync"])).code).toBe(0);
    const proxy = await slowManagement((url) => (url.startsWith("/api/bindings/") ? 32_000 : undefined));
    try {
      const file = writeTopology({ sync, async: `${sync}-unused`, services: ["mplogin"], clusterExtra: { sync: { management: `http://${b.user}:${b.password}@127.0.0.1:${proxy.port}` } } });
      const r = await runCli(["plan", "-f", file, "--cluster", "sync", "--detailed-exitcode"]);
      expect(r.stderr).not.toMatch(/no answer within/);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/No changes\./);
    } finally {
      await proxy.close();
    }
  }, 90_000);
});

describe("a missing right is named, with the command that grants it", () => {
  it("a user without the management tag: permission_denied and set_user_tags ... monitoring", async () => {
    const u = await user("");
    const { sync, file } = fresh(["mplogin"], { credentials: u });
    await createVhost(sync);
    await api("PUT", `/api/permissions/${vh(sync)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    const r = await runCli(["plan", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/401 not_authorised: Not management user/);
    // Its tags cannot be read (not even /api/whoami answers it): the command says to keep them.
    expect(r.stderr).toContain(`rabbitmqctl set_user_tags ${u.user} TAGS... monitoring, where TAGS are the tags it has now (rabbitmqctl list_users shows them`);
    expect(r.stderr).not.toMatch(/check the user and password|check them/);
    expect(JSON.parse(r.stdout).error.code).toBe("permission_denied");
  });

  // With the vhosts there, every cluster opens its session before any writes; where apply will
  // create a vhost, it checks the login alone before creating it.
  for (const vhostsExist of [true, false]) {
    const title = vhostsExist
      ? "a wrong AMQP password on one cluster (its management API logs in) stops apply before any cluster is written"
      : "a wrong AMQP password on a cluster whose vhost apply creates stops apply before any vhost is created";
    it(title, async () => {
      const b = broker();
      const [sync, async] = [uniqueName("sync"), uniqueName("async")];
      vhosts.push(sync, async);
      const file = writeTopology({
        sync,
        async,
        services: ["mplogin", "mpwallet"],
        clusterExtra: { sync: { url: amqpUrl(sync, { user: b.user, password: "wrong-amqp-pw" }), management: adminManagementUrl() } },
      });
      if (vhostsExist) {
        await createVhost(sync);
        await createVhost(async);
      }
      const r = await runCli(["apply", "-f", file, "--json"]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("auth_failed");
      expect(r.stderr).toMatch(/cluster sync: connect amqp:\/\/.* -> ACCESS_REFUSED/);
      expect(r.stderr).not.toMatch(/applying|applied|were made/);
      if (!vhostsExist) {
        for (const v of [sync, async]) expect((await api("GET", `/api/vhosts/${vh(v)}`)).status, v).toBe(404);
        return;
      }
      // Nothing was written on the other cluster either: not its objects, nor topo's apply mark.
      const exchanges = (await api("GET", `/api/exchanges/${vh(async)}?columns=name`)).body as { name: string }[];
      expect(exchanges.map((e) => e.name).filter((n) => !n.startsWith("amq.") && n !== "")).toEqual([]);
    });
  }

  // A no-change apply makes no AMQP connection, so a plan read only through the management API
  // said "No changes." (exit 0 with --detailed-exitcode) while the file's AMQP credentials were
  // wrong, or its user had no rights on the vhost: the next apply with a change failed.
  it("plan checks the AMQP login too: a wrong password is auth_failed, a user without rights on the vhost permission_denied, with no changes", async () => {
    const b = broker();
    const u = await user("");
    const { sync, async, file } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const withUrl = (url: string) => writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { async: { url, management: adminManagementUrl() } } });
    const wrong = await runCli(["plan", "-f", withUrl(amqpUrl(async, { user: b.user, password: "wrong-amqp-pw" })), "--detailed-exitcode", "--json"]);
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout).error).toMatchObject({ code: "auth_failed", cluster: "async" });
    expect(wrong.stderr).toMatch(/cluster async: connect amqp:\/\/.* -> ACCESS_REFUSED/);
    expect(wrong.stderr).not.toContain("wrong-amqp-pw");
    const unpermitted = await runCli(["plan", "-f", withUrl(amqpUrl(async, { user: u.user, password: u.password })), "--detailed-exitcode"]);
    expect(unpermitted.code).toBe(1);
    expect(unpermitted.stderr).toContain(`access to vhost '${async}' refused for user '${u.user}'`);
    expect(unpermitted.stderr).toContain(`rabbitmqctl set_permissions -p ${async} ${u.user} '.*' '.*' '.*'`);
    // Once it may use the vhost, the same file plans as it did.
    await api("PUT", `/api/permissions/${vh(async)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    expect((await runCli(["plan", "-f", withUrl(amqpUrl(async, { user: u.user, password: u.password })), "--detailed-exitcode"])).code).toBe(0);
  });

  // The hint of a refused login named the key alone ("check them in clusters.async.url"), whose
  // text in a deploy job's file is ${VAR}: what was wrong was the variable's value.
  it("a refused login names the variables its user name and password are put in from, beside the key", async () => {
    const b = broker();
    const { sync, async } = fresh(["mplogin"]);
    const at = (u: string) => u.replace(/\/\/([^@]*)@/, `//${b.user}:\${TOPO_TEST_LOGIN_PW}@`);
    const amqp = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { async: { url: at(amqpUrl(async)), management: adminManagementUrl() } } });
    const r = await runCli(["plan", "-f", amqp], { TOPO_TEST_LOGIN_PW: "wrong-amqp-pw" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`check them in clusters.async.url and in what \${TOPO_TEST_LOGIN_PW} holds (put in as it is set, percent-encoded where a URL needs it)`);
    // The management API logs in with the url's user-info when its own URL has none.
    const management = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { async: { url: at(amqpUrl(async)), management: b.mgmtBase } } });
    const m = await runCli(["plan", "-f", management], { TOPO_TEST_LOGIN_PW: "wrong-amqp-pw" });
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(`check them in clusters.async (url or management) and in what \${TOPO_TEST_LOGIN_PW} holds`);
    // A password written in the file is named by its key alone.
    const literal = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { async: { url: amqpUrl(async, { user: b.user, password: "wrong-amqp-pw" }), management: adminManagementUrl() } } });
    const l = await runCli(["plan", "-f", literal]);
    expect(l.stderr).toMatch(/check them in clusters\.async\.url\n/);
    for (const x of [r, m, l]) expect(x.stdout + x.stderr).not.toContain("wrong-amqp-pw");
  });

  // A proxy in front of the broker that passes its connection.start on and resets the connection
  // at the login: plan took the reset for a port that did not answer, left it to apply, and showed
  // its plan (exit 2 here, with vhosts to create) for a wrong password as for a right one.
  it("plan that cannot check the AMQP login (reset when the login is sent) says so, for a right password as for a wrong one", async () => {
    const b = broker();
    const { sync, async } = fresh(["mplogin"]);
    const proxy = await amqpProxy();
    proxy.resetLogins();
    try {
      for (const password of ["wrong-amqp-pw", b.password]) {
        const url = `amqp://${b.user}:${encodeURIComponent(password)}@127.0.0.1:${proxy.port}/${vh(async)}`;
        const through = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { async: { url, management: adminManagementUrl() } } });
        const r = await runCli(["plan", "-f", through, "--detailed-exitcode", "--json"]);
        expect(r.code).toBe(1);
        expect(JSON.parse(r.stdout).error).toMatchObject({ code: "broker_unreachable", cluster: "async" });
        expect(r.stderr).toContain(`cluster async: connect amqp://${b.user}:***@127.0.0.1:${proxy.port}/${vh(async)} -> `);
        expect(r.stderr).toContain(`hint: the login of "${b.user}" could not be checked: 127.0.0.1:${proxy.port} greeted the connection (connection.start) and dropped it when topo sent the login`);
        expect(r.stderr).not.toContain("wrong-amqp-pw");
      }
    } finally {
      await proxy.close();
    }
  });

  // The AMQP login succeeds, but the user may not configure topo's lock queue: found only when
  // that cluster takes its lock, where the management user may not read the AMQP user's
  // permissions (an administrator's read finds it before: see "in one run" below). Whichever
  // cluster locks first, no cluster writes.
  for (const denied of ["sync", "async"] as const) {
    it(`a user who may not declare topo's lock queue on the ${denied} cluster stops apply before any cluster is written`, async () => {
      const u = await user("");
      const [sync, async] = [uniqueName("sync"), uniqueName("async")];
      vhosts.push(sync, async);
      await createVhost(sync);
      await createVhost(async);
      const target = denied === "sync" ? sync : async;
      // Configure only the services' own names: not topo's lock queue or apply mark.
      expect((await api("PUT", `/api/permissions/${vh(target)}/${u.user}`, { configure: "^mp", write: ".*", read: ".*" })).status).toBeLessThan(300);
      const file = writeTopology({
        sync,
        async,
        services: ["mplogin", "mpwallet"],
        clusterExtra: { [denied]: { url: amqpUrl(target, u), management: await policymakerManagementUrl(target) } },
      });
      const r = await runCli(["apply", "-f", file, "--json"]);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("permission_denied");
      expect(r.stderr).toMatch(new RegExp(`access to queue 'topo\\.[\\w.]*lock' in vhost '${target}' refused for user '${u.user}'`));
      expect(r.stderr).not.toMatch(/applying|applied/);
      const other = denied === "sync" ? "async" : "sync";
      expect(r.stderr).toContain(`cluster ${other}: stopped before writing: cluster ${denied} failed before any cluster wrote`);
      for (const v of [sync, async]) {
        const exchanges = (await api("GET", `/api/exchanges/${vh(v)}?columns=name`)).body as { name: string }[];
        expect(exchanges.map((e) => e.name).filter((n) => !n.startsWith("amq.") && n !== ""), v).toEqual([]);
        expect((await api("GET", `/api/queues/${vh(v)}?columns=name`)).body, v).toEqual([]);
      }
    });
  }

  // The lock is a queue declared (configure) and consumed (read): each refusal names the right it
  // lacks, and granting it (all else as it was) lets apply through. The broker's refusal names it
  // where the management user may not read permissions; an administrator's read, before anything
  // is written.
  for (const [lacks, rights] of [
    ["configure", { configure: "^mp", write: ".*", read: ".*" }],
    ["read", { configure: ".*", write: ".*", read: "^mp" }],
  ] as const) {
    it(`a user whose ${lacks} permission does not match topo's lock queue is told that permission, and granting it lets apply through`, async () => {
      const u = await user("");
      const [sync, async] = [uniqueName("sync"), uniqueName("async")];
      vhosts.push(sync, async);
      await createVhost(sync);
      await createVhost(async);
      expect((await api("PUT", `/api/permissions/${vh(sync)}/${u.user}`, rights)).status).toBeLessThan(300);
      const file = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { sync: { url: amqpUrl(sync, u), management: await policymakerManagementUrl(sync) } } });
      const r = await runCli(["apply", "-f", file, "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
      expect(err.code).toBe("permission_denied");
      expect(err.hints.join("\n")).toMatch(new RegExp(`^user ${u.user}'s ${lacks} permission in vhost ${sync} does not match queue topo\\.[\\w.]*lock:`));
      const admin = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { sync: { url: amqpUrl(sync, u), management: adminManagementUrl() } } });
      const read = await runCli(["apply", "-f", admin, "--json"]);
      expect(read.code).toBe(1);
      expect(JSON.parse(read.stdout.slice(read.stdout.lastIndexOf('{"error"'))).error.code).toBe("permission_denied");
      expect(read.stderr).toMatch(new RegExp(`cluster sync: user ${u.user}'s permissions in vhost ${sync} do not let apply work: its ${lacks} permission \\(\\^mp\\) does not match queue topo\\.[\\w.]*lock\\b`));
      expect((await api("PUT", `/api/permissions/${vh(sync)}/${u.user}`, { ...rights, [lacks]: ".*" })).status).toBeLessThan(300);
      const again = await runCli(["apply", "-f", file]);
      expect(again.code, again.stderr).toBe(0);
    });
  }

  for (const [lacks, rights, refused] of [
    // The move back publishes through the default exchange, after the old queue is gone.
    ["no write on amq.default", { configure: ".*", write: "^(?!amq\\.default$)", read: ".*" }, "write permission in vhost VHOST does not match exchange amq.default"],
    // The old queue is deleted once its messages are in the holding queue.
    ["no configure on the queue", { configure: "^(?!mplogin\\.async$)", write: ".*", read: ".*" }, "configure permission in vhost VHOST does not match queue mplogin.async"],
  ] as const) {
    it(`a replace the AMQP user may not finish (${lacks}) stops before it writes, with every message still in the queue`, async () => {
      // The management user may not read the AMQP user's permissions, so plan cannot judge them:
      // the broker refused the replace only after its messages were in the holding queue, and the
      // bindings routed new ones there, where no worker takes them.
      const u = await user("");
      const [sync, async] = [uniqueName("sync"), uniqueName("async")];
      vhosts.push(sync, async);
      const before = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false }] });
      expect((await runCli(["apply", "-f", before])).code).toBe(0);
      const url = { url: amqpUrl(async, u), management: await policymakerManagementUrl(async) };
      expect((await api("PUT", `/api/permissions/${vh(async)}/${u.user}`, rights)).status).toBeLessThan(300);
      await publish(async, "mplogin", "mplogin.async.t", ["held"]);
      const after = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000 } } }], clusterExtra: { async: url } });
      const r = await runCli(["apply", "-f", after, "--allow-destructive", "--json"]);
      expect(r.code).toBe(1);
      const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
      expect(err.code).toBe("permission_denied");
      expect(err.hints.join("\n")).toContain(`user ${u.user}'s ${refused.replace("VHOST", async)}`);
      // Nor does it say the replace stopped half-way, which would send the reader to the holding queue.
      expect(err.message).not.toMatch(/half-way|was being replaced/);
      // Nothing of the replace was written: no holding queue, the message and binding where they were.
      expect((await api("GET", `/api/queues/${vh(async)}/topo.hold.mplogin.async`)).status).toBe(404);
      expect((await api("GET", `/api/queues/${vh(async)}/mplogin.async`)).body.arguments).toEqual({});
      expect((await withChannel(async, (ch) => ch.checkQueue("mplogin.async"))).messageCount).toBe(1);
      expect((await api("GET", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`)).body.map((b: { routing_key: string }) => b.routing_key)).toEqual(["mplogin.async.#"]);
      expect((await api("PUT", `/api/permissions/${vh(async)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
      const again = await runCli(["apply", "-f", after, "--allow-destructive"]);
      expect(again.code, again.stderr).toBe(0);
      expect((await withChannel(async, (ch) => ch.checkQueue("mplogin.async"))).messageCount).toBe(1);
    });
  }

  it("a binding delete the management user's own vhost permissions refuse, where it may not read them: plan warns, apply refuses before writing, naming the broker's reply and not its credentials", async () => {
    // A binding with arguments is removed over the management API, which checks the management
    // user's permissions in the vhost (here a plan-only user's, ^$ ^$ .*), not the AMQP user's. A
    // policymaker may not read permissions: topo asks the broker with an unbind as that user that
    // matches no binding. Before, apply wrote the sync cluster and stopped at this unbind.
    const { sync, async, file } = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`, { routing_key: "mplogin.async.#", arguments: { "x-a": 1 } })).status).toBeLessThan(300);
    // Drift on the other cluster, which apply wrote first.
    expect((await api("DELETE", `/api/bindings/${vh(sync)}/e/mplogin/q/mplogin.sync/${encodeURIComponent("mplogin.sync.#")}`)).status).toBeLessThan(300);
    const mgmt = await policymakerManagementUrl(sync, async);
    const name = new URL(mgmt).username;
    expect((await api("PUT", `/api/permissions/${vh(async)}/${name}`, { configure: "^$", write: "^$", read: ".*" })).status).toBeLessThan(300);
    const narrow = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { sync: { url: amqpUrl(sync), management: mgmt }, async: { url: amqpUrl(async), management: mgmt } } });
    const refusal = `user ${name} may not remove a binding with arguments that apply removes through the management API, which checks the management user's own permissions in vhost ${async}, not the AMQP user's; asked as ${name} with an unbind that matches no binding, the broker refused: mplogin -> mplogin.async [mplogin.async.#]: 403 ACCESS_REFUSED - access to queue 'mplogin.async' in vhost '${async}' refused for user '${name}'`;
    const plan = await runCli(["plan", "-f", narrow]);
    expect(plan.stdout).toContain(`apply refuses this plan before writing anything: ${refusal}`);
    const r = await runCli(["apply", "-f", narrow, "--allow-destructive", "--json"]);
    expect(r.code).toBe(1);
    const err = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error;
    expect(err.code).toBe("permission_denied");
    expect(r.stderr).toContain(refusal);
    const hints = err.hints.join("\n");
    expect(hints).not.toMatch(/credentials/);
    expect(hints).toContain(`removing a binding needs write on its destination and read on its source (from a topic exchange, also the read topic permission of its routing key): rabbitmqctl list_user_permissions ${name} shows its patterns, and rabbitmqctl set_permissions -p ${async} ${name} CONFIGURE WRITE READ sets them`);
    // Nothing was written on either cluster, and the question removed nothing.
    const keys = async (v: string, q: string) => (await api("GET", `/api/bindings/${vh(v)}/e/mplogin/q/${q}`)).body.map((b: { routing_key: string; arguments: object }) => [b.routing_key, b.arguments]);
    expect(await keys(sync, "mplogin.sync")).toEqual([]);
    expect(await keys(async, "mplogin.async")).toEqual(expect.arrayContaining([["mplogin.async.#", {}], ["mplogin.async.#", { "x-a": 1 }]]));
    expect((await api("PUT", `/api/permissions/${vh(async)}/${name}`, { configure: "^$", write: "^mplogin\\.async$", read: ".*" })).status).toBeLessThan(300);
    const again = await runCli(["apply", "-f", narrow, "--allow-destructive"]);
    expect(again.code, again.stderr).toBe(0);
    expect(await keys(sync, "mplogin.sync")).toEqual([["mplogin.sync.#", {}]]);
    expect(await keys(async, "mplogin.async")).toEqual([["mplogin.async.#", {}]]);
  });

  it("a non-administrator management user whose topic permission refuses a keyed binding's routing key: refused before writing, as the management API's delete would be", async () => {
    // An unbind from a topic exchange also checks the read topic permission of its key, in the
    // management API's delete as over AMQP (both refused, measured on 3.10.8, 4.0.5 and 4.3.6).
    const { sync, async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`, { routing_key: "mplogin.async.audit", arguments: { "x-a": 1 } })).status).toBeLessThan(300);
    const mgmt = await policymakerManagementUrl(async);
    const name = new URL(mgmt).username;
    expect((await api("PUT", `/api/topic-permissions/${vh(async)}/${name}`, { exchange: "mplogin", write: ".*", read: "^mplogin\\.async\\.#$" })).status).toBeLessThan(300);
    const narrow = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false }], clusterExtra: { async: { url: amqpUrl(async), management: mgmt } } });
    const r = await runCli(["apply", "-f", narrow, "--allow-destructive"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the broker refused: mplogin -> mplogin.async [mplogin.async.audit]: 403 ACCESS_REFUSED - access to topic 'mplogin.async.audit' in exchange 'mplogin' in vhost '${async}' refused for user '${name}'`);
    expect((await api("GET", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`)).body.map((b: { routing_key: string }) => b.routing_key).sort()).toEqual(["mplogin.async.#", "mplogin.async.audit"]);
    expect((await api("DELETE", `/api/topic-permissions/${vh(async)}/${name}`)).status).toBeLessThan(300);
    const again = await runCli(["apply", "-f", narrow, "--allow-destructive"]);
    expect(again.code, again.stderr).toBe(0);
    expect((await api("GET", `/api/bindings/${vh(async)}/e/mplogin/q/mplogin.async`)).body.map((b: { routing_key: string }) => b.routing_key)).toEqual(["mplogin.async.#"]);
  });

  it("a non-administrator management user refused a replace's keyed unbind: refused before the holding queue is made, every message and binding where it was", async () => {
    // A replace unbinds the queue's bindings with arguments through the management API, after it
    // has made the holding queue and bound it: a policymaker without write on the queue stopped
    // the replace there, with both queues bound and every new message reaching both.
    const { sync, async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/amq.headers/q/mplogin.async`, { routing_key: "", arguments: { "x-match": "all", k: "v" } })).status).toBeLessThan(300);
    await publish(async, "mplogin", "mplogin.async.t", ["held"]);
    const mgmt = await policymakerManagementUrl(async);
    const name = new URL(mgmt).username;
    expect((await api("PUT", `/api/permissions/${vh(async)}/${name}`, { configure: ".*", write: "^(?!mplogin\\.async$)", read: ".*" })).status).toBeLessThan(300);
    const after = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000 } } }], clusterExtra: { async: { url: amqpUrl(async), management: mgmt } } });
    const r = await runCli(["apply", "-f", after, "--allow-destructive", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("permission_denied");
    expect(r.stderr).toContain(`the broker refused: amq.headers -> mplogin.async []: 403 ACCESS_REFUSED - access to queue 'mplogin.async' in vhost '${async}' refused for user '${name}'`);
    // The holding queue's name is the user's to write: not refused, and not made either.
    expect(r.stderr).not.toContain("topo.hold.mplogin.async []");
    expect(r.stderr).not.toMatch(/half-way|was being replaced/);
    expect((await api("GET", `/api/queues/${vh(async)}/topo.hold.mplogin.async`)).status).toBe(404);
    expect((await api("GET", `/api/queues/${vh(async)}/mplogin.async`)).body.arguments).toEqual({});
    expect((await withChannel(async, (ch) => ch.checkQueue("mplogin.async"))).messageCount).toBe(1);
    expect((await api("GET", `/api/bindings/${vh(async)}/e/amq.headers/q/mplogin.async`)).body.map((b: { arguments: object }) => b.arguments)).toEqual([{ "x-match": "all", k: "v" }]);
    expect((await api("PUT", `/api/permissions/${vh(async)}/${name}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
    const again = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(again.code, again.stderr).toBe(0);
    expect((await withChannel(async, (ch) => ch.checkQueue("mplogin.async"))).messageCount).toBe(1);
    expect((await api("GET", `/api/bindings/${vh(async)}/e/amq.headers/q/mplogin.async`)).body.map((b: { arguments: object }) => b.arguments)).toEqual([{ "x-match": "all", k: "v" }]);
  });

  it("an administrator management user whose own vhost permissions refuse a binding's removal: a replace is refused before anything is written, and the permissions named let it through", async () => {
    // An administrator reads the vhost whatever its permissions there, but the management API
    // removes a binding with arguments with them: a replace stopped half-way, its holding queue
    // bound beside the queue (every new message went to both), at the unbind of a user's headers
    // binding from the old queue.
    const { sync, async, file } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    expect((await api("POST", `/api/bindings/${vh(async)}/e/amq.headers/q/mplogin.async`, { routing_key: "", arguments: { "x-match": "all", k: "v" } })).status).toBeLessThan(300);
    await publish(async, "mplogin", "mplogin.async.t", ["held"]);
    const admin = await user("administrator");
    const b = broker();
    const mgmt = `http://${admin.user}:${admin.password}@${b.host}:${new URL(b.mgmtBase).port}`;
    const after = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-length": 1000 } } }], clusterExtra: { async: { url: amqpUrl(async), management: mgmt } } });
    const refusal = `user ${admin.user} has no permissions in vhost ${async} (the management API removes bindings with arguments with the management user's own permissions, not the AMQP user's): it needs write on queue mplogin.async, queue topo.hold.mplogin.async; it needs read on exchange amq.headers`;
    const plan = await runCli(["plan", "-f", after]);
    expect(plan.stdout).toContain(`apply refuses this plan before writing anything: ${refusal}`);
    const r = await runCli(["apply", "-f", after, "--allow-destructive", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("permission_denied");
    expect(r.stderr).toContain(refusal);
    expect(r.stderr).toContain(`rabbitmqctl set_permissions -p ${async} ${admin.user} '' '^(?:mplogin\\.async|topo\\.hold\\.mplogin\\.async)$' '^(?:amq\\.headers)$' grants exactly what is named above`);
    expect((await api("GET", `/api/queues/${vh(async)}/topo.hold.mplogin.async`)).status).toBe(404);
    expect((await api("GET", `/api/queues/${vh(async)}/mplogin.async`)).body.arguments).toEqual({});
    expect((await withChannel(async, (ch) => ch.checkQueue("mplogin.async"))).messageCount).toBe(1);
    // What the refusal names, and no more, is enough.
    expect((await api("PUT", `/api/permissions/${vh(async)}/${admin.user}`, { configure: "", write: "^(?:mplogin\\.async|topo\\.hold\\.mplogin\\.async)$", read: "^(?:amq\\.headers)$" })).status).toBeLessThan(300);
    const again = await runCli(["apply", "-f", after, "--allow-destructive"]);
    expect(again.code, again.stderr).toBe(0);
    expect((await withChannel(async, (ch) => ch.checkQueue("mplogin.async"))).messageCount).toBe(1);
  }, 120_000);

  it("a request refused for a tag the user lacks: set_user_tags keeps the tags it has", async () => {
    const u = await user("management,deployer");
    const b = broker();
    const client = new ManagementClient("sync", { baseUrl: b.mgmtBase, username: u.user, password: u.password, display: b.mgmtBase }, {});
    try {
      const e = await client.get("/api/users").then(() => undefined, (x: unknown) => x as BrokerError);
      expect(e?.message).toMatch(/401 not_authorised: Not administrator user/);
      expect(e?.code).toBe("permission_denied");
      expect(e?.hints.join("\n")).toContain(`rabbitmqctl set_user_tags ${u.user} management deployer administrator (set_user_tags replaces the user's tags: this keeps the 2 tags it has, management, deployer)`);
    } finally {
      client.close();
    }
  });

  it("a wrong password is still auth_failed", async () => {
    const u = await user("monitoring");
    const { file } = fresh(["mplogin"], { credentials: { user: u.user, password: "wrong" } });
    const r = await runCli(["plan", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Login failed/);
    expect(JSON.parse(r.stdout).error.code).toBe("auth_failed");
  });

  it("a management user without permission on the vhost: set_permissions -p VHOST USER", async () => {
    const u = await user("management");
    const { sync, file } = fresh(["mplogin"], { credentials: u });
    await createVhost(sync);
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file, "--cluster", "sync", "--json"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`rabbitmqctl set_permissions -p ${sync} ${u.user} '.*' '.*' '.*'`);
      expect(JSON.parse(r.stdout).error.code).toBe("permission_denied");
    }
  });

  it("a non-administrator whose vhost does not exist yet: add_vhost, or the administrator tag", async () => {
    const u = await user("management");
    const { sync, file } = fresh(["mplogin"], { credentials: u });
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Not administrator user/);
    expect(r.stderr).toContain(`rabbitmqctl add_vhost ${sync} && rabbitmqctl set_permissions -p ${sync} ${u.user} '.*' '.*' '.*'`);
    expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error.code).toBe("permission_denied");
  });

  it("an AMQP user without permission on the vhost gets the broker's 530 words, not 'Expected ConnectionOpenOk'", async () => {
    const u = await user("");
    const { sync, file } = fresh(["mplogin"], { credentials: u, clusterExtra: { sync: { management: adminManagementUrl() } } });
    await createVhost(sync);
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`530 NOT_ALLOWED - access to vhost '${sync}' refused for user '${u.user}'`));
    expect(r.stderr).not.toMatch(/Expected ConnectionOpenOk/);
    expect(r.stderr).toContain(`rabbitmqctl set_permissions -p ${sync} ${u.user} '.*' '.*' '.*'`);
    expect(r.stderr).not.toContain("pw-secret");
    expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{"error"'))).error).toMatchObject({ code: "permission_denied", cluster: "sync" });
  });
});

describe("a broker's limit is named, with where it is set, and never taken for a missing right", () => {
  /** The error object of a --json run, from the last JSON document on stdout. */
  const errorOf = (stdout: string) => JSON.parse(stdout.slice(stdout.lastIndexOf('{"error"'))).error as { code: string; message: string; hints: string[] };

  it("a vhost's max-connections: reported at once (not waited out as a vhost being created), with set_vhost_limits", async () => {
    const { sync, file } = fresh(["mplogin"]);
    await createVhost(sync);
    expect((await api("PUT", `/api/vhost-limits/${vh(sync)}/max-connections`, { value: 0 })).status).toBeLessThan(300);
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`access to vhost '${sync}' refused for user '.*': connection limit \\(0\\) is reached`));
    expect(r.stderr).toContain(`hint: vhost "${sync}" has reached its limit of 0 connections (max-connections; rabbitmqctl list_vhost_limits -p ${sync} shows it, and 0 means the vhost accepts none)`);
    expect(r.stderr).toContain(`rabbitmqctl set_vhost_limits -p ${sync} '{"max-connections": 1}'`);
    // The vhost's own refusal of a user it does not know yet is waited out; a limit is not.
    expect(r.stderr).not.toMatch(/trying again|has no permissions/);
    expect(errorOf(r.stdout).code).toBe("broker_refused");
    // plan says so too: a limit of 0 is no limit full for a moment, and the apply it shows could never connect.
    const plan = await runCli(["plan", "-f", file, "--cluster", "sync", "--detailed-exitcode"]);
    expect(plan.code).toBe(1);
    expect(plan.stderr).toContain(`hint: vhost "${sync}" has reached its limit of 0 connections`);
    // Advice a plan can follow: it writes nothing, and running apply is not what it needs.
    expect(plan.stderr).toContain("then run the command again");
    expect(plan.stderr).not.toMatch(/while it writes|run topo apply again/);
  });

  it("a user's max-connections: names the user and set_user_limits, not the vhost's rights", async () => {
    const u = await user("");
    const { sync, file } = fresh(["mplogin"], { credentials: u, clusterExtra: { sync: { management: adminManagementUrl() } } });
    await createVhost(sync);
    await api("PUT", `/api/permissions/${vh(sync)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    expect((await api("PUT", `/api/user-limits/${u.user}/max-connections`, { value: 0 })).status).toBeLessThan(300);
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`connection refused for user '${u.user}': user connection limit \\(0\\) is reached`));
    expect(r.stderr).toContain(`hint: user "${u.user}" has reached its limit of 0 open connections (max-connections; rabbitmqctl list_user_limits --user ${u.user} shows it)`);
    expect(r.stderr).not.toMatch(/trying again|has no permissions|set_permissions/);
    expect(r.stderr).not.toContain("pw-secret");
    expect(errorOf(r.stdout).code).toBe("broker_refused");
  });

  // The broker counts a user's channels over all its connections and closes the connection that
  // opens one too many (530), whatever was under way: apply stopped at its first 65th channel, and
  // a replace with max-channels 2 stopped part-way with two holding queues left. apply reads the
  // user's max-channels (GET /api/user-limits/USER) and keeps within it as within channel_max.
  it("a user's max-channels below what apply opens: apply writes within it and says so", async () => {
    const u = await user("");
    // 300 services: 900 declares and binds, in batches of 16 over as many channels as there are batches, up to 64.
    const services = Array.from({ length: 300 }, (_, i) => `mpch${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`);
    const { async, file } = fresh(services, { credentials: u, clusterExtra: { async: { management: adminManagementUrl() } } });
    await createVhost(async);
    await api("PUT", `/api/permissions/${vh(async)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    expect((await api("PUT", `/api/user-limits/${u.user}/max-channels`, { value: 8 })).status).toBeLessThan(300);
    const r = await runCli(["apply", "-f", file, "--cluster", "async"]);
    expect(r.stderr).not.toMatch(/Error|channel_max/);
    expect(r.code).toBe(0);
    // The lock's consumer holds one of the 8, and one is kept spare.
    expect(r.stderr).toContain(`cluster async: user "${u.user}" may have 8 channels open (its max-channels), so topo writes over 6 channels at once, not 64`);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });

  it("a user's max-channels shared by two clusters of the file: each writes within its share, and a limit with less than a channel each is refused before either writes", async () => {
    const u = await user("");
    const services = Array.from({ length: 40 }, (_, i) => `mpsh${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`);
    const { sync, async, file } = fresh(services, { credentials: u, clusterExtra: { sync: { management: adminManagementUrl() }, async: { management: adminManagementUrl() } } });
    // Vhosts the apply would create: the refusal comes before that first write too (it came only
    // once the session opened in the vhost, which apply had already created).
    expect((await api("PUT", `/api/user-limits/${u.user}/max-channels`, { value: 1 })).status).toBeLessThan(300);
    const early = await runCli(["apply", "-f", file]);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain("not one channel each; nothing was written");
    expect(early.stderr).not.toMatch(/changes were (confirmed )?made/);
    for (const v of [sync, async]) expect((await api("GET", `/api/vhosts/${vh(v)}`)).status).toBe(404);
    for (const v of [sync, async]) {
      await createVhost(v);
      await api("PUT", `/api/permissions/${vh(v)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    }
    // One: less than a channel each. Nothing written on either cluster.
    expect((await api("PUT", `/api/user-limits/${u.user}/max-channels`, { value: 1 })).status).toBeLessThan(300);
    const refused = await runCli(["apply", "-f", file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`user "${u.user}" may have 1 channel open at once (its max-channels, counting all its connections), and 2 clusters of this apply write as that user to this broker at once: not one channel each; nothing was written`);
    expect(refused.stderr).toContain(`rabbitmqctl set_user_limits ${u.user} '{"max-channels": 4}'`);
    for (const v of [sync, async]) expect((await api("GET", `/api/exchanges/${vh(v)}/mpshaa`)).status).toBe(404);
    // Three: one each, which both clusters write over at once (two at once went past it, and the
    // second cluster failed after the first had written).
    expect((await api("PUT", `/api/user-limits/${u.user}/max-channels`, { value: 3 })).status).toBeLessThan(300);
    const r = await runCli(["apply", "-f", file]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`user "${u.user}" may have 3 channels open (its max-channels), shared by 2 clusters of this apply`);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
    // A cluster with nothing to write opens no channel: the one that writes has the whole limit.
    expect((await api("DELETE", `/api/exchanges/${vh(async)}/mpshaa`)).status).toBe(204);
    const one = await runCli(["apply", "-f", file]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).not.toContain("shared by 2 clusters");
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });

  it("a user's max-channels too low for a replace without loss: refused before anything is written, naming the limit and the fix; finished once it allows three", async () => {
    const u = await user("");
    const { async } = fresh([]);
    const topo = (args: Record<string, number>) =>
      writeTopology({ sync: uniqueName("unused"), async, services: [{ name: "mpcha", sync: false, async: { arguments: args } }], credentials: u, clusterExtra: { async: { management: adminManagementUrl() } } });
    await createVhost(async);
    await api("PUT", `/api/permissions/${vh(async)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    expect((await runCli(["apply", "-f", topo({}), "--cluster", "async"])).code).toBe(0);
    await publish(async, "mpcha", "mpcha.async.x", Array.from({ length: 20 }, (_, i) => `m${i}`));
    const after = topo({ "x-max-length": 1000 });
    for (const max of [1, 2]) {
      expect((await api("PUT", `/api/user-limits/${u.user}/max-channels`, { value: max })).status).toBeLessThan(300);
      const r = await runCli(["apply", "-f", after, "--cluster", "async", "--allow-destructive", "--json"]);
      expect(r.code).toBe(1);
      const err = errorOf(r.stdout);
      expect(err.code).toBe("broker_refused");
      expect(err.message).toContain(`user "${u.user}" may have ${max} channel${max === 1 ? "" : "s"} open at once (its max-channels, counting all its connections)`);
      expect(err.message).toContain("replacing queue mpcha.async without losing its messages moves them over 2 at once; nothing was written");
      expect(err.hints.join("\n")).toContain(`rabbitmqctl set_user_limits ${u.user} '{"max-channels": ${max === 1 ? 2 : 3}}'`);
      expect((await api("GET", `/api/queues/${vh(async)}/topo.hold.mpcha.async`)).status).toBe(404);
    }
    expect((await api("PUT", `/api/user-limits/${u.user}/max-channels`, { value: 3 })).status).toBeLessThan(300);
    const done = await runCli(["apply", "-f", after, "--cluster", "async", "--allow-destructive"]);
    expect(done.stderr).not.toMatch(/Error/);
    expect(done.code).toBe(0);
    expect(done.stderr).toMatch(/queue mpcha\.async replaced; 20 messages moved back/);
  });

  // RabbitMQ checks the routing key of every bind and unbind from a topic exchange against the read
  // pattern of the user's topic permission for it. A replace stopped at its first bind (its holding
  // queue made) with a hint that blamed the vhost's configure/write/read permissions. The move
  // itself publishes through the default exchange, which topic permissions do not concern.
  it("topic permissions that refuse a binding's key: plan warns, apply refuses before writing; where they cannot be read, the bind's refusal names the topic permission", async () => {
    const u = await user("management");
    const { async } = fresh([]);
    const topo = (args: Record<string, number>, management = adminManagementUrl()) =>
      writeTopology({ sync: uniqueName("unused"), async, services: [{ name: "mptopic", sync: false, async: { arguments: args } }], credentials: u, clusterExtra: { async: { management } } });
    await createVhost(async);
    await api("PUT", `/api/permissions/${vh(async)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    expect((await runCli(["apply", "-f", topo({}), "--cluster", "async"])).code).toBe(0);
    await publish(async, "mptopic", "mptopic.async.x", Array.from({ length: 20 }, (_, i) => `m${i}`));
    // Publishing stays open (write .*); binding from mptopic does not.
    expect((await api("PUT", `/api/topic-permissions/${vh(async)}/${u.user}`, { exchange: "mptopic", write: ".*", read: "^mptopic\\.sync\\." })).status).toBeLessThan(300);
    const after = topo({ "x-max-length": 1000 });
    const words = `user "${u.user}"'s topic permissions in vhost "${async}" refuse bindings this plan makes or removes (RabbitMQ checks a binding's routing key on a topic exchange against the read pattern): on topic exchange mptopic its read pattern ^mptopic\\.sync\\. refuses routing key mptopic.async.#`;
    const plan = await runCli(["plan", "-f", after, "--cluster", "async", "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`! warning: ${words}`);
    const r = await runCli(["apply", "-f", after, "--cluster", "async", "--allow-destructive", "--json"]);
    expect(r.code).toBe(1);
    const err = errorOf(r.stdout);
    expect(err.code).toBe("permission_denied");
    expect(err.message).toContain(`${words}; apply would stop part-way, so topo refuses before anything is written; nothing was changed`);
    expect(err.hints.join("\n")).toContain(`rabbitmqctl set_topic_permissions -p ${async} ${u.user} EXCHANGE WRITE READ`);
    expect((await api("GET", `/api/queues/${vh(async)}/topo.hold.mptopic.async`)).status).toBe(404);

    // A management user that may not read topic permissions (no administrator tag): the broker's refusal, named.
    const own = `http://${encodeURIComponent(u.user)}:${u.password}@${new URL(broker().mgmtBase).host}`;
    const blind = await runCli(["apply", "-f", topo({ "x-max-length": 1000 }, own), "--cluster", "async", "--allow-destructive"]);
    expect(blind.code).toBe(1);
    expect(blind.stderr).toContain(`access to topic 'mptopic.async.#' in exchange 'mptopic' in vhost '${async}' refused for user '${u.user}'`);
    expect(blind.stderr).toContain(`hint: user ${u.user}'s topic permission on exchange mptopic in vhost ${async} refuses routing key mptopic.async.# (its read pattern;`);
    expect(blind.stderr).not.toContain("lacks configure/write/read permission");

    await api("DELETE", `/api/topic-permissions/${vh(async)}/${u.user}`);
    const done = await runCli(["apply", "-f", after, "--cluster", "async", "--allow-destructive"]);
    expect(done.stderr).not.toMatch(/Error/);
    expect(done.code).toBe(0);
    expect(done.stderr).toMatch(/queue mptopic\.async replaced; 20 messages moved back/);
  });

  it("--parallelism takes a whole number of channels from 1 to 2047, and says so otherwise", async () => {
    const { file } = fresh(["mpa"]);
    // Number() alone took 0x10 for 16, 1e2 for 100 and " 5" for 5.
    for (const bad of ["0", "2048", "1.5", "many", "0x10", "1e2", " 5", ""]) {
      const r = await runCli(["apply", "-f", file, "--parallelism", bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`option '--parallelism <channels>' argument '${bad}' is invalid. must be a whole number from 1 to 2047`);
    }
    // So --lock-timeout: "" was 0 seconds, 1e9 thirty years.
    for (const bad of ["", "0x10", "1e9", "-1", "86401", "1,5"]) {
      const r = await runCli(["apply", "-f", file, "--lock-timeout", bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`option '--lock-timeout <seconds>' argument '${bad}' is invalid. must be a number of seconds from 0 to 86400`);
    }
    // With --json (or --format json) a wrong command line is the JSON code usage too.
    for (const args of [["apply", "-f", file, "--parallelism", "0", "--json"], ["plan", "-f", file, "--format", "json", "--bogus"]]) {
      const r = await runCli(args);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout).error).toMatchObject({ code: "usage", message: expect.stringMatching(/--parallelism|--bogus/) });
    }
    expect((await runCli(["--version"])).code).toBe(0);
    expect((await runCli(["plan", "--help"])).code).toBe(0);
  });

  it("--json beside another --format is refused as usage, not answered in one of the two unsaid", async () => {
    const { file } = fresh(["mpfmt"]);
    // plan --json --format markdown printed JSON into what a CI step posts as a pull-request comment.
    for (const args of [["plan", "-f", file, "--json", "--format", "markdown"], ["plan", "-f", file, "--format", "text", "--json"]]) {
      const r = await runCli(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(JSON.parse(r.stdout).error).toMatchObject({ code: "usage", message: expect.stringContaining("--json is --format json, and --format") });
    }
    // Saying the same twice is no conflict.
    const same = await runCli(["plan", "-f", file, "--json", "--format", "json"]);
    expect(same.code).toBe(0);
    expect(JSON.parse(same.stdout).summary).toBeDefined();
  });

  it("a vhost's max-queues too low and no rights on it: plan and apply both say both, in one run", async () => {
    const { async, file } = fresh(["mpqa", "mpqb"]);
    await createVhost(async);
    await api("DELETE", `/api/permissions/${vh(async)}/${encodeURIComponent(broker().user)}`);
    expect((await api("PUT", `/api/vhost-limits/${vh(async)}/max-queues`, { value: 1 })).status).toBeLessThan(300);
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file, "--cluster", "async"]);
      expect(r.code, cmd).toBe(1);
      // Plan said only the limit (and, once it was raised, the rights); apply only the rights.
      expect(r.stderr, cmd).toContain(`530 NOT_ALLOWED - access to vhost '${async}' refused for user '${broker().user}'`);
      expect(r.stderr, cmd).toContain(`vhost "${async}" may hold at most 1 queue (max-queues)`);
      expect(r.stderr, cmd).toContain(`hint: user "${broker().user}" has no permissions on vhost "${async}"`);
    }
  }, 60_000);

  it("one cluster's login refused and another's queue limit: apply says both in one run, as plan does", async () => {
    const { sync, async, file } = fresh(["mpqa", "mpqb"]);
    await createVhost(sync);
    await createVhost(async);
    await api("DELETE", `/api/permissions/${vh(sync)}/${encodeURIComponent(broker().user)}`);
    expect((await api("PUT", `/api/vhost-limits/${vh(async)}/max-queues`, { value: 1 })).status).toBeLessThan(300);
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file]);
      expect(r.code, cmd).toBe(1);
      expect(r.stderr, cmd).toContain(`530 NOT_ALLOWED - access to vhost '${sync}' refused for user '${broker().user}'`);
      expect(r.stderr, cmd).toContain(`vhost "${async}" may hold at most 1 queue (max-queues)`);
    }
  }, 60_000);

  it("a vhost's max-queues too low for the plan: refused before anything is written, the lock and deletes counted", async () => {
    const { async, file } = fresh(["mpqa", "mpqb", "mpqc"]);
    await createVhost(async);
    const limit = (value: number) => api("PUT", `/api/vhost-limits/${vh(async)}/max-queues`, { value });
    const objects = async () => ((await api("GET", `/api/queues/${vh(async)}?columns=name`)).body as unknown[]).length + ((await api("GET", `/api/exchanges/${vh(async)}?columns=name`)).body as { name: string }[]).filter((e) => e.name.startsWith("mpq")).length;
    expect((await limit(1)).status).toBeLessThan(300);
    for (const cmd of ["plan", "apply"]) {
      const r = await runCli([cmd, "-f", file, "--cluster", "async", "--json"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `cluster async: vhost "${async}" may hold at most 1 queue (max-queues), and apply would need 4 at once: the 0 it holds now, 3 the plan creates, one for topo's lock while apply runs; the broker would refuse the queue over the limit part-way through apply, so topo refuses the plan before anything is written`,
      );
      expect(r.stderr).toContain(`hint: raise the limit: rabbitmqctl set_vhost_limits -p ${async} '{"max-queues": 4}'`);
      expect(errorOf(r.stdout).code).toBe("broker_refused");
    }
    // Not one exchange or queue was made.
    expect(await objects()).toBe(0);

    // Room for the file's three queues, but not for topo's lock beside them: the same refusal.
    expect((await limit(3)).status).toBeLessThan(300);
    const lock = await runCli(["apply", "-f", file, "--cluster", "async"]);
    expect(lock.code).toBe(1);
    expect(lock.stderr).toContain("apply would need 4 at once");
    expect(await objects()).toBe(0);
    expect((await limit(4)).status).toBeLessThan(300);
    expect((await runCli(["apply", "-f", file, "--cluster", "async"])).code).toBe(0);

    // At the limit with nothing to create, the lock alone would be refused: said before writing.
    expect((await limit(3)).status).toBeLessThan(300);
    await api("DELETE", `/api/exchanges/${vh(async)}/mpqb`);
    const full = await runCli(["apply", "-f", file, "--cluster", "async"]);
    expect(full.code).toBe(1);
    expect(full.stderr).toContain("apply would need 4 at once: the 3 it holds now, one for topo's lock while apply runs");

    // No plan that writes nothing reads or checks the limit.
    expect((await limit(4)).status).toBeLessThan(300);
    expect((await runCli(["apply", "-f", file, "--cluster", "async"])).code).toBe(0);
    expect((await limit(0)).status).toBeLessThan(300);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("every refusal the read can know is reported in one run, each with its fix", () => {
  /** The error --json printed last, and each refusal under it (one, or several under errors). */
  const refusals = (stdout: string) => {
    const e = JSON.parse(stdout.slice(stdout.lastIndexOf('{"error"'))).error;
    return { error: e, each: (e.errors ?? [e]) as { code: string; message: string; hints?: string[] }[] };
  };

  /** A vhost of max-queues 1: apply is refused for it and for a missing right, both in one run. */
  async function refusedTwice(sync: string, file: string) {
    expect((await api("PUT", `/api/vhost-limits/${vh(sync)}/max-queues`, { value: 1 })).status).toBeLessThan(300);
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--json"]);
    expect(r.code).toBe(1);
    expect(refusals(r.stdout).each.map((e) => e.code).sort()).toEqual(["broker_refused", "permission_denied"]);
    expect(r.stderr).toContain(`cluster sync: vhost "${sync}" may hold at most 1 queue (max-queues)`);
    expect(r.stderr).toContain(`hint: raise the limit: rabbitmqctl set_vhost_limits -p ${sync}`);
    return r;
  }

  it("a vhost's max-queues and a management user without the tag apply's writes need: both, with the tags it has kept in set_user_tags", async () => {
    const u = await user("monitoring");
    const { sync, file } = fresh(["mplogin", "mpwallet"], { credentials: u });
    await createVhost(sync);
    await api("PUT", `/api/permissions/${vh(sync)}/${u.user}`, { configure: ".*", write: ".*", read: ".*" });
    const r = await refusedTwice(sync, file);
    expect(r.stderr).toContain(`cluster sync: user "${u.user}" has the tags monitoring, and apply's writes need policymaker (to write topo's policies: 1 to create)`);
    expect(r.stderr).toContain(`hint: rabbitmqctl set_user_tags ${u.user} monitoring policymaker`);
    // Nothing was written.
    expect((await api("GET", `/api/policies/${vh(sync)}`)).body).toEqual([]);
    // Plan, which may run as a monitoring user, reports the limit alone.
    const plan = await runCli(["plan", "-f", file, "--cluster", "sync", "--json"]);
    expect(refusals(plan.stdout).each.map((e) => e.code)).toEqual(["broker_refused"]);
  });

  it("a vhost's max-queues and an AMQP user whose permissions do not reach topo's lock queue: both, before anything is written", async () => {
    const u = await user("");
    const { sync, file } = fresh(["mplogin"], { credentials: u, clusterExtra: { sync: { management: adminManagementUrl() } } });
    await createVhost(sync);
    await api("PUT", `/api/permissions/${vh(sync)}/${u.user}`, { configure: "^mp", write: ".*", read: "^mp" });
    // Plan says so too, as a warning: a CI job that only plans finds it before the deploy.
    const plan = await runCli(["plan", "-f", file, "--cluster", "sync", "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(new RegExp(`! warning: apply refuses this plan before writing anything: user ${u.user}'s permissions in vhost ${sync} do not let apply work: its configure permission \\(\\^mp\\) does not match queue topo\\.`));
    const r = await refusedTwice(sync, file);
    expect(r.stderr).toMatch(new RegExp(`cluster sync: user ${u.user}'s permissions in vhost ${sync} do not let apply work: its configure permission \\(\\^mp\\) does not match queue topo\\.[\\w.]*lock\\b.*its read permission \\(\\^mp\\) does not match queue topo\\.[\\w.]*lock`));
    expect(r.stderr).toContain(`hint: rabbitmqctl set_permissions -p ${sync} ${u.user}`);
    expect(r.stderr).not.toMatch(/applying|applied/);
    expect((await api("GET", `/api/queues/${vh(sync)}?columns=name`)).body).toEqual([]);
  });
});

describe("one count", () => {
  it("the first apply of 8 services counts the vhost as plan does, with plurals right", async () => {
    const { file } = fresh(["mpa", "mpb", "mpc", "mpd", "mpe", "mpf", "mpg", "mph"]);
    const plan = await runCli(["plan", "-f", file, "--cluster", "sync", "--json"]);
    const n = (JSON.parse(plan.stdout) as { clusters: { actions: unknown[] }[] }).clusters[0]!.actions.length;
    expect(n).toBeGreaterThan(1);
    const r = await runCli(["apply", "-f", file, "--cluster", "sync", "--verbose"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`cluster sync: applying ${n} changes`);
    expect(r.stderr).toContain(`cluster sync: ${n} changes applied`);
    expect(r.stdout).toContain(`Apply complete: ${n} changes made`);
    expect(r.stderr).not.toMatch(/\b1 changes\b/);
  });
});

describe("Ctrl-C during apply", () => {
  const services = Array.from({ length: 300 }, (_, i) => `mp${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`);

  /**
   * Runs topo with `args`, sends SIGINT once a quarter of the changes are made; its exit code and
   * stderr. Over one channel: its batches go one after another, so the signal lands while most of
   * them are still to start. Over 64, every batch of a 300-service apply starts at once, and a
   * busy machine delivered the signal after the last was done (the read back had begun, which a
   * signal lets finish: exit 0).
   */
  async function interrupted(args: string[]): Promise<{ code: number | null; stderr: string; sent: boolean }> {
    const child = spawn(process.execPath, [CLI, ...args, "--parallelism", "1"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let sent = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      // Progress shows at each quarter of a large apply.
      if (!sent && /changes made \(25%\)/.test(stderr)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    return { code, stderr, sent };
  }

  it("of a saved plan says to plan again, not to apply the plan again, which would be refused as stale", async () => {
    const { file } = fresh(services);
    const out = join(dirname(file), "plan.json");
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "-o", out])).code).toBe(0);
    const { code, stderr, sent } = await interrupted(["apply", out]);
    expect(sent).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toMatch(
      new RegExp(`interrupted: cluster async: \\d+ of \\d+ changes were confirmed made \\(writes sent when it stopped may have been made too\\); the saved plan no longer matches the brokers: run topo plan -f ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} -o FILE again, review what is left, and apply that`),
    );
    expect(stderr).not.toMatch(/run topo apply again/);
    // What it says holds: the plan is refused, and a new one finishes the apply.
    const again = await runCli(["apply", out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the saved plan is stale/);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "-o", out])).code).toBe(0);
    expect((await runCli(["apply", out])).code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });

  it("says what was interrupted, releases the lock, exits 130; a re-run converges", async () => {
    const { async, file } = fresh(services);
    const { code, stderr, sent } = await interrupted(["apply", "-f", file, "--cluster", "async"]);
    expect(sent).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted: cluster async: \d+ of \d+ changes were confirmed made \(writes sent when it stopped may have been made too\); run topo apply again to finish \(topo plan shows what is left\)/);
    expect(stderr).not.toMatch(/\n\s+at /);
    const [, made, total] = /(\d+) of (\d+) changes were confirmed made/.exec(stderr)!.map(Number);
    expect(made).toBeGreaterThan(0);
    expect(made).toBeLessThan(total!);
    // The lock queue went with the connection.
    expect((await api("GET", `/api/queues/${vh(async)}/topo.mp.lock`)).status).toBe(404);

    expect((await runCli(["apply", "-f", file, "--cluster", "async"])).code).toBe(0);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });
});

describe("a broker that drops connections it took", () => {
  // A connection reset after the listener took it (a node shutting down or restarting, a proxy
  // with no broker behind it) was said "nothing accepts AMQP connections at HOST:PORT; is the
  // broker up?", which sent people after a port and a listener that were right.
  it("is said to have taken the connection and dropped it, not that nothing listens", async () => {
    const proxy = await amqpProxy();
    try {
      const b = broker();
      const sync = uniqueName("sync");
      const async = uniqueName("async");
      vhosts.push(sync, async);
      const through = (v: string) => `amqp://${b.user}:${b.password}@127.0.0.1:${proxy.port}/${encodeURIComponent(v)}`;
      const file = writeTopology({ sync, async, services: ["mplogin"], clusterExtra: { sync: { url: through(sync) }, async: { url: through(async) } } });
      // The first exchange.declare (class 40, method 10) reaches the broker; the connection is
      // then lost, and every connection after it is reset as soon as it is taken.
      const cut = proxy.cutAfter(40, 10).then(proxy.refuse);
      const r = await runCli(["apply", "-f", file]);
      await cut;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ECONNRESET/);
      expect(r.stderr).toContain(`hint: 127.0.0.1:${proxy.port} took the connection and then dropped it (reset or closed)`);
      expect(r.stderr).not.toContain("nothing accepts AMQP connections");
    } finally {
      await proxy.close();
    }
  }, 120_000);
});
