// amqplib's channel close() waits for the broker's close-ok, and never settles when the
// connection goes meanwhile: topo's steps close their channels in `finally`, so a replace cut
// just after its delete of the old queue stopped with an `internal` error that named nothing.
// closeChannel settles on the channel's "close" event too.

import amqplib from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { closeChannel } from "../../src/broker/amqp.js";
import { amqpUrl } from "../helpers/broker.js";
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
