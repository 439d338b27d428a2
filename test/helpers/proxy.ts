// A proxy in front of the test broker's management API, for tests of what topo does with answers
// that are not the broker's (a proxy's page, a failure part-way, another vhost's listing).

import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { broker } from "./broker.js";

export interface ManagementProxy {
  /** The proxy's URL, with the test broker's credentials, for a cluster's `management:`. */
  url: string;
  port: number;
  close: () => void;
}

/**
 * Passes every request on to the test broker's management API, at the path `rewrite` gives (as it
 * came, by default), after `delayMs` (none by default), except where `answer` answers it itself
 * (it returns true).
 */
export async function managementProxy(
  o: {
    answer?: (req: IncomingMessage, res: ServerResponse) => boolean;
    rewrite?: (path: string) => string;
    delayMs?: (path: string) => number;
    upstream?: string;
    /** The broker's answer to a GET of this path, changed (a JSON body, parsed), or undefined to pass it on as it came. */
    change?: (path: string, body: unknown) => unknown;
    /** Awaited once the broker answered a GET of this path, before the answer goes on: what a client does between the broker's answer and topo's reading of it. */
    settle?: (path: string) => Promise<void>;
    /**
     * A cache that ignores RabbitMQ's `cache-control: no-cache` (nginx's proxy_cache with
     * proxy_ignore_headers Cache-Control): a GET's 200 answer is stored under `key` of the request's
     * path (nginx's default key is the whole URI, its query included) and given back for every
     * later GET of that key, with `Age` (seconds since it was stored) where `age` is set, as
     * Varnish, Squid and CDNs send it (nginx sends none).
     */
    cache?: { key: (path: string) => string; age?: boolean };
  } = {},
): Promise<ManagementProxy> {
  const upstream = new URL(o.upstream ?? broker().mgmtBase);
  const stored = new Map<string, { at: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>();
  const proxy = createServer(async (req, res) => {
    if (o.answer?.(req, res)) return;
    const cacheKey = o.cache && req.method === "GET" ? o.cache.key(req.url ?? "/") : undefined;
    const held = cacheKey === undefined ? undefined : stored.get(cacheKey);
    if (held) {
      req.resume();
      const age = o.cache?.age ? { age: String(Math.floor((Date.now() - held.at) / 1000)) } : {};
      res.writeHead(200, { ...held.headers, ...age, "content-length": held.body.length }).end(held.body);
      return;
    }
    // A slow answer (a large vhost's listing): the request goes on only after the delay.
    const wait = o.delayMs?.(req.url ?? "/") ?? 0;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const path = o.rewrite ? o.rewrite(req.url ?? "/") : req.url;
    const fwd = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...req.headers, host: upstream.host } }, (up) => {
      if (cacheKey !== undefined && up.statusCode === 200) {
        const chunks: Buffer[] = [];
        up.on("data", (c: Buffer) => chunks.push(c));
        up.on("end", () => {
          const body = Buffer.concat(chunks);
          const { "content-length": _, "transfer-encoding": __, ...headers } = up.headers;
          stored.set(cacheKey, { at: Date.now(), headers, body });
          res.writeHead(200, { ...headers, "content-length": body.length }).end(body);
        });
        return;
      }
      const { change, settle } = o;
      if ((!change && !settle) || req.method !== "GET" || up.statusCode !== 200) {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      up.on("data", (c: Buffer) => chunks.push(c));
      up.on("end", async () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const changed = change?.(req.url ?? "/", JSON.parse(text));
        const body = changed === undefined ? text : JSON.stringify(changed);
        await settle?.(req.url ?? "/");
        const { "content-length": _, "transfer-encoding": __, ...headers } = up.headers;
        res.writeHead(200, { ...headers, "content-length": Buffer.byteLength(body) }).end(body);
      });
    });
    fwd.on("error", () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const port = (proxy.address() as { port: number }).port;
  return { url: `http://${broker().user}:${broker().password}@127.0.0.1:${port}`, port, close: () => proxy.close() };
}

export interface AmqpProxy {
  port: number;
  /** Stop passing the client's bytes on (the broker hears nothing more). */
  stall: () => void;
  /** Close every connection through the proxy, both sides. */
  cut: () => void;
  /** From now on, reset each new connection as soon as it is taken (a node shutting down, a proxy with no broker behind it). */
  refuse: () => void;
  /**
   * From now on, reset each new connection when the client sends its login (connection.start-ok),
   * which the broker never gets: the client has read connection.start, as from a proxy in front of
   * a node that is going down, or one that cuts what it cannot pass on.
   */
  resetLogins: () => void;
  /** How many client connections through the proxy are still open (a client that dropped its socket is not). */
  open: () => number;
  /**
   * Pass the client's bytes on up to and including the `skip + 1`-th method frame of class
   * `classId`, method `methodId`, then close that connection: the broker gets that frame and
   * nothing after it, as when a connection is lost just after a write.
   */
  cutAfter: (classId: number, methodId: number, skip?: number) => Promise<void>;
  close: () => Promise<void>;
}

/** A method frame a client sent: its channel, class, method, and its arguments as they came. */
export interface SentMethod {
  connection: number;
  channel: number;
  classId: number;
  methodId: number;
  args: Buffer;
}

/**
 * A TCP proxy to the test broker's AMQP port, for tests of a connection lost at a chosen moment.
 * `declareOk`, when given, sees each queue.declare-ok the broker sends and may answer other counts
 * (as a quorum queue whose leader did not answer within 250 ms does: 0 messages, 0 consumers).
 * `sent`, when given, sees every method frame a client sends, in the order the broker gets them.
 */
export async function amqpProxy(
  o: { declareOk?: (queue: string, messages: number, consumers: number) => { messages: number; consumers: number } | undefined; sent?: (m: SentMethod) => void } = {},
): Promise<AmqpProxy> {
  const { createServer: tcpServer, connect } = await import("node:net");
  const b = broker();
  const pairs: { client: import("node:net").Socket; upstream: import("node:net").Socket }[] = [];
  let stalled = false;
  let rule: { classId: number; methodId: number; skip: number; done: () => void } | undefined;
  let refusing = false;
  let resettingLogins = false;
  const server = tcpServer((client) => {
    if (refusing) {
      client.on("error", () => undefined);
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(b.amqpPort, b.host);
    pairs.push({ client, upstream });
    const connection = pairs.length;
    // The protocol header, then frames: type, channel, size, payload, frame end.
    let pending = Buffer.alloc(0);
    let headerSeen = false;
    let dead = false;
    const resetsLogin = resettingLogins;
    client.on("data", (d: Buffer) => {
      if (stalled || dead) return;
      pending = Buffer.concat([pending, d]);
      if (!rule && !resetsLogin && !o.sent) {
        upstream.write(pending);
        pending = Buffer.alloc(0);
        return;
      }
      const out: Buffer[] = [];
      if (!headerSeen && pending.length >= 8) {
        out.push(pending.subarray(0, 8));
        pending = pending.subarray(8);
        headerSeen = true;
      }
      while (headerSeen && pending.length >= 7) {
        const size = pending.readUInt32BE(3);
        if (pending.length < 8 + size) break;
        const frame = pending.subarray(0, 8 + size);
        pending = pending.subarray(8 + size);
        if (resetsLogin && frame[0] === 1 && size >= 4 && frame.readUInt16BE(7) === 10 && frame.readUInt16BE(9) === 11) {
          dead = true;
          if (out.length) upstream.write(Buffer.concat(out));
          upstream.destroy();
          client.resetAndDestroy();
          return;
        }
        out.push(frame);
        if (o.sent && frame[0] === 1 && size >= 4) {
          o.sent({ connection, channel: frame.readUInt16BE(1), classId: frame.readUInt16BE(7), methodId: frame.readUInt16BE(9), args: Buffer.from(frame.subarray(11, 7 + size)) });
        }
        const r = rule;
        if (r && frame[0] === 1 && size >= 4 && frame.readUInt16BE(7) === r.classId && frame.readUInt16BE(9) === r.methodId) {
          if (r.skip-- > 0) continue;
          rule = undefined;
          r.done();
          dead = true;
          // Written, then the connection ends: the broker carries out the frame, then sees the
          // connection gone; the client sees it gone before any answer.
          upstream.end(Buffer.concat(out));
          client.destroy();
          return;
        }
      }
      if (out.length) upstream.write(Buffer.concat(out));
    });
    let fromBroker = Buffer.alloc(0);
    let brokerHeaderSeen = false;
    upstream.on("data", (d: Buffer) => {
      if (dead) return;
      if (!o.declareOk) {
        client.write(d);
        return;
      }
      // Whole frames only, so a queue.declare-ok (class 50, method 11) can be read and rewritten:
      // queue name (short string), message count, consumer count.
      fromBroker = Buffer.concat([fromBroker, d]);
      if (!brokerHeaderSeen && fromBroker.length >= 8 && fromBroker.subarray(0, 4).toString("latin1") === "AMQP") {
        client.write(fromBroker.subarray(0, 8));
        fromBroker = fromBroker.subarray(8);
      }
      brokerHeaderSeen = true;
      while (fromBroker.length >= 7) {
        const size = fromBroker.readUInt32BE(3);
        if (fromBroker.length < 8 + size) break;
        const frame = Buffer.from(fromBroker.subarray(0, 8 + size));
        fromBroker = fromBroker.subarray(8 + size);
        if (frame[0] === 1 && size >= 5 && frame.readUInt16BE(7) === 50 && frame.readUInt16BE(9) === 11) {
          const len = frame[11]!;
          const queue = frame.subarray(12, 12 + len).toString("utf8");
          const at = 12 + len;
          const changed = o.declareOk(queue, frame.readUInt32BE(at), frame.readUInt32BE(at + 4));
          if (changed) {
            frame.writeUInt32BE(changed.messages, at);
            frame.writeUInt32BE(changed.consumers, at + 4);
          }
        }
        client.write(frame);
      }
    });
    const end = () => {
      client.destroy();
      if (!dead) upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as import("node:net").AddressInfo).port,
    stall: () => {
      stalled = true;
    },
    cut: () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    refuse: () => {
      refusing = true;
    },
    resetLogins: () => {
      resettingLogins = true;
    },
    open: () => pairs.filter((p) => !p.client.destroyed).length,
    cutAfter: (classId, methodId, skip = 0) =>
      new Promise<void>((done) => {
        rule = { classId, methodId, skip, done };
      }),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
