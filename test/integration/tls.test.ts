// TLS end to end: amqps:// and https:// against a RabbitMQ node of its own with TLS listeners and a
// throw-away CA (scripts/tls-node.sh), never the machine's broker. The CA file, a client
// certificate, a wrong CA, no CA at all, and --insecure / tls.insecure only by explicit choice.
// TOPO_SKIP_TLS=1 skips this file on machines that cannot start an extra node; CI runs it. The
// ports come from the script (TOPO_TLS_AMQP_PORT...); when they belong to something else the tests
// skip with the script's reason, and fail under CI=true.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ROOT, runCli, scriptEnv, skipWhenUnavailable, startTestBroker, uniqueName, writeFile, type CliResult, type TestBroker } from "../helpers/broker.js";

const SCRIPT = join(ROOT, "scripts/tls-node.sh");
// A password that cannot appear in any output by accident: if it shows up, topo printed it.
const USER = "topo-tls-admin";
const PASSWORD = "Tls-S3cret-Quokka";

let env: Record<string, string> = {};
let node: TestBroker | undefined;
let ca: Buffer;
/** Every CLI output of this file, checked for the password at the end. */
const outputs: CliResult[] = [];

/** The TLS node's management API over HTTPS, verified with the test CA, as guest (loopback). */
function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "localhost",
        port: Number(env.TOPO_TLS_HTTPS_PORT),
        path,
        method,
        ca,
        auth: "guest:guest",
        headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {},
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const vhosts: string[] = [];

/** A vhost of the test's own on the TLS node, on which USER may do everything. */
async function vhost(tag: string): Promise<string> {
  const v = uniqueName(tag);
  vhosts.push(v);
  expect((await api("PUT", `/api/vhosts/${encodeURIComponent(v)}`, {})).status).toBeLessThan(300);
  const perms = { configure: ".*", write: ".*", read: ".*" };
  expect((await api("PUT", `/api/permissions/${encodeURIComponent(v)}/${USER}`, perms)).status).toBeLessThan(300);
  return v;
}

afterEach(async () => {
  await Promise.all(vhosts.splice(0).map((v) => api("DELETE", `/api/vhosts/${encodeURIComponent(v)}`)));
});

/** A two-cluster topology on the TLS node (amqps + https), with the given tls mapping. */
async function topology(tls: Record<string, unknown> | undefined, host = "localhost"): Promise<{ file: string; sync: string; async: string }> {
  const sync = await vhost("tls-sync");
  const async = await vhost("tls-async");
  const cluster = (v: string) => ({
    url: `amqps://${USER}:${PASSWORD}@${host}:${env.TOPO_TLS_AMQPS_PORT}/${v}`,
    management: `https://${host}:${env.TOPO_TLS_HTTPS_PORT}`,
    ...(tls ? { tls } : {}),
  });
  const doc = { version: 1, clusters: { sync: cluster(sync), async: cluster(async) }, services: ["mplogin", "mpwallet"] };
  return { file: writeFile("topology.yaml", JSON.stringify(doc, null, 2)), sync, async };
}

async function cli(args: string[]): Promise<CliResult> {
  const r = await runCli(args);
  outputs.push(r);
  expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  return r;
}

async function queueNames(v: string): Promise<string[]> {
  const r = await api("GET", `/api/queues/${encodeURIComponent(v)}?columns=name`);
  return (r.body as { name: string }[]).map((q) => q.name).sort();
}

/** apply exits 0, plan then shows no drift, and the queues are on the node. */
async function expectRoundTrip(t: { file: string; sync: string; async: string }, flags: string[] = []): Promise<void> {
  const applied = await cli(["apply", "-f", t.file, ...flags]);
  expect(applied.stderr).not.toMatch(/Error/);
  expect(applied.code).toBe(0);
  expect(applied.stdout).toMatch(/amqps:\/\/topo-tls-admin:\*\*\*@/);
  const plan = await cli(["plan", "-f", t.file, "--detailed-exitcode", ...flags]);
  expect(plan.code).toBe(0);
  expect(plan.stdout.trim().endsWith("No changes.")).toBe(true);
  expect(await queueNames(t.sync)).toEqual(["mplogin.sync", "mpwallet.sync"]);
  expect(await queueNames(t.async)).toEqual(["mplogin.async", "mpwallet.async"]);
}

/** Exit 1 with an error per cluster that says what to set, and no stack trace. */
function expectTlsRefusal(r: CliResult, hint: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/cluster sync: /);
  expect(r.stderr).toMatch(/cluster async: /);
  expect(r.stderr).toMatch(hint);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/SSL routines|rec_layer/);
}

const VERIFY_FAILED = /TLS verification failed; set clusters\.(sync|async)\.tls\.ca to the CA that signed the broker's certificate/;

describe.runIf(!process.env.TOPO_SKIP_TLS)("TLS (amqps:// and https://)", () => {
  beforeAll(async () => {
    node = await startTestBroker(SCRIPT, 110_000);
    if (node.unavailable) return;
    env = scriptEnv(SCRIPT);
    ca = readFileSync(env.TOPO_TLS_CA!);
    // An administrator with a distinctive password; guest stays for the test's own API calls.
    const ctl = (...args: string[]) => execFileSync(SCRIPT, ["ctl", "-q", ...args], { stdio: "ignore", timeout: 30_000 });
    // A node left running by an earlier run may still have the user.
    try {
      ctl("delete_user", USER);
    } catch {
      // not there: the usual case
    }
    ctl("add_user", USER, PASSWORD);
    ctl("set_user_tags", USER, "administrator");
  }, 120_000);

  beforeEach(skipWhenUnavailable(() => node));

  afterAll(() => {
    if (!node || node.unavailable) return;
    // A node that was running before keeps running, without the test's user.
    if (Object.keys(env).length) execFileSync(SCRIPT, ["ctl", "-q", "delete_user", USER], { stdio: "ignore", timeout: 30_000 });
  }, 120_000);

  it("verifies the broker with tls.ca: apply, then plan finds no changes", async () => {
    await expectRoundTrip(await topology({ ca: env.TOPO_TLS_CA }));
  });

  it("accepts 127.0.0.1 too: the certificate names the address", async () => {
    await expectRoundTrip(await topology({ ca: env.TOPO_TLS_CA }, "127.0.0.1"));
  });

  it("presents the client certificate of tls.cert and tls.key", async () => {
    await expectRoundTrip(await topology({ ca: env.TOPO_TLS_CA, cert: env.TOPO_TLS_CLIENT_CERT, key: env.TOPO_TLS_CLIENT_KEY }));
    // The node rejects a presented certificate its CA did not sign: proof that topo sends it.
    const wrong = await topology({ ca: env.TOPO_TLS_CA, cert: env.TOPO_TLS_OTHER_CLIENT_CERT, key: env.TOPO_TLS_OTHER_CLIENT_KEY });
    const r = await cli(["plan", "-f", wrong.file]);
    expectTlsRefusal(r, /the broker refused the TLS handshake \(.*unknown ca\); set clusters\.(sync|async)\.tls\.cert and clusters\.(sync|async)\.tls\.key/);
  });

  it("fails verification with another CA, names the cluster and says to set tls.ca", async () => {
    const t = await topology({ ca: env.TOPO_TLS_OTHER_CA });
    expectTlsRefusal(await cli(["plan", "-f", t.file]), VERIFY_FAILED);
    expectTlsRefusal(await cli(["apply", "-f", t.file]), VERIFY_FAILED);
    expect(await queueNames(t.sync)).toEqual([]);
  });

  it("fails verification without tls; --insecure or tls.insecure: true is the explicit way out", async () => {
    const t = await topology(undefined);
    expectTlsRefusal(await cli(["plan", "-f", t.file]), VERIFY_FAILED);
    expectTlsRefusal(await cli(["apply", "-f", t.file]), VERIFY_FAILED);
    expect(await queueNames(t.async)).toEqual([]);
    await expectRoundTrip(t, ["--insecure"]);
    const json = await cli(["plan", "-f", t.file, "--json", "--insecure"]);
    const endpoint = new RegExp(`^amqps://topo-tls-admin:\\*\\*\\*@localhost:${env.TOPO_TLS_AMQPS_PORT}/`);
    expect(JSON.parse(json.stdout).clusters.map((c: { endpoint: string }) => c.endpoint)).toEqual([
      expect.stringMatching(endpoint),
      expect.stringMatching(endpoint),
    ]);

    await expectRoundTrip(await topology({ insecure: true }));
  });

  it("never prints the password, in any of the outputs above", () => {
    expect(outputs.length).toBeGreaterThan(10);
    for (const r of outputs) {
      expect(r.stdout + r.stderr).not.toContain(PASSWORD);
      expect(r.stdout + r.stderr).not.toContain(encodeURIComponent(PASSWORD));
    }
  });
});
