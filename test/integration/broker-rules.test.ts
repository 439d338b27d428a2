// The rule table proven on real brokers: on each RabbitMQ version at hand, declare every argument
// topo accepts (every value of an enum, a representative value otherwise) on every queue type,
// durable and transient, over AMQP as apply does, and check that brokerRefuses predicted exactly
// what the broker accepted and refused. A new RabbitMQ version is added by running this file
// against it; a mismatch names the declare, the prediction and the broker's reply.
//
// Brokers: 3.10 is the suite's broker (RABBITMQ_URL, else 127.0.0.1:5672); 4.0 comes from
// scripts/rabbitmq4.sh (CI starts it); 4.3 from RABBITMQ43_URL and RABBITMQ43_MANAGEMENT_URL when
// set, else scripts/rabbitmq43.sh when the checkout has it. A broker that is not there is skipped
// with the reason; TOPO_SKIP_RABBITMQ4=1 skips both 4.x brokers, as in rabbitmq4.test.ts.

import { existsSync } from "node:fs";
import { join } from "node:path";
import amqplib from "amqplib";
import { beforeAll, describe, expect, it } from "vitest";
import { ARGUMENTS, type ArgumentRule } from "../../src/config/arguments.js";
import { brokerIgnores, brokerRefuses, permitsOf, type BrokerPermits, type QueueDeclare } from "../../src/plan/broker-rules.js";
import type { ArgValue, Args, QueueType } from "../../src/model.js";
import { broker as suiteBroker, ROOT, scriptEnv, skipWhenUnavailable, startTestBroker, uniqueName, type TestBroker } from "../helpers/broker.js";

/**
 * How long a queue declared with x-expires lives here: long enough to outlast the whole table. A queue
 * that expires while its own declare is answered is a broker race, not a rule: RabbitMQ 4.3.6 closed
 * the connection with 541 INTERNAL_ERROR on a quorum queue with x-expires 10 once in CI (2026-12-07).
 * Its log says why: the channel crashed in rabbit_quorum_queue:start_cluster on
 * {badmatch,{error,{shutdown,delete}}}, the queue already expired. 8 connections declaring 60 such
 * queues each got it 1 time in 480 with x-expires 10, 7 in 480 with 1, and never with 600000.
 */
const EXPIRES_MS = 600_000;

/** The values of an argument worth declaring: every value of an enum, one valid value otherwise. */
function samples(name: string, rule: ArgumentRule): ArgValue[] {
  const v = rule.value;
  switch (v.kind) {
    case "integer":
      return [Math.max(v.min, Math.min(v.max, name === "x-expires" ? EXPIRES_MS : 10))];
    case "enum":
      return [...v.values];
    case "string":
      return ["topo-dlx"];
    case "boolean":
      return [true];
    case "duration":
      return ["7D"];
  }
}

interface Case {
  label: string;
  q: QueueDeclare;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const type of ["classic", "quorum", "stream"] as QueueType[]) {
    for (const durable of [true, false]) {
      const base = { type, durable, autoDelete: false, exclusive: false };
      const at = `${type} ${durable ? "durable" : "transient"}`;
      out.push({ label: `${at}, no arguments`, q: { ...base, arguments: {} } });
      for (const [name, rule] of Object.entries(ARGUMENTS)) {
        for (const value of samples(name, rule)) {
          const args: Args = { [name]: value };
          // An argument that needs another is declared with it: the pair is what a file can hold.
          if (rule.requires) args[rule.requires.name] = "topo-dlx";
          out.push({ label: `${at}, ${name}: ${JSON.stringify(value)}`, q: { ...base, arguments: args } });
        }
      }
    }
  }
  return out;
}

interface Endpoint {
  amqp: string;
  mgmt: string;
}

async function api(ep: Endpoint, method: string, path: string): Promise<{ status: number; body: any }> {
  const u = new URL(ep.mgmt);
  const auth = Buffer.from(`${decodeURIComponent(u.username || "guest")}:${decodeURIComponent(u.password || "guest")}`).toString("base64");
  const r = await fetch(`${u.origin}${path}`, { method, headers: { authorization: `Basic ${auth}`, "content-type": "application/json" }, body: method === "PUT" ? "{}" : undefined });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** What the broker says it permits, read as plan reads it. */
async function permits(ep: Endpoint): Promise<BrokerPermits> {
  const version = (await api(ep, "GET", "/api/overview?columns=rabbitmq_version")).body.rabbitmq_version as string;
  const features = await api(ep, "GET", "/api/deprecated-features");
  return permitsOf(version, features.status === 200 ? features.body : undefined);
}

interface Outcome {
  accepted: boolean;
  reply?: string;
  /** The queue's arguments as the broker lists them, for the cases asked to be read back. */
  kept?: Args;
}

/** Declare every case in a fresh vhost: one connection, a channel per declare (a refusal closes it). */
async function declareAll(ep: Endpoint, all: Case[], readBack: (q: QueueDeclare) => boolean = () => false): Promise<Outcome[]> {
  const vhost = uniqueName("rules");
  await api(ep, "PUT", `/api/vhosts/${encodeURIComponent(vhost)}`);
  const url = `${ep.amqp.replace(/\/$/, "")}/${encodeURIComponent(vhost)}`;
  let conn: amqplib.ChannelModel | undefined;
  let lost: string | undefined;
  const open = async () => {
    const c = await amqplib.connect(url);
    lost = undefined;
    // A denied deprecated feature closes the whole connection (541); the reply is kept.
    c.on("error", (e: Error) => (lost = e.message));
    c.on("close", () => {
      if (conn === c) conn = undefined;
    });
    return c;
  };
  const out: Outcome[] = [];
  try {
    for (const [i, { q }] of all.entries()) {
      conn ??= await open();
      let ch: amqplib.Channel | undefined;
      try {
        ch = await conn.createChannel();
        ch.on("error", () => undefined);
        await ch.assertQueue(`q${i}`, { durable: q.durable, autoDelete: q.autoDelete, exclusive: q.exclusive, arguments: { "x-queue-type": q.type, ...q.arguments } });
        const kept = readBack(q) ? ((await api(ep, "GET", `/api/queues/${encodeURIComponent(vhost)}/q${i}`)).body?.arguments as Args) : undefined;
        out.push({ accepted: true, ...(kept ? { kept } : {}) });
      } catch (e) {
        // Let a connection-level close arrive before reading why.
        await new Promise((r) => setTimeout(r, 20));
        out.push({ accepted: false, reply: lost ?? (e as Error).message });
      } finally {
        await ch?.close().catch(() => undefined);
      }
    }
  } finally {
    await conn?.close().catch(() => undefined);
    await api(ep, "DELETE", `/api/vhosts/${encodeURIComponent(vhost)}`);
  }
  return out;
}

/** Each case the table got wrong, in words. */
function mismatches(p: BrokerPermits, all: Case[], outcomes: Outcome[]): string[] {
  return all.flatMap(({ label, q }, i) => {
    // A refusal of topo's own (the broker accepts and ignores it) must be one the broker accepts.
    const said = brokerRefuses(p, q).filter((r) => r.scope !== "topo");
    const got = outcomes[i] as Outcome;
    // What the table says the broker ignores (of a declare it takes), it must accept and list with the queue as declared
    // (that it then does nothing was measured once: broker-rules.ts says how).
    const ignored = (said.length ? [] : brokerIgnores(p.version, q)).filter((x) => !got.accepted || got.kept?.[x.argument] !== q.arguments[x.argument]);
    if (ignored.length) return [`${label}: table says RabbitMQ ${p.version} accepts and keeps ${ignored.map((x) => x.setting).join(", ")}, and it ${got.accepted ? `listed the queue's arguments as ${JSON.stringify(got.kept)}` : `refused it: ${got.reply}`}`];
    if (said.length > 0 === !got.accepted) return [];
    return [
      got.accepted
        ? `${label}: table says RabbitMQ refuses it (${said.map((r) => r.rule).join("; ")}), RabbitMQ ${p.version} accepted it`
        : `${label}: table says RabbitMQ accepts it, RabbitMQ ${p.version} refused it: ${got.reply}`,
    ];
  });
}

interface Source {
  name: string;
  /** The broker's endpoints, or why it is not here. */
  find: () => Promise<Endpoint | { unavailable: string }>;
}

/** A broker of the project's scripts: started unless it runs (CI starts it), its URLs from `env`. */
function fromScript(script: string): Source["find"] {
  return async () => {
    if (!existsSync(script)) return { unavailable: `${script} is not in this checkout (RABBITMQ43_URL and RABBITMQ43_MANAGEMENT_URL name a running broker instead)` };
    const started: TestBroker = await startTestBroker(script, 600_000);
    if (started.unavailable) return { unavailable: started.unavailable };
    const env = scriptEnv(script);
    return { amqp: env.RABBITMQ4_URL as string, mgmt: env.RABBITMQ4_MANAGEMENT_URL as string };
  };
}

const SCRIPT43 = join(ROOT, "scripts/rabbitmq43.sh");

const SOURCES: Source[] = [
  { name: "3.10 (the suite's broker)", find: async () => ({ amqp: suiteBroker().amqpUrl, mgmt: suiteBroker().mgmtUrl }) },
  ...(process.env.TOPO_SKIP_RABBITMQ4
    ? []
    : [
        { name: "4.0 (scripts/rabbitmq4.sh)", find: fromScript(join(ROOT, "scripts/rabbitmq4.sh")) },
        {
          name: "4.3 (scripts/rabbitmq43.sh, or RABBITMQ43_URL)",
          find: async () => {
            const { RABBITMQ43_URL: amqp, RABBITMQ43_MANAGEMENT_URL: mgmt } = process.env;
            if (amqp && mgmt) return { amqp, mgmt };
            return fromScript(SCRIPT43)();
          },
        },
      ]),
];

for (const source of SOURCES) {
  describe(`the rule table on RabbitMQ ${source.name}`, () => {
    let found: Awaited<ReturnType<Source["find"]>> | undefined;
    beforeAll(async () => {
      found = await source.find();
    }, 600_000);

    it("predicts exactly what the broker accepts and refuses", async (ctx) => {
      skipWhenUnavailable(() => (found && "unavailable" in found ? { unavailable: found.unavailable } : undefined))(ctx);
      const ep = found as Endpoint;
      const p = await permits(ep);
      const all = cases();
      const outcomes = await declareAll(ep, all, (q) => brokerIgnores(p.version, q).length > 0);
      expect(mismatches(p, all, outcomes)).toEqual([]);
      // The table was asked something both ways on this broker, not trivially "all accepted".
      expect(outcomes.filter((o) => o.accepted).length).toBeGreaterThan(0);
      expect(outcomes.filter((o) => !o.accepted).length).toBeGreaterThan(0);
    }, 120_000);
  });
}
