// The order in which a saved plan's apply takes its clusters' locks: every apply must agree on it,
// or two applies could each hold a lock the other waits for.

import { describe, expect, it } from "vitest";
import { lockOrder } from "../../src/commands/apply.js";
import type { ClusterTarget } from "../../src/model.js";

const target = (name: string, hostname: string, port: number, vhost: string): ClusterTarget => ({
  name,
  amqp: { protocol: "amqp", hostname, port, username: "u", password: "p", vhost, display: "" },
  management: { baseUrl: "", username: "u", password: "p", display: "" },
  tls: {},
});

describe("lockOrder", () => {
  it("orders by broker address, then vhost, then name, whatever order the file lists them in", () => {
    const ts = [
      target("z", "rabbit-b", 5672, "/"),
      target("y", "Rabbit-A", 5672, "sync"),
      target("x", "rabbit-a", 5672, "async"),
      target("w", "rabbit-a", 15672, "/"),
      target("v", "rabbit-a", 5673, "/"),
    ];
    const expected = ["x", "y", "v", "w", "z"];
    expect(lockOrder(ts)).toEqual(expected);
    expect(lockOrder([...ts].reverse())).toEqual(expected);
  });
});
