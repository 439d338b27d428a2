// Property-based fuzzing of topo against a live local broker (guest/guest on 127.0.0.1:5672 and
// 15672): random valid files (odd vhost names, long service names, every queue type, users with
// passwords holding / @ : % #), random drift behind topo's back over AMQP and HTTP (bindings,
// policies, foreign objects with and without the prefix, messages published and held unacked, a
// publisher running through the apply, users' rights), then apply and the invariants after each:
// a successful apply plans to "No changes." (--detailed-exitcode 0, or degraded); nothing outside
// topo's namespace changed; no message lost; no password, nor a 6-character piece of it (raw or
// URL-encoded), in any output; errors exit 1 with a place. Not part of npm test: it runs minutes.
//   npm run build && TOPO_FUZZ_SEED=31 node scripts/fuzz-broker.mjs
// TOPO_FUZZ_ROUNDS (files, default 6), TOPO_FUZZ_STEPS (drift-apply steps each, default 5),
// TOPO_FUZZ_TAG (what every vhost and user it makes starts with, default topo-fuzz; it deletes
// them), VERBOSE=1 (each apply's plan line). Every failure names the seed and the round's log.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve as resolvePath } from "node:path";
import amqplib from "amqplib";
import { prng } from "./prng.mjs";

const CLI = resolvePath(import.meta.dirname, "../dist/cli.js");
const MGMT = "http://127.0.0.1:15672";
const SEED = Number(process.env.TOPO_FUZZ_SEED ?? Date.now() % 1e6);
const ROUNDS = Number(process.env.TOPO_FUZZ_ROUNDS ?? 6);
const STEPS = Number(process.env.TOPO_FUZZ_STEPS ?? 5);
const TAG = process.env.TOPO_FUZZ_TAG ?? "topo-fuzz";

let rnd = prng(SEED);
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const chance = (p) => rnd() < p;
const int = (a, b) => a + Math.floor(rnd() * (b - a + 1));
const letters = (n) => Array.from({ length: n }, () => pick("abcdefghijklmnopqrstuvwxyz_".split(""))).join("");

async function api(method, path, body) {
  const r = await fetch(`${MGMT}${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from("guest:guest").toString("base64")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const t = await r.text();
  let b = t;
  try { b = t ? JSON.parse(t) : undefined; } catch {}
  return { status: r.status, body: b };
}
const vh = encodeURIComponent;

function run(args, env = {}) {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 26, timeout: 300_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const failures = [];
function fail(what, ctx) {
  failures.push({ what, ...ctx });
  console.log(`\n!!! FAIL TOPO_FUZZ_SEED=${SEED}: ${what}`);
  if (ctx) console.log(JSON.stringify(ctx, null, 1).slice(0, 4000));
}

// ---------- generation ----------
const ODD_VHOST = [".", "%", "/", "é", "日本", "a b", "x".repeat(60), "#", "?", "+", ":", "@"];
function vhostName(kind) {
  let s = `${TAG}-${kind}${Math.floor(rnd() * 1e6)}`;
  for (let i = int(0, 3); i > 0; i--) s += pick(ODD_VHOST);
  return s;
}
const PW_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789/@:%#?+= ".split("");
function password() {
  let s = "";
  for (let i = int(8, 20); i > 0; i--) s += pick(PW_CHARS);
  return s + pick(["/", "@", ":", "%", "#"]) + "Q9z";
}

function queueSettings(kind) {
  const type = pick(["classic", "classic", "quorum", "stream"]);
  const s = { type };
  const args = {};
  if (type === "classic") {
    s.durable = kind === "async" ? pick([true, true, false]) : pick([false, true]);
    s.mirrored = pick([true, false]);
    if (chance(0.3)) args["x-max-length"] = pick([1000, 100000, 5]);
    if (chance(0.2)) args["x-message-ttl"] = pick([60000, 3600000]);
    if (chance(0.2)) args["x-max-priority"] = int(1, 10);
    if (chance(0.2)) args["x-queue-mode"] = "lazy";
    if (chance(0.2)) args["x-overflow"] = pick(["drop-head", "reject-publish"]);
  } else if (type === "quorum") {
    s.mirrored = false;
    if (chance(0.3)) args["x-delivery-limit"] = pick([5, 10]);
    if (chance(0.3)) args["x-max-length"] = pick([1000, 100000]);
    if (chance(0.2)) args["x-overflow"] = "reject-publish";
  } else {
    s.mirrored = false;
    if (chance(0.4)) args["x-max-age"] = pick(["7D", "1h"]);
    if (chance(0.3)) args["x-max-length-bytes"] = pick([100000000, 200000000]);
  }
  if (type !== "stream" && chance(0.2)) {
    args["x-dead-letter-exchange"] = pick(["", "fzdlx"]);
    if (chance(0.5)) args["x-dead-letter-routing-key"] = "dead";
  }
  if (Object.keys(args).length) s.arguments = args;
  return s;
}

function genFile(prefix) {
  const n = int(1, 4);
  const names = new Set();
  while (names.size < n) {
    const len = chance(0.1) ? int(100, 200) : int(2, 8);
    const name = prefix + letters(len).replace(/^_+/, "a");
    if (["celery", "celeryev"].includes(name)) continue;
    names.add(name);
  }
  const services = [...names].map((name) => {
    if (chance(0.25)) return name;
    const svc = { name };
    for (const kind of ["sync", "async"]) {
      const r = rnd();
      if (r < 0.15) svc[kind] = false;
      else if (r < 0.3) svc[kind] = true;
      else svc[kind] = queueSettings(kind);
    }
    if (svc.sync === false && svc.async === false) svc.async = true;
    return svc;
  });
  return { services };
}

function genUsers(services, prefix, st) {
  const users = {};
  const nu = int(0, 2);
  for (let i = 0; i < nu; i++) {
    const name = `${TAG}${pick(["", ".", "@", "-"])}u${i}_${st.tag}`;
    const env = `FZ_PW_${i}`;
    st.env[env] ??= password();
    const names = services.map((s) => (typeof s === "string" ? s : s.name));
    users[name] = {
      password: `\${${env}}`,
      consumes: names.filter(() => chance(0.5)),
      publishes: chance(0.3) ? "all" : names.filter(() => chance(0.4)),
      ...(chance(0.3) ? { tags: ["management"] } : {}),
    };
    if (!users[name].consumes.length && users[name].publishes !== "all" && !users[name].publishes.length) users[name].publishes = "all";
  }
  return users;
}

function writeDoc(st) {
  st.everUsers ??= new Set();
  for (const u of Object.keys(st.users ?? {})) st.everUsers.add(u);
  const url = (v) => `amqp://${encodeURIComponent(st.admin)}:\${FZ_ADMIN_PW_ENC}@127.0.0.1:5672/${encodeURIComponent(v)}`;
  const doc = {
    version: 1,
    prefix: st.prefix,
    clusters: {
      sync: { url: url(st.sync), management: `http://127.0.0.1:15672` },
      async: { url: url(st.async), management: `http://127.0.0.1:15672` },
    },
    services: st.file.services,
    ...(st.users ? { users: st.users } : {}),
  };
  writeFileSync(st.path, JSON.stringify(doc, null, 2));
  return doc;
}

// ---------- broker state ----------
function owned(st, kind, name) {
  const p = st.prefix;
  if (name.startsWith(`topo.${p}.`) || name.startsWith("topo.")) return true;
  if (kind === "exchange") return new RegExp(`^${p}[a-z_]+$`).test(name) && !["celery", "celeryev"].includes(name);
  if (kind === "queue") return new RegExp(`^${p}[a-z_]+\\.(sync|async)$`).test(name);
  if (kind === "policy") return name.startsWith("topo.");
  return false;
}
async function foreign(st) {
  const out = {};
  const tagged = new Set(((await api("GET", "/api/users")).body ?? []).filter((u) => (Array.isArray(u.tags) ? u.tags : String(u.tags).split(",")).some((t) => t.startsWith("topo."))).map((u) => u.name));
  const mine = (x) => x.user in (st.users ?? {}) || tagged.has(x.user) || (st.everUsers ?? new Set()).has(x.user);
  for (const v of [st.sync, st.async]) {
    const dr = await api("GET", `/api/definitions/${vh(v)}`);
    const d = dr.status === 200 ? dr.body : {};
    const ex = new Set((d.exchanges ?? []).map((e) => e.name));
    const qs = new Set((d.queues ?? []).map((q) => q.name));
    out[v] = {
      exchanges: (d.exchanges ?? []).filter((e) => !owned(st, "exchange", e.name)).sort((a, b) => a.name.localeCompare(b.name)),
      queues: (d.queues ?? []).filter((q) => !owned(st, "queue", q.name)).sort((a, b) => a.name.localeCompare(b.name)),
      policies: (d.policies ?? []).filter((q) => !owned(st, "policy", q.name)),
      bindings: (d.bindings ?? [])
        .filter((b) => !b.source.startsWith("topo.") && !(owned(st, "exchange", b.source) && owned(st, b.destination_type, b.destination)))
        .map((b) => JSON.stringify([b.source, b.destination_type, b.destination, b.routing_key, b.arguments]))
        .sort(),
      perms: ((await api("GET", `/api/vhosts/${vh(v)}/permissions`)).body ?? []).filter?.((x) => !mine(x)) ?? [],
      tperms: ((await api("GET", `/api/vhosts/${vh(v)}/topic-permissions`)).body ?? []).filter?.((x) => !mine(x)) ?? [],
      _ex: ex,
      _qs: qs,
    };
  }
  return out;
}

/** Ready messages of each classic/quorum queue of both vhosts, read by passive declare. */
async function counts(st) {
  const out = {};
  for (const v of [st.sync, st.async]) {
    const qr = await api("GET", `/api/queues/${vh(v)}?disable_stats=true`);
    if (qr.status !== 200) continue;
    const qs = qr.body;
    await api("PUT", `/api/permissions/${vh(v)}/guest`, { configure: ".*", write: ".*", read: ".*" });
    const conn = await amqplib.connect(`amqp://guest:guest@127.0.0.1:5672/${vh(v)}`);
    try {
      for (const q of qs) {
        if (q.type === "stream") continue;
        const ch = await conn.createChannel();
        ch.on("error", () => {});
        try {
          const r = await ch.checkQueue(q.name);
          out[`${v}|${q.name}`] = r.messageCount;
        } catch {}
        await ch.close().catch(() => {});
      }
    } finally {
      await conn.close().catch(() => {});
    }
  }
  return out;
}
const total = (c) => Object.values(c).reduce((a, b) => a + b, 0);

// ---------- drift ----------
async function drift(st) {
  const v = pick([st.sync, st.async]);
  const d = (await api("GET", `/api/definitions/${vh(v)}`)).body ?? {};
  const op = int(0, 11);
  const svcEx = (d.exchanges ?? []).filter((e) => owned(st, "exchange", e.name) && !e.name.startsWith("topo."));
  const svcQ = (d.queues ?? []).filter((q) => owned(st, "queue", q.name) && !q.name.startsWith("topo."));
  const conn = await amqplib.connect(`amqp://guest:guest@127.0.0.1:5672/${vh(v)}`);
  const ch = await conn.createConfirmChannel();
  ch.on("error", () => {});
  conn.on("error", () => {});
  let note = `op${op}`;
  try {
    switch (op) {
      case 0: {
        const b = pick((d.bindings ?? []).filter((b) => owned(st, "exchange", b.source)));
        if (b) { await (b.destination_type === "queue" ? ch.unbindQueue(b.destination, b.source, b.routing_key, b.arguments) : ch.unbindExchange(b.destination, b.source, b.routing_key, b.arguments)); note = `unbind ${b.source}->${b.destination}`; }
        break;
      }
      case 1: {
        const name = pick(["audit", "fz.foreign", "日本.q", "a%2Fb", `${st.prefix}x.weird`, `${st.prefix}UP.async`]);
        await ch.assertQueue(name, { durable: true });
        const e = pick(svcEx);
        if (e) await ch.bindQueue(name, e.name, pick(["#", `${e.name}.async.#`, "x"]));
        note = `foreign queue ${name} bound to ${e?.name}`;
        break;
      }
      case 2: {
        const name = pick(["fzforeignx", `${st.prefix}.dotted`, `${st.prefix}zz`, "Amq.x"]);
        await ch.assertExchange(name, pick(["topic", "fanout", "direct"]), { durable: true });
        const q = pick(svcQ);
        if (q) await ch.bindQueue(q.name, name, "k");
        note = `exchange ${name} bound to ${q?.name}`;
        break;
      }
      case 3: {
        const pol = pick((d.policies ?? []).filter((p) => p.name.startsWith("topo.")));
        if (pol) {
          await api("PUT", `/api/policies/${vh(v)}/${vh(pol.name)}`, { pattern: pol.pattern, definition: { ...pol.definition, "max-length": 999999 }, priority: pol.priority, "apply-to": pol["apply-to"] });
          note = `changed policy ${pol.name}`;
        }
        break;
      }
      case 4: {
        await api("PUT", `/api/policies/${vh(v)}/fzpol`, { pattern: "^fz\\.", definition: { expires: 3600000 }, priority: 1, "apply-to": "queues" });
        note = "foreign policy fzpol";
        break;
      }
      case 5:
      case 6: {
        const q = pick(svcQ.filter((q) => q.arguments?.["x-queue-type"] !== "stream"));
        if (q) {
          const n = int(1, 20);
          for (let i = 0; i < n; i++) ch.sendToQueue(q.name, Buffer.from(`m${i}`), { persistent: true });
          await ch.waitForConfirms?.();
          note = `published ${n} to ${q.name}`;
        }
        break;
      }
      case 7: {
        const q = pick(svcQ.filter((q) => q.arguments?.["x-queue-type"] !== "stream"));
        if (q) {
          // A consumer that holds messages unacknowledged, open across the apply.
          const c = await amqplib.connect(`amqp://guest:guest@127.0.0.1:5672/${vh(v)}`);
          const cc = await c.createChannel();
          cc.on("error", () => {});
          c.on("error", () => {});
          await cc.prefetch(3);
          for (let i = 0; i < 5; i++) cc.sendToQueue(q.name, Buffer.from(`h${i}`), { persistent: true });
          const held = [];
          await cc.consume(q.name, (m) => { if (m) held.push(m); else held.cancelled = true; });
          await new Promise((r) => setTimeout(r, 300));
          st.holders.push({ conn: c, ch: cc, held, v, q: q.name });
          note = `holding ${held.length} unacked on ${q.name}`;
        }
        break;
      }
      case 9: {
        const u = pick(Object.keys(st.users ?? {}));
        if (u) { await api("PUT", `/api/permissions/${vh(v)}/${vh(u)}`, { configure: ".*", write: ".*", read: ".*" }); note = `widened ${u}`; }
        break;
      }
      case 10: {
        const u = pick(Object.keys(st.users ?? {}));
        if (u) { await api("DELETE", `/api/topic-permissions/${vh(v)}/${vh(u)}`); await api("PUT", `/api/users/${vh(u)}`, { password: "changed-behind", tags: `topo.${st.prefix},management` }); note = `user ${u} changed behind`; }
        break;
      }
      case 11: {
        const u = `${TAG}-foreign_${st.tag}`;
        await api("PUT", `/api/users/${vh(u)}`, { password: "x-foreign-1", tags: "" });
        await api("PUT", `/api/permissions/${vh(v)}/${vh(u)}`, { configure: "^fz", write: ".*", read: ".*" });
        await api("PUT", `/api/topic-permissions/${vh(v)}/${vh(u)}`, { exchange: "amq.topic", write: ".*", read: ".*" });
        note = `foreign user ${u}`;
        break;
      }
      case 8: {
        const e = pick(svcEx);
        const q = pick(svcQ);
        if (e && q) { await ch.bindQueue(q.name, e.name, "extra.key"); note = `extra binding ${e.name}->${q.name}`; }
        break;
      }
    }
  } catch (err) {
    note += ` (drift error ${err.message})`;
  } finally {
    await conn.close().catch(() => {});
  }
  return `${v}: ${note}`;
}

async function resolve(st) {
  const notes = [];
  for (const h of st.holders.splice(0)) await h.conn.close().catch(() => {});
  for (const v of [st.sync, st.async]) {
    const d = (await api("GET", `/api/definitions/${vh(v)}`)).body ?? {};
    for (const q of d.queues ?? []) {
      if (!owned(st, "queue", q.name)) { await api("DELETE", `/api/queues/${vh(v)}/${vh(q.name)}`); notes.push(`deleted queue ${q.name}`); }
      else if (q.arguments?.["x-queue-type"] !== "stream") await api("DELETE", `/api/queues/${vh(v)}/${vh(q.name)}/contents`);
    }
    for (const e of d.exchanges ?? []) if (!owned(st, "exchange", e.name) && e.name && !e.name.startsWith("amq.")) { await api("DELETE", `/api/exchanges/${vh(v)}/${vh(e.name)}`); notes.push(`deleted exchange ${e.name}`); }
  }
  return `purged; ${notes.join(", ")}`;
}

// ---------- file mutation ----------
function mutateFile(st) {
  const s = st.file.services;
  const r = int(0, 5);
  if (r === 0 && s.length > 1) s.splice(int(0, s.length - 1), 1);
  else if (r === 1) s.push(genFile(st.prefix).services[0]);
  else {
    const i = int(0, s.length - 1);
    let svc = s[i];
    if (typeof svc === "string") svc = s[i] = { name: svc };
    const kind = pick(["sync", "async"]);
    const cur = svc[kind];
    if (cur && typeof cur === "object" && chance(0.5)) {
      cur.arguments = { ...(cur.arguments ?? {}) };
      if (cur.type === "stream") cur.arguments["x-max-age"] = pick(["2D", "3h"]);
      else cur.arguments["x-max-length"] = pick([2, 50000, 70000, 80000]);
      if (cur.type === "classic" && chance(0.3)) cur.durable = !cur.durable;
    } else svc[kind] = pick([false, true, queueSettings(kind), queueSettings(kind)]);
    if (svc.sync === false && svc.async === false) svc.async = true;
  }
  // Dedupe names (a push could repeat one).
  const seen = new Set();
  st.file.services = s.filter((x) => { const n = typeof x === "string" ? x : x.name; if (seen.has(n)) return false; seen.add(n); return true; });
  if (st.users && chance(0.5)) st.users = genUsers(st.file.services, st.prefix, st);
  const names = new Set(st.file.services.map((x) => (typeof x === "string" ? x : x.name)));
  for (const u of Object.values(st.users ?? {})) {
    u.consumes = u.consumes.filter((n) => names.has(n));
    if (u.publishes !== "all") u.publishes = u.publishes.filter((n) => names.has(n));
    if (!u.consumes.length && u.publishes !== "all" && !u.publishes.length) u.publishes = "all";
  }
}

// ---------- checks ----------
function pieces(pw) {
  const out = new Set([pw, encodeURIComponent(pw)]);
  for (const s of [pw, encodeURIComponent(pw)]) for (let i = 0; i + 6 <= s.length; i++) out.add(s.slice(i, i + 6));
  return [...out];
}
function checkSecrets(st, label, r) {
  let text = r.stdout + r.stderr;
  for (const n of [st.sync, st.async, st.admin]) for (const f of [n, encodeURIComponent(n)]) text = text.split(f).join("<name>");
  for (const pw of [st.adminPw, ...Object.values(st.env)]) {
    for (const p of pieces(pw)) {
      if (/^[a-z0-9]+$/.test(p) && p.length < 8) continue; // plain words may appear by chance
      if (text.includes(p)) { fail(`password piece ${JSON.stringify(p)} printed by ${label}`, { out: text.slice(Math.max(0, text.indexOf(p) - 300), text.indexOf(p) + 300) }); return; }
    }
  }
}
function checkError(label, r) {
  if (r.code === 0 || r.code === 2) return;
  if (r.code !== 1) { fail(`${label} exited ${r.code}`, { stderr: r.stderr.slice(0, 3000) }); return; }
  const e = r.stderr;
  if (!/cluster |:\d+:\d+|refus|error/i.test(e)) fail(`${label}: error without place`, { stderr: e.slice(0, 3000) });
  if (/\n\s+at .*\.js:\d+/.test(e) || /internal/i.test(e.split("\n")[0] ?? "")) fail(`${label}: stack or internal error`, { stderr: e.slice(0, 3000) });
}

/** Publishes to the service exchanges, with confirms and mandatory, while apply runs. */
async function publisher(st) {
  const v = pick([st.sync, st.async]);
  const kind = v === st.sync ? "sync" : "async";
  const qs = ((await api("GET", `/api/queues/${vh(v)}?disable_stats=true`)).body ?? []).filter?.((q) => q.type !== "stream" && owned(st, "queue", q.name) && q.name.endsWith(`.${kind}`) && !q.name.startsWith("topo.") && !q.arguments?.["x-max-length"] && !q.arguments?.["x-message-ttl"]) ?? [];
  if (!qs.length) return undefined;
  const conn = await amqplib.connect(`amqp://guest:guest@127.0.0.1:5672/${vh(v)}`);
  conn.on("error", () => {});
  const ch = await conn.createConfirmChannel();
  ch.on("error", () => {});
  let returned = 0, confirmed = 0, stop = false;
  ch.on("return", () => { returned++; });
  const loop = (async () => {
    while (!stop) {
      const q = pick(qs).name;
      const ex = q.slice(0, q.lastIndexOf("."));
      try {
        await new Promise((res, rej) => ch.publish(ex, `${q}.task`, Buffer.from("c"), { mandatory: true, persistent: true }, (err) => (err ? rej(err) : res())));
        confirmed++;
      } catch { await new Promise((r) => setTimeout(r, 20)); if (ch.closed) break; }
    }
  })();
  ch.on("close", () => { ch.closed = true; });
  return {
    returned: () => returned,
    stop: async () => { stop = true; await loop; await conn.close().catch(() => {}); return confirmed - returned; },
  };
}

async function step(st, label, flags) {
  const env = st.envAll();
  const beforeF = await foreign(st);
  const beforeC = await counts(st);
  const heldBefore = st.holders.reduce((a, h) => a + (h.held.cancelled ? 0 : h.held.length), 0);
  const pub = chance(0.5) ? await publisher(st) : undefined;
  const r = await run(["apply", "-f", st.path, ...flags], env);
  const published = pub ? await pub.stop() : 0;
  if (pub) st.log.push(`${label}: published ${published} during apply (${pub.returned()} returned)`);
  const summary = (r.stdout.match(/^Plan: .*$/m) ?? [""])[0] + " | " + (r.stderr.trim().split("\n").filter((l) => /error|refus/i.test(l)).slice(0, 2).join(" / ")).slice(0, 300);
  st.log.push(`${label}: apply ${flags.join(" ")} -> ${r.code} ${summary}`);
  if (process.env.VERBOSE) console.log(`  ${label}: ${r.code} ${summary}`);
  if (process.env.VERBOSE && r.code === 1 && !/^Plan/m.test(r.stdout)) console.log(r.stderr.slice(0, 1500));
  checkSecrets(st, `apply ${label}`, r);
  checkError(`apply ${label}`, r);
  const afterF = await foreign(st);
  const afterC = await counts(st);
  // foreign objects
  for (const v of [st.sync, st.async]) {
    const b = beforeF[v], a = afterF[v];
    for (const k of label === "initial" ? ["exchanges", "queues", "policies"] : ["exchanges", "queues", "policies", "perms", "tperms"]) {
      const bj = JSON.stringify(b[k]), aj = JSON.stringify(a[k]);
      if (bj !== aj) fail(`foreign ${k} changed by apply ${label} in ${v}`, { before: b[k], after: a[k], stdout: r.stdout.slice(0, 3000), log: st.log });
    }
    // A foreign binding may go only where apply said so (unmanaged deletes), which we never allow.
    const gone = b.bindings.filter((x) => !a.bindings.includes(x));
    const lost = gone.filter((x) => { const [s, , d] = JSON.parse(x); return a._ex.has(s) && (a._qs.has(d) || a._ex.has(d)); });
    if (gone.length) fail(`foreign bindings removed by apply ${label} in ${v}`, { gone, stillThere: lost.length, code: r.code, stdout: r.stdout.slice(0, 3000), stderr: r.stderr.slice(0, 2000), log: st.log });
  }
  // messages
  const heldAfter = st.holders.reduce((a, h) => a + (h.held.cancelled ? 0 : h.held.length), 0);
  const tb = total(beforeC) + heldBefore + published, ta = total(afterC) + heldAfter;
  const cancelled = st.holders.filter((h) => h.held.cancelled);
  if (ta < tb || cancelled.length) fail(`messages lost by apply ${label}: ${tb} -> ${ta}`, { beforeC, afterC, heldBefore, heldAfter, cancelled: cancelled.map((h) => h.q), code: r.code, stdout: r.stdout.slice(0, 3000), stderr: r.stderr.slice(0, 2000), log: st.log });
  if (r.code === 0) {
    const p = await run(["plan", "-f", st.path, "--detailed-exitcode"], env);
    checkSecrets(st, `plan after ${label}`, p);
    if (p.code !== 0) {
      let degraded = false;
      try { degraded = JSON.parse((await run(["plan", "-f", st.path, "--json"], env)).stdout).summary.degraded > 0; } catch {}
      if (!degraded || !/degraded|cannot repair/i.test(p.stdout + p.stderr))
        fail(`plan after successful apply ${label} exits ${p.code}`, { plan: p.stdout.slice(0, 3000), stderr: p.stderr.slice(0, 2000), apply: r.stdout.slice(0, 2000), log: st.log });
    }
  }
  return r;
}

async function round(n) {
  const st = {
    tag: `${SEED}r${n}`,
    prefix: pick(["fz", "fzq", "fzk"]),
    sync: vhostName("s"),
    async: vhostName("a"),
    admin: `${TAG}-adm${pick(["", ".", "é", "%"])}_${SEED}r${n}`,
    adminPw: password(),
    env: {},
    holders: [],
    log: [],
    path: join(mkdtempSync(join(tmpdir(), "topo-fuzz-")), pick(["topology.yaml", "topo.json"])),
  };
  st.envAll = () => ({ ...st.env, FZ_ADMIN_PW_ENC: encodeURIComponent(st.adminPw) });
  st.file = genFile(st.prefix);
  if (chance(0.5)) st.users = genUsers(st.file.services, st.prefix, st);
  await api("PUT", `/api/users/${vh(st.admin)}`, { password: st.adminPw, tags: "administrator" });
  st.log.push(`round ${n}: prefix ${st.prefix}, vhosts ${JSON.stringify([st.sync, st.async])}, admin ${st.admin}`);
  try {
    writeDoc(st);
    st.log.push(`file: ${JSON.stringify({ services: st.file.services, users: st.users })}`);
    const v = await run(["validate", "-f", st.path], st.envAll());
    if (v.code !== 0) { fail("generated file invalid", { stderr: v.stderr.slice(0, 3000), file: st.file }); return; }
    // First apply creates the vhosts; the admin needs rights on them afterwards for nothing (topo uses the admin).
    await step(st, "initial", ["--allow-destructive"]);
    for (const v of [st.sync, st.async]) await api("PUT", `/api/permissions/${vh(v)}/guest`, { configure: ".*", write: ".*", read: ".*" });
    for (let i = 0; i < STEPS; i++) {
      const nd = int(1, 3);
      for (let j = 0; j < nd; j++) st.log.push(`drift: ${await drift(st)}`);
      if (chance(0.5)) {
        mutateFile(st);
        writeDoc(st);
        st.log.push(`file: ${JSON.stringify({ services: st.file.services, users: st.users })}`);
      }
      const plan = await run(["plan", "-f", st.path, "--detailed-exitcode"], st.envAll());
      checkSecrets(st, "plan", plan);
      checkError("plan", plan);
      const flags = pick([[], ["--allow-destructive"], ["--allow-destructive"]]);
      const r = await step(st, `step${i}`, flags);
      if (r.code === 1 && chance(0.6)) st.log.push(`resolve: ${await resolve(st)}`);
      // Let some holders go.
      if (chance(0.5) && st.holders.length) {
        const h = st.holders.shift();
        await h.conn.close().catch(() => {});
      }
    }
  } finally {
    for (const h of st.holders) await h.conn.close().catch(() => {});
    for (const v of [st.sync, st.async]) await api("DELETE", `/api/vhosts/${vh(v)}`);
    await api("DELETE", `/api/users/${vh(st.admin)}`);
    if (st.users) for (const u of Object.keys(st.users)) await api("DELETE", `/api/users/${vh(u)}`);
    const us = (await api("GET", "/api/users")).body ?? [];
    for (const u of us) if (u.name.includes(`_${st.tag}`)) await api("DELETE", `/api/users/${vh(u.name)}`);
  }
}

console.log(`seed ${SEED}`);
for (let n = 0; n < ROUNDS; n++) {
  const before = failures.length;
  await round(n);
  console.log(`round ${n}: ${failures.length - before} failures`);
}
console.log(`done seed ${SEED}: ${failures.length} failures`);
process.exit(failures.length ? 1 : 0);
