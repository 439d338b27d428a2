// The question asked as the management user (broker/unbind-probe.ts) sends its password only where
// the file sends it already: a local port that counts the connections made to it, no broker.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Binding, ClusterTarget } from "../../src/model.js";
import { asManagementUser, unbindsRefused } from "../../src/broker/unbind-probe.js";
import { countingPort, type CountingPort } from "../helpers/counting-port.js";

// Takes each connection and closes it at once: the AMQP handshake fails, which is "no answer".
let counting: CountingPort;
let port = 0;
const connections = () => counting.connections();

beforeAll(async () => {
  counting = await countingPort();
  port = counting.port;
});
afterAll(() => counting.close());

function target(management: string, protocol: "amqp" | "amqps"): ClusterTarget {
  return {
    name: "sync",
    amqp: { protocol, hostname: "127.0.0.1", port, username: "app", password: "app-secret", vhost: "sync", display: `${protocol}://127.0.0.1:${port}/sync` },
    management: { baseUrl: management, username: "ops", password: "ops-secret", display: management },
    tls: {},
  };
}

const keyed: Binding = { kind: "binding", source: "mplogin", destination: "mplogin.sync", destinationType: "queue", routingKey: "mplogin.sync.#", arguments: { "x-a": 1 } };

describe("asking whether the management user may remove a binding", () => {
  it("logs in as the management user, to the cluster's AMQP host and vhost", () => {
    const t = asManagementUser(target("http://127.0.0.1:15672", "amqp"));
    expect(t.amqp).toMatchObject({ hostname: "127.0.0.1", port, vhost: "sync", username: "ops", password: "ops-secret" });
  });

  it("an https management API and a plain AMQP port: not asked, so its password never crosses in clear text", async () => {
    const before = connections();
    expect(await unbindsRefused(target("https://127.0.0.1:15671", "amqp"), [keyed])).toBeUndefined();
    expect(connections()).toBe(before);
  });

  it("a plain management API: asked over the plain AMQP port; a connection that fails is no answer", async () => {
    const before = connections();
    expect(await unbindsRefused(target("http://127.0.0.1:15672", "amqp"), [keyed])).toBeUndefined();
    expect(connections()).toBe(before + 1);
  });

  it("nothing to ask: no connection", async () => {
    const before = connections();
    expect(await unbindsRefused(target("http://127.0.0.1:15672", "amqp"), [])).toEqual([]);
    expect(connections()).toBe(before);
  });
});
