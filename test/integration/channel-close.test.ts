// amqplib's channel close() waits for the broker's close-ok, and never settles when the
// connection goes meanwhile: topo's steps close their channels in `finally`, so a replace cut
// just after its delete of the old queue stopped with an `internal` error that named nothing.
// closeChannel settles on the channel's "close" event too.

import amqplib from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { AmqpSession, closeChannel } from "../../src/broker/amqp.js";
import type { ClusterTarget } from "../../src/model.js";
import { amqpUrl, broker } from "../helpers/broker.js";
import { amqpProxy } from "../helpers/proxy.js";

describe("closeChannel", () => {
  const closing: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(closing.splice(0).map((f) => f()));
  });

  it("settles when the connection goes while the close waits for the broker's close-ok", async () => {
    const proxy = await amqpProxy();
    closing.push(proxy.close);
    const url = new URL(amqpUrl("/"));
    url.port = String(proxy.port);
    url.hostname = "127.0.0.1";
    const conn = await amqplib.connect(url.toString());
    conn.on("error", () => undefined);
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    // The broker never hears the close; then the connection goes.
    proxy.stall();
    const plain = ch.close().then(
      () => "settled",
      () => "settled",
    );
    const ours = closeChannel(ch).then(() => "settled");
    setTimeout(proxy.cut, 100);
    const within = (p: Promise<string>) => Promise.race([p, new Promise<string>((r) => setTimeout(() => r("pending"), 3_000))]);
    expect(await within(ours)).toBe("settled");
    // What closeChannel guards against: amqplib's own close still waits.
    expect(await within(plain)).toBe("pending");
  });

  it("settles at once on a channel already closed", async () => {
    const conn = await amqplib.connect(amqpUrl("/"));
    const ch = await conn.createChannel();
    await ch.close();
    await closeChannel(ch);
    await conn.close();
  });
});

// A connection whose close the broker never answers (under a disk alarm it reads nothing more
// from a connection that published) is dropped after a bound: closeWithin destroys amqplib's
// socket, which it reaches through a field amqplib does not document (connection.stream). An
// amqplib that moved it would make the close unbounded again, with no error: this says so.
describe("AmqpSession.closeWithin", () => {
  it("drops the connection's socket when the broker does not answer its close within the bound", async () => {
    const proxy = await amqpProxy();
    try {
      const u = new URL(broker().amqpUrl);
      const user = decodeURIComponent(u.username || "guest");
      const password = decodeURIComponent(u.password || "guest");
      const target: ClusterTarget = {
        name: "sync",
        amqp: { protocol: "amqp", hostname: "127.0.0.1", port: proxy.port, username: user, password, vhost: "/", display: `amqp://***@127.0.0.1:${proxy.port}/` },
        management: { baseUrl: broker().mgmtBase, username: user, password, display: broker().mgmtBase },
        tls: {},
      };
      const session = await AmqpSession.open(target, { connectAttempts: 1 });
      expect(proxy.open()).toBe(1);
      // The broker hears nothing more, so never answers the close.
      proxy.stall();
      const began = Date.now();
      await session.closeWithin(300);
      expect(Date.now() - began).toBeLessThan(5_000);
      // The socket is gone (the proxy sees its client leave), not left waiting for a close-ok.
      for (let i = 0; i < 50 && proxy.open() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(proxy.open()).toBe(0);
    } finally {
      proxy.cut();
      await proxy.close();
    }
  });
});
