// Find a broker for the integration tests: RABBITMQ_URL / RABBITMQ_MANAGEMENT_URL when set, else
// the local one on localhost. Where none answers and a Docker engine does, start one with
// testcontainers (imported only on that path: it is a fallback for users who have Docker).

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { brokerRunning, startedByRun, TEST_BROKERS } from "./helpers/test-brokers.js";

async function answers(mgmtUrl: string): Promise<boolean> {
  try {
    const u = new URL(mgmtUrl);
    const auth = Buffer.from(`${decodeURIComponent(u.username || "guest")}:${decodeURIComponent(u.password || "guest")}`).toString("base64");
    const r = await fetch(`${u.origin}/api/overview`, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(20_000) });
    return r.ok;
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let amqpUrl = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";
  let mgmtUrl = process.env.RABBITMQ_MANAGEMENT_URL ?? "http://guest:guest@127.0.0.1:15672";
  let stop = async () => undefined;
  if (!(await answers(mgmtUrl))) {
    let container: { getConnectionUrl(): string; getHost(): string; getMappedPort(p: number): number; stop(): Promise<unknown> };
    try {
      const { RabbitMQContainer } = await import("@testcontainers/rabbitmq");
      container = (await new RabbitMQContainer("rabbitmq:3.13-management").start()) as unknown as typeof container;
    } catch (e) {
      throw new Error(
        `no RabbitMQ management API answers at ${mgmtUrl.replace(/:[^:@/]*@/, ":***@")} and no container could be started (${(e as Error).message}). ` +
          "Start the local broker (rabbitmq-server -detached; rabbitmq-plugins enable rabbitmq_management) or set RABBITMQ_URL and RABBITMQ_MANAGEMENT_URL.",
      );
    }
    amqpUrl = `amqp://guest:guest@${container.getHost()}:${container.getMappedPort(5672)}`;
    mgmtUrl = `http://guest:guest@${container.getHost()}:${container.getMappedPort(15672)}`;
    stop = async () => {
      await container.stop();
    };
  }
  project.provide("amqpUrl", amqpUrl);
  project.provide("mgmtUrl", mgmtUrl);
  // A test file starts a test broker it needs (startTestBroker) and never stops it, since other
  // files running beside it may use the same one: the run stops, at its end, each that one of its
  // files noted starting, and leaves alone the others (.ci/run's, a developer's, another run's that
  // started while this one ran). Each script stops only the processes it recorded starting.
  const started = mkdtempSync(join(tmpdir(), "topo-test-brokers-"));
  project.provide("startedBrokers", started);
  return async () => {
    for (const script of TEST_BROKERS) {
      if (!startedByRun(started, script) || !brokerRunning(script)) continue;
      spawnSync(script, ["stop"], { stdio: ["ignore", "inherit", "inherit"], timeout: 300_000 });
    }
    rmSync(started, { recursive: true, force: true });
    await stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    amqpUrl: string;
    mgmtUrl: string;
    /** The folder where this run's files note the test brokers they started (helpers/test-brokers.ts noteStarted). */
    startedBrokers: string;
  }
}
