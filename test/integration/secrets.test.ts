// Secrets never reach output, and plan works with a read-only (monitoring) user.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { amqpUrl, api, broker, deleteVhost, runCli, suiteUsers, uniqueName, writeFile, writeTopology, type CliResult } from "../helpers/broker.js";
import { managementProxy } from "../helpers/proxy.js";
import { fragments } from "../helpers/fragments.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

// A password with characters that URLs encode, so both forms must be masked.
const SECRET = "Zebra-S3cret/Pass:42";
const ADMIN = `topo_admin_${process.pid}`;
const MONITOR = `topo_monitor_${process.pid}`;

async function user(name: string, tags: string): Promise<void> {
  const r = await api("PUT", `/api/users/${name}`, { password: SECRET, tags });
  expect([201, 204]).toContain(r.status);
}

beforeAll(async () => {
  await user(ADMIN, "administrator");
  await user(MONITOR, "monitoring");
});
afterAll(async () => {
  await api("DELETE", `/api/users/${ADMIN}`);
  await api("DELETE", `/api/users/${MONITOR}`);
});

/** A topology whose password comes from the environment (percent-encoded, as URLs need). */
function topology(sync: string, async: string, name: string): string {
  const b = broker();
  const url = (v: string) => `amqp://${name}:\${TOPO_TEST_PASSWORD}@${b.host}:${b.amqpPort}/${encodeURIComponent(v)}`;
  const doc = { version: 1, clusters: { sync: { url: url(sync), management: b.mgmtBase }, async: { url: url(async), management: b.mgmtBase } }, services: ["mplogin"] };
  return writeFile("topology.yaml", JSON.stringify(doc, null, 2));
}

const ENV = { TOPO_TEST_PASSWORD: encodeURIComponent(SECRET) };

describe("secrets", () => {
  it("no command prints the password, whether it succeeds or fails", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const env = ENV;
    const good = writeTopology({ sync, async, services: ["mplogin"], credentials: { user: ADMIN, password: SECRET } });
    const changed = writeTopology({ sync, async, services: [{ name: "mplogin", async: { durable: false } }], credentials: { user: ADMIN, password: SECRET } });
    const wrong = writeTopology({ sync, async, services: ["mplogin"], credentials: { user: ADMIN, password: `${SECRET}x` } });
    const invalid = writeFile("bad.yaml", `version: 1\nclusters:\n  sync: { url: "amqp://${ADMIN}:${encodeURIComponent(SECRET)}@localhost:notaport/x" }\n  async: { url: "amqp://${ADMIN}:${encodeURIComponent(SECRET)}@[bad/x" }\nservices: [mplogin]\n`);
    const unreachable = writeFile(
      "down.yaml",
      `version: 1\nclusters:\n  sync: { url: "amqp://${ADMIN}:${encodeURIComponent(SECRET)}@127.0.0.1:1/x", management: "http://${ADMIN}:${encodeURIComponent(SECRET)}@127.0.0.1:1" }\n  async: { url: "amqp://${ADMIN}:${encodeURIComponent(SECRET)}@127.0.0.1:1/y" }\nservices: [mplogin]\n`,
    );
    const runs = [
      ["validate", "-f", good],
      ["validate", "-f", invalid],
      ["plan", "-f", good],
      ["plan", "-f", good, "--json"],
      ["apply", "-f", good],
      ["apply", "-f", good, "--json"],
      ["apply", "-f", changed],
      ["apply", "-f", changed, "--json"],
      ["plan", "-f", wrong],
      ["apply", "-f", wrong, "--json"],
      ["plan", "-f", invalid],
      ["plan", "-f", unreachable],
      ["apply", "-f", unreachable],
      ["plan", "-f", good, "--cluster", "missing"],
      ["route", "mplogin.sync.register", "-f", good, "--live"],
      ["route", "mplogin.sync.register", "-f", good, "--live", "--json"],
      ["route", "mplogin.sync.register", "-f", wrong, "--live"],
      ["route", "mplogin.sync.register", "-f", unreachable, "--live", "--json"],
      ["graph", "-f", good],
      ["export", "definitions", "-f", good, "--cluster", "sync"],
      ["export", "definitions", "-f", good],
      ["export", "celery", "-f", good, "--cluster", "sync"],
      ["export", "celery", "-f", good],
      ["import", "-f", good],
      ["import", "-f", wrong],
      ["import", "-f", unreachable],
      ["import", "--url", `amqp://${ADMIN}:${encodeURIComponent(SECRET)}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}`, "--management", broker().mgmtBase],
      // URLs typed without their "//" or scheme, or with a query or fragment, still carry a secret.
      ...[
        `amqp:/${ADMIN}:${encodeURIComponent(SECRET)}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}`,
        `amqp:${ADMIN}:${encodeURIComponent(SECRET)}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}`,
        `sync=${ADMIN}:${encodeURIComponent(SECRET)}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}`,
        `amqp://${ADMIN}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}?x=${encodeURIComponent(SECRET)}`,
        `amqp://${ADMIN}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}#${encodeURIComponent(SECRET)}`,
      ].map((url) => ["import", "--url", url, "--management", broker().mgmtBase]),
      ["import", "--url", `amqp://${ADMIN}@${broker().host}:${broker().amqpPort}/${encodeURIComponent(sync)}`, "--management", `http:/${ADMIN}:${SECRET}@${broker().host}:15672`],
      ["--help"],
    ];
    const codes: number[] = [];
    for (const args of runs) {
      const r = await runCli(args, env);
      codes.push(r.code);
      const all = r.stdout + r.stderr;
      expect(all.length, args.join(" ")).toBeGreaterThan(0);
      expect(all, args.join(" ")).not.toContain(SECRET);
      expect(all, args.join(" ")).not.toContain(encodeURIComponent(SECRET));
      expect(all, args.join(" ")).not.toContain("Zebra-S3cret");
    }
    // The runs include successes and failures of every command.
    expect(codes).toContain(0);
    expect(codes).toContain(1);
    // 34 runs of the CLI: on a loaded 2-core machine they can pass the default 60 s.
  }, 240_000);
});

describe("a saved plan of a vhost whose foreign objects hold the password", () => {
  // A foreign queue, binding key and argument that hold the URL's password (a password with " and
  // \\ in it): plan masked them, but plan -o saved them as they were (in the warnings, which
  // JSON-escaping hid from the masker, and in the state), and topo show printed them.
  it("is saved masked, shown masked, and still applies", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const name = `topo_saved_${process.pid}`;
    const pw = 'ab"cd\\ef1<x>|`q9';
    expect([201, 204]).toContain((await api("PUT", `/api/users/${name}`, { password: pw, tags: "administrator" })).status);
    try {
      const file = writeTopology({ sync, async, services: ["mplogin"], credentials: { user: name, password: pw } });
      expect((await runCli(["apply", "-f", file])).code).toBe(0);
      // The vhosts were made by this user: the suite's own (for the foreign objects) needs rights there too.
      for (const v of [sync, async]) expect([201, 204]).toContain((await api("PUT", `/api/permissions/${encodeURIComponent(v)}/${broker().user}`, { configure: ".*", write: ".*", read: ".*" })).status);
      const leak = `leak ${pw} end`;
      expect([201, 204]).toContain((await api("PUT", `/api/queues/${encodeURIComponent(async)}/${encodeURIComponent(leak)}`, { durable: true })).status);
      expect((await api("POST", `/api/bindings/${encodeURIComponent(async)}/e/mplogin/q/${encodeURIComponent(leak)}`, { routing_key: `k.${pw}`, arguments: { a: pw } })).status).toBe(201);
      const out = join(dirname(file), "saved.json");
      const plan = await runCli(["plan", "-f", file, "-o", out]);
      expect(plan.code, plan.stderr).toBe(0);
      const show = await runCli(["show", out]);
      const showJson = await runCli(["show", out, "--json"]);
      const saved = readFileSync(out, "utf8");
      for (const text of [plan.stdout, plan.stderr, show.stdout, show.stderr, showJson.stdout, saved]) {
        for (const f of fragments(pw, 6)) {
          expect(text).not.toContain(f);
          expect(text).not.toContain(JSON.stringify(f).slice(1, -1));
        }
      }
      expect(show.stdout).toContain("leak *** end");
      const applied = await runCli(["apply", out]);
      expect(applied.code, applied.stderr).toBe(0);
      for (const f of fragments(pw, 6)) expect(`${applied.stdout}${applied.stderr}`).not.toContain(f);
    } finally {
      await api("DELETE", `/api/users/${name}`);
    }
  });
});

describe("least privilege", () => {
  it("plan works for a monitoring user with read permission; apply is refused with a hint", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const admin = topology(sync, async, ADMIN);
    const env = ENV;
    // Permissions for the admin user on the vhosts it will create are granted at creation.
    expect((await runCli(["apply", "-f", admin], env)).code).toBe(0);
    for (const v of [sync, async]) {
      const r = await api("PUT", `/api/permissions/${encodeURIComponent(v)}/${MONITOR}`, { configure: "^$", write: "^$", read: ".*" });
      expect([201, 204]).toContain(r.status);
      // The test's own user, to make drift by hand below.
      await api("PUT", `/api/permissions/${encodeURIComponent(v)}/${broker().user}`, { configure: ".*", write: ".*", read: ".*" });
    }
    const monitor = topology(sync, async, MONITOR);
    const plan = await runCli(["plan", "-f", monitor, "--detailed-exitcode"], env);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain("No changes.");

    // route --live reads like plan.
    const route = await runCli(["route", "mplogin.async.charge", "-f", monitor, "--live"], env);
    expect(route.stderr).toBe("");
    expect(route.stdout).toMatch(/live: {8}the broker's bindings agree/);

    expect((await api("DELETE", `/api/queues/${encodeURIComponent(async)}/mplogin.async`)).status).toBe(204);
    const drift = await runCli(["plan", "-f", monitor, "--detailed-exitcode"], env);
    expect(drift.code).toBe(2);
    const refused = await runCli(["apply", "-f", monitor], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ACCESS_REFUSED|403|401/);
    expect(refused.stderr).toMatch(/hint: /);
    expect(refused.stdout + refused.stderr).not.toContain(SECRET);
  });
});

// Passwords with the characters URLs reserve, written literally (wrong unless the URL parser can
// still read it), percent-encoded (right), through ${VAR} and through a ${VAR:-default}. Wherever
// they get that far, they meet the real broker, with a user that has that password.
describe("passwords holding /, +, =, @, : and %", () => {
  const PASSWORDS = ["Xy7/kP9+qR==", "p@ss:w/rd%1", "a:b@c"];
  const users = PASSWORDS.map((_, i) => `topo_pw${i}_${process.pid}`);

  suiteUsers(PASSWORDS.map((password, i) => ({ name: users[i] as string, password, tags: "administrator" })));

  /** Fails with the run when any output stream holds the password, its encoding, or a 4-character piece of either. */
  function expectNoPiece(password: string, args: string[], r: CliResult): void {
    const all = `${r.stdout}\n${r.stderr}`;
    expect(all.trim().length, args.join(" ")).toBeGreaterThan(0);
    for (const f of [...fragments(password), ...fragments(encodeURIComponent(password))]) {
      expect(all.includes(f), `${args.join(" ")} prints ${JSON.stringify(f)}:\n${all}`).toBe(false);
    }
  }

  it("never reach any output of validate, plan or apply, literal, encoded, or from the environment", async () => {
    const b = broker();
    for (const [i, password] of PASSWORDS.entries()) {
      const user = users[i] as string;
      const sync = uniqueName("sync");
      const async = uniqueName("async");
      vhosts.push(sync, async);
      const encoded = encodeURIComponent(password);
      const file = (userinfo: string, management = b.mgmtBase) =>
        writeFile(
          "topology.yaml",
          `version: 1\nclusters:\n` +
            `  sync: { url: ${JSON.stringify(`amqp://${user}:${userinfo}@${b.host}:${b.amqpPort}/${encodeURIComponent(sync)}`)}, management: ${JSON.stringify(management)} }\n` +
            `  async: { url: ${JSON.stringify(`amqp://${user}:${userinfo}@${b.host}:${b.amqpPort}/${encodeURIComponent(async)}`)}, management: ${JSON.stringify(management)} }\n` +
            `services: [mplogin]\n`,
        );
      const mgmt = new URL(b.mgmtBase);
      const cases: { name: string; file: string; env: Record<string, string>; works: boolean }[] = [
        // Only a:b@c can be read as written: the URL parser takes user-info up to the last "@".
        { name: "literal", file: file(password), env: {}, works: password === "a:b@c" },
        { name: "encoded", file: file(encoded), env: {}, works: true },
        { name: "${VAR} literal", file: file("${TOPO_TEST_PW}"), env: { TOPO_TEST_PW: password }, works: password === "a:b@c" },
        { name: "${VAR} encoded", file: file("${TOPO_TEST_PW}"), env: { TOPO_TEST_PW: encoded }, works: true },
        { name: "${VAR:-default} literal", file: file(`\${TOPO_TEST_UNSET_PW:-${password}}`), env: {}, works: password === "a:b@c" },
        { name: "${VAR:-default} encoded", file: file(`\${TOPO_TEST_UNSET_PW:-${encoded}}`), env: {}, works: true },
        {
          name: "management URL with the encoded password",
          file: file(encoded, `${mgmt.protocol}//${user}:${encoded}@${mgmt.host}`),
          env: {},
          works: true,
        },
        { name: "wrong password", file: file(`${encoded}x`), env: {}, works: false },
      ];
      for (const c of cases) {
        const wrong = c.name === "wrong password";
        const runs = c.works
          ? [["validate"], ["validate", "--json"], ["plan", "--json"], ["apply"], ["apply", "--json"]]
          : wrong
            ? [["plan"], ["plan", "--json"], ["apply"], ["apply", "--json"]]
            : [["validate"], ["validate", "--json"], ["plan"], ["apply", "--json"]];
        for (const args of runs.map((a) => [...a, "-f", c.file])) {
          const r = await runCli(args, c.env);
          expectNoPiece(password, [c.name, ...args], r);
          const what = `${password} ${c.name}: ${args.join(" ")}\n${r.stdout}${r.stderr}`;
          expect(r.code, what).toBe(c.works ? 0 : 1);
          if (wrong) expect(r.stdout + r.stderr, what).toMatch(/401|ACCESS_REFUSED|not_authorised|authenticat/i);
          else if (!c.works) expect(r.stdout + r.stderr, what).toMatch(/percent-encode the password \(e\.g\. \/ as %2F/);
        }
      }
      // The encoded runs did reach the broker: the queues are there.
      expect((await api("GET", `/api/queues/${encodeURIComponent(async)}/mplogin.async`)).status).toBe(200);
    }
  }, 600_000);
});

// A user's password that is also a name of the topology was masked wherever the name stood
// ("+ create exchange ***"), and the saved plan, JSON and markdown the same; a password holding
// "/", "@", "%", ":" or non-ASCII letters must reach none of them, in any form.
describe("users' passwords: one that is a name, and ones holding /, @, %, : and unicode", () => {
  it("every output keeps the names readable, warns at the name-like password's place, and holds no piece of the others", async () => {
    const b = broker();
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const named = uniqueName("named").replace(/-/g, "_");
    const strong = uniqueName("strong").replace(/-/g, "_");
    const STRONG = "Wö/rd@50%:ünï-cödé";
    const url = (v: string) => `amqp://${b.user}:\${TOPO_TEST_ADMIN_PW}@${b.host}:${b.amqpPort}/${encodeURIComponent(v)}`;
    const doc = {
      version: 1,
      clusters: { sync: { url: url(sync), management: b.mgmtBase }, async: { url: url(async), management: b.mgmtBase } },
      // A prefix of its own: users are the broker's, and another test file's users tagged for the
      // default prefix, made between this plan -o and its apply, made the saved plan stale.
      prefix: "sx",
      services: ["sxlogin"],
      users: { [named]: { password: "${TOPO_TEST_NAMED_PW}", consumes: ["sxlogin"] }, [strong]: { password: "${TOPO_TEST_STRONG_PW}", consumes: ["sxlogin"] } },
    };
    const file = writeFile("topology.yaml", JSON.stringify(doc, null, 2));
    const env = { TOPO_TEST_ADMIN_PW: encodeURIComponent(b.password), TOPO_TEST_NAMED_PW: "sxlogin.sync", TOPO_TEST_STRONG_PW: STRONG };
    const saved = join(dirname(file), "plan.json");
    try {
      const outputs: string[] = [];
      const run = async (args: string[], code = 0) => {
        const r = await runCli(args, env);
        expect(r.code, `${args.join(" ")}\n${r.stdout}${r.stderr}`).toBe(code);
        outputs.push(`${r.stdout}\n${r.stderr}`);
        return r;
      };
      const plan = await run(["plan", "-f", file]);
      expect(plan.stdout).toContain("+ create exchange sxlogin");
      expect(plan.stdout).toContain("sxlogin.sync");
      expect(plan.stdout).not.toContain("***.sync");
      expect(plan.stderr).toMatch(new RegExp(`^warning: .*topology\\.yaml:\\d+:\\d+: users\\.${named}\\.password: the password is also a name in this file`, "m"));
      expect(plan.stderr).not.toContain(`users.${strong}.password`);
      await run(["plan", "-f", file, "--json"]);
      await run(["plan", "-f", file, "--format", "markdown"]);
      await run(["plan", "-f", file, "-o", saved]);
      outputs.push(readFileSync(saved, "utf8"));
      await run(["show", saved]);
      await run(["apply", saved]);
      await run(["apply", "-f", file, "--json"]);
      // An error names the file's place: a wrong admin password.
      const wrong = await runCli(["plan", "-f", file], { ...env, TOPO_TEST_ADMIN_PW: "sxlogin.sync" });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/cluster (sync|async): .*401/);
      expect(wrong.stderr).toMatch(/clusters\.sync\.url: the URL's password is also a name/);
      outputs.push(wrong.stdout + wrong.stderr);
      const all = outputs.join("\n");
      for (const f of [...fragments(STRONG), ...fragments(encodeURIComponent(STRONG)), ...fragments(JSON.stringify(STRONG).slice(1, -1))]) {
        expect(all.includes(f), `an output holds ${JSON.stringify(f)}`).toBe(false);
      }
      // The broker took both passwords as written.
      expect((await api("GET", `/api/users/${strong}`)).status).toBe(200);
      const auth = await fetch(`${b.mgmtBase}/api/whoami`, { headers: { authorization: `Basic ${Buffer.from(`${strong}:${STRONG}`).toString("base64")}` } });
      expect(auth.status).toBe(401); // no management tag: refused as not authorised, not as a wrong password
      expect(await auth.text()).toMatch(/Not management user|not_authorised/i);
    } finally {
      await api("DELETE", `/api/users/${named}`);
      await api("DELETE", `/api/users/${strong}`);
    }
  }, 180_000);
});

describe("a user's password hash echoed by what answers a write", () => {
  it("is masked, the new password's hash and the stored one a tag change sends back alike", async () => {
    const b = broker();
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const worker = uniqueName("hashed").replace(/-/g, "_");
    /** Every password_hash the proxy echoed back. */
    const echoed: string[] = [];
    const proxy = await managementProxy({
      answer: (req, res) => {
        if (req.method === "GET" || !req.url?.startsWith("/api/users/")) return false;
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          const hash = (JSON.parse(body) as { password_hash?: string }).password_hash;
          if (hash) echoed.push(hash);
          res.writeHead(400, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "bad_request", reason: `could not parse ${body}` }));
        });
        return true;
      },
    });
    const doc = (password: string, tags: string[], management: string) => ({
      version: 1,
      clusters: { sync: { url: amqpUrl(sync), management }, async: { url: amqpUrl(async), management } },
      services: ["mplogin"],
      users: { [worker]: { password, tags, consumes: ["mplogin"] } },
    });
    const file = (password: string, tags: string[], management: string) => writeFile("topology.yaml", JSON.stringify(doc(password, tags, management), null, 2));
    try {
      expect((await runCli(["apply", "-f", file("first-Pw-1", [], b.mgmtBase)])).code).toBe(0);
      const stored = (await api("GET", `/api/users/${worker}`)).body.password_hash as string;
      const outputs: string[] = [];
      // A tag change sends the hash the broker stores; a new password a new hash.
      for (const [password, tags] of [
        ["first-Pw-1", ["monitoring"]],
        ["second-Pw-2", []],
      ] as const) {
        for (const json of [false, true]) {
          const r = await runCli(["apply", "-f", file(password, [...tags], proxy.url), ...(json ? ["--json"] : [])]);
          expect(r.code, r.stdout + r.stderr).toBe(1);
          expect(r.stdout + r.stderr).toMatch(/400 bad_request: could not parse \{"tags":"[^"]*","password_hash":"\*\*\*"/);
          outputs.push(r.stdout, r.stderr);
        }
      }
      expect(echoed).toContain(stored);
      expect(new Set(echoed).size).toBeGreaterThan(1);
      const all = outputs.join("\n");
      for (const h of echoed) expect(all.includes(h), `an output holds the hash ${h}`).toBe(false);
    } finally {
      proxy.close();
      await api("DELETE", `/api/users/${worker}`);
    }
  }, 120_000);
});

describe("Node's own debug log", () => {
  // NODE_DEBUG=http prints each request's headers: the Authorization header (user:password in
  // base64) went to stderr 32 times in a plan, past topo's masking (advm). topo says so first.
  it("is warned of when it would print what topo sends, and only then", async () => {
    const { sync, async } = { sync: uniqueName("sync"), async: uniqueName("async") };
    vhosts.push(sync, async);
    const file = writeTopology({ sync, async, services: ["mplogin"] });
    // Read as Node reads it: `*` matches anything, each entry is a whole name (rv2: `http*` and
    // `n*` turned the log on without a warning).
    for (const debug of ["http", "net,fs", "HTTPS", "http*", "n*", "*t"]) {
      const r = await runCli(["validate", "-f", file], { NODE_DEBUG: debug });
      expect(r.stderr.split("\n")[0]).toBe(`warning: NODE_DEBUG=${debug} makes Node print what topo sends, the management API's Authorization header (user and password in base64) included, which topo cannot mask: unset it, or keep that output as you keep the password`);
    }
    for (const debug of ["fs", "module", "", "fs, http"]) expect((await runCli(["validate", "-f", file], { NODE_DEBUG: debug })).stderr).not.toContain("warning: NODE_DEBUG");
  });
});

describe("a password typed where the command line does not take it", () => {
  const PW = "Sup3r-S3cret!Pw";
  const ALNUM = "Sup3rS3cretPw";
  const leaks = (r: CliResult) => [PW, ALNUM, encodeURIComponent(PW)].filter((s) => (r.stdout + r.stderr).includes(s));

  // commander echoes an option it does not know with its value, and "sync=USER:PASSWORD@HOST"
  // (the --url form without a scheme) is no URL the masking found: the password was printed.
  it("is masked in commander's echo of an unknown option", async () => {
    for (const value of [`sync=topo_u:${PW}@localhost:5672/x`, `topo_u:${encodeURIComponent(PW)}@localhost`, `amqp://topo_u:${PW} x@localhost/x`]) {
      for (const json of [[], ["--json"]]) {
        const r = await runCli(["import", `--urll=${value}`, ...json]);
        expect(r.code, value).toBe(1);
        expect(r.stdout + r.stderr, value).toContain("unknown option '--urll=");
        expect(leaks(r), value).toEqual([]);
      }
    }
    const r = await runCli(["import", `--urll=sync=topo_u:${PW}@localhost:5672/x`]);
    expect(r.stderr.split("\n")[0]).toBe("error: unknown option '--urll=sync=topo_u:***@localhost:5672/x'");
  });

  // Every argument was searched for a typed URL's password: a file named "deploy:rel-2026@eu.yaml"
  // taught it "rel-2026", and output said "deploy:***@eu.yaml is valid" (--json's "file" too).
  it("is not looked for in a file's name that holds ':' and '@', which output shows as it is", async () => {
    const t = writeTopology({ sync: "s", async: "a", services: ["mplogin"] });
    const file = join(dirname(t), "deploy:rel-2026@eu.yaml");
    writeFileSync(file, readFileSync(t, "utf8"));
    for (const args of [["-f", file], [`--file=${file}`]]) {
      const r = await runCli(["validate", ...args]);
      expect(r.stdout).toBe(`${file} is valid: 1 service on sync (1 queue), async (1 queue).\n`);
      expect(JSON.parse((await runCli(["validate", ...args, "--json"])).stdout).file).toBe(file);
    }
  });

  // A broker's URL typed without its scheme where a file belongs was taken for a file's name and
  // printed whole: "topo_u:pw@localhost:1:1: no such file" (-f), "wrote topo_u:pw@localhost" (-o,
  // with a file of that name written), "cannot read the saved plan topo_u:pw@localhost" (apply,
  // show). A password of fewer than four characters is masked only in a URL with its scheme.
  it("as user:password@host given where a file belongs (-f, -o, a saved plan) is refused before the command runs, masked", async () => {
    const t = writeTopology({ sync: "s", async: "a", services: ["mplogin"] });
    const dir = dirname(t);
    for (const pw of ["pw", PW]) {
      const url = `topo_u:${pw}@localhost:5672/x`;
      const out = join(dir, `topo_u:${pw}@localhost`);
      const cases: [string[], string][] = [
        [["validate", "-f", url], `-f names no file in ${process.cwd()}, and it has the form <user>:<password>@<host> of a broker's URL (topo_u:***@localhost:5672/x)`],
        [["plan", `--file=${url}`, "--json"], "-f names no file in"],
        [["export", "definitions", "-f", t, "--cluster", "sync", "-o", out], `-o was given no file's name: it has the form <user>:<password>@<host> of a broker's URL (***@localhost), and topo writes no file of that name`],
        [["export", "celery", "-f", t, "--cluster", "sync", `--output=${out}`], "-o was given no file's name"],
        [["show", url], "show's PLANFILE names no file in"],
        [["apply", url, "--json"], "apply's PLANFILE names no file in"],
      ];
      for (const [args, said] of cases) {
        const r = await runCli(args);
        const all = r.stdout + r.stderr;
        expect(r.code, args.join(" ")).toBe(1);
        expect(all, args.join(" ")).toContain(said);
        expect(all, args.join(" ")).not.toContain(`:${pw}@`);
        expect(leaks(r), args.join(" ")).toEqual([]);
        if (args.includes("--json")) expect(JSON.parse(r.stdout).error.code).toBe("usage");
        expect(existsSync(out), args.join(" ")).toBe(false);
      }
    }
  });

  // `--password-env "$RABBITMQ_PASSWORD"` gives the value where the name belongs: import printed it
  // ('--password-env "Sup3r-S3cret!Pw" is not an environment variable name'), and an alphanumeric
  // one three times ("is read from $Sup3rS3cretPw, which is not set", "export Sup3rS3cretPw=...").
  it("as --password-env's name is not shown, and the variable that holds it is named", async () => {
    const url = `sync=amqp://topo_u@${broker().host}:${broker().amqpPort}/x`;
    for (const value of [PW, ALNUM]) {
      const r = await runCli(["import", "--url", url, "--password-env", value], { TOPO_TEST_TYPED_PW: value });
      expect(r.code, value).toBe(1);
      expect(leaks(r), value).toEqual([]);
      expect(r.stderr, value).toContain("(not shown) is the value of $TOPO_TEST_TYPED_PW");
      expect(r.stderr, value).toContain("write --password-env TOPO_TEST_TYPED_PW");
    }
    const r = await runCli(["import", "--url", url, "--password-env", PW]);
    expect(r.code).toBe(1);
    expect(leaks(r)).toEqual([]);
    expect(r.stderr).toContain("--password-env takes the name of an environment variable");
    // Shaped like a name, and in no exported variable (typed, or from a shell variable never
    // exported): import said "is read from $<it>, which is not set" and "export <it>=<password>".
    const unset = await runCli(["import", "--url", url, "--password-env", ALNUM]);
    expect(unset.code).toBe(1);
    expect(leaks(unset)).toEqual([]);
    expect(unset.stderr).toContain("is read from the variable --password-env names (not shown: what --password-env was given may be the password itself), which is not set");
    expect(unset.stderr).toContain("hint: export that variable with the password");
  });
});

// RabbitMQ reads a login (connection.start-ok) of at most initial_frame_max, 4096 bytes by default,
// and drops a longer one without a reply 3 s later. A password of 3,800 bytes (an OAuth 2 token
// as password is longer still) passed plan, whose login probe sends less beside it, and apply's
// connects were reset eight times over and said to be a node going down.
describe("a login longer than the broker reads before the connection is tuned", () => {
  const user = `topo_long_${process.pid}`;
  const PW = "Lq9-".repeat(950);
  suiteUsers([{ name: user, password: PW, tags: "" }]);

  it("fails plan and apply at once, saying its length and what to do, never showing it", async () => {
    const b = broker();
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    for (const v of [sync, async]) {
      await api("PUT", `/api/vhosts/${encodeURIComponent(v)}`);
      await api("PUT", `/api/permissions/${encodeURIComponent(v)}/${user}`, { configure: ".*", write: ".*", read: ".*" });
    }
    const mgmt = new URL(b.mgmtBase);
    const management = `http://${b.user}:${b.password}@${mgmt.host}`;
    const url = (v: string) => `amqp://${user}:\${TOPO_TEST_LONG_PW}@${b.host}:${b.amqpPort}/${encodeURIComponent(v)}`;
    const file = writeFile("topology.yaml", JSON.stringify({ version: 1, clusters: { sync: { url: url(sync), management }, async: { url: url(async), management } }, services: ["mplogin"] }));
    for (const command of ["plan", "apply"]) {
      const r = await runCli([command, "-f", file], { TOPO_TEST_LONG_PW: PW });
      expect(r.code, `${command}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(
        `hint: the user name and password of "${user}" take ${user.length + PW.length} bytes, and RabbitMQ drops a login longer than its initial_frame_max (4096 bytes by default, with what the client sends beside them) without a reply: use a shorter password in clusters.sync.url, or raise initial_frame_max in the broker's rabbitmq.conf`,
      );
      expect(r.stderr).not.toMatch(/shutting down|trying again/);
      expect(r.stdout + r.stderr).not.toContain("Lq9-Lq9-");
    }
    // Nothing was written.
    expect((await api("GET", `/api/exchanges/${encodeURIComponent(async)}/mplogin`)).status).toBe(404);
  }, 60_000);
});
