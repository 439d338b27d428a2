// The version table of docs/rabbitmq-versions.md, between its markers, is this rendering of the
// rule table (plan/broker-rules.ts), which test/integration/broker-rules.test.ts proves on real
// brokers: a changed rule changes the doc in the same commit.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokerIgnores, brokerRefuses, deprecatedUse, permitsOf, type BrokerPermits, type QueueDeclare } from "../../src/plan/broker-rules.js";
import type { Args, QueueType } from "../../src/model.js";

const ROOT = join(import.meta.dirname, "../..");

const VERSIONS = ["3.10.8", "4.0.5", "4.3.6"];
const ROWS: { label: string; type: QueueType; durable?: boolean; arguments?: Args }[] = [
  { label: "classic, `durable: false` (the seed's sync queues)", type: "classic", durable: false },
  { label: "classic, `x-consumer-timeout`", type: "classic", arguments: { "x-consumer-timeout": 60000 } },
  { label: "classic, `x-queue-master-locator`", type: "classic", arguments: { "x-queue-master-locator": "min-masters" } },
  { label: "classic, `x-queue-leader-locator`", type: "classic", arguments: { "x-queue-leader-locator": "balanced" } },
  { label: "classic, `x-queue-version: 1`", type: "classic", arguments: { "x-queue-version": 1 } },
  { label: "classic, `x-queue-mode: lazy`", type: "classic", arguments: { "x-queue-mode": "lazy" } },
  { label: "quorum, `x-consumer-timeout`", type: "quorum", arguments: { "x-consumer-timeout": 60000 } },
  { label: "quorum, `x-max-in-memory-length` (or `-bytes`)", type: "quorum", arguments: { "x-max-in-memory-length": 1000 } },
  { label: "quorum, `x-overflow: reject-publish-dlx`", type: "quorum", arguments: { "x-overflow": "reject-publish-dlx" } },
  { label: "quorum, `x-delivery-limit: -1` (no limit on 4.x)", type: "quorum", arguments: { "x-delivery-limit": -1 } },
  { label: "quorum, `x-delayed-retry-type` with `-min` (or `x-consumer-disconnected-timeout`)", type: "quorum", arguments: { "x-delayed-retry-type": "all", "x-delayed-retry-min": 1000 } },
  { label: "classic, `x-delayed-retry-type` with `-min` (or `x-consumer-disconnected-timeout`)", type: "classic", arguments: { "x-delayed-retry-type": "all", "x-delayed-retry-min": 1000 } },
  { label: "stream, `x-consumer-timeout`", type: "stream", arguments: { "x-consumer-timeout": 60000 } },
  { label: "stream, `x-stream-filter-size-bytes`", type: "stream", arguments: { "x-stream-filter-size-bytes": 32 } },
];

function cell(p: BrokerPermits, q: QueueDeclare): string {
  const refusals = brokerRefuses(p, q);
  if (refusals.some((r) => r.scope !== "topo")) return refusals.some((r) => r.scope === "version") ? "**refused**: plan error" : "**refused**: validate error";
  if (refusals.length) return "accepted and ignored: validate error";
  if (deprecatedUse(p, q).length) return "yes, deprecated: plan warns";
  if (brokerIgnores(p.version, q).length) return "accepted and ignored: plan warns";
  return "yes";
}

function renderTable(): string {
  const permits = VERSIONS.map((v) => permitsOf(v));
  const lines = [`| declare | ${VERSIONS.map((v) => `RabbitMQ ${v}`).join(" | ")} |`, `|---|${VERSIONS.map(() => "---|").join("")}`];
  for (const row of ROWS) {
    const q: QueueDeclare = { type: row.type, durable: row.durable ?? true, autoDelete: false, exclusive: false, arguments: row.arguments ?? {} };
    lines.push(`| ${row.label} | ${permits.map((p) => cell(p, q)).join(" | ")} |`);
  }
  return lines.join("\n");
}

describe("docs/rabbitmq-versions.md", () => {
  it("holds the version table rendered from the rule table", () => {
    const doc = readFileSync(join(ROOT, "docs/rabbitmq-versions.md"), "utf8");
    const m = /<!-- version table: test\/unit\/version-table\.test\.ts renders it -->\n([\s\S]*?)\n<!-- end of version table -->/.exec(doc);
    expect(m, "the doc's version-table markers").not.toBeNull();
    expect(m?.[1]).toBe(renderTable());
  });
});
