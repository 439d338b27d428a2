// What topo does with AMQP below amqplib's public API, in one place: a plain socket to a cluster's
// AMQP port (TLS where the URL says amqps), and amqplib's own codec and connection class, loaded
// by path because the package's exports hide lib/. broker/identity.ts reads connection.start
// with them; broker/amqp.ts reads the connection.close a refused open sends; broker/declare.ts
// builds no-wait declares with amqplib's own argument code.

import { createRequire } from "node:module";
import net from "node:net";
import { dirname, join } from "node:path";
import tls from "node:tls";
import type { ClusterTarget } from "../model.js";
import { tlsOptions } from "./tls.js";

/** A socket to the cluster's AMQP port; "ready" fires once it can be written (after TLS, for amqps). */
export function amqpSocket(target: ClusterTarget, insecure?: boolean): { socket: net.Socket; ready: "connect" | "secureConnect" } {
  const { amqp } = target;
  if (amqp.protocol === "amqps") {
    const socket = tls.connect({ host: amqp.hostname, port: amqp.port, servername: net.isIP(amqp.hostname) ? undefined : amqp.hostname, ...tlsOptions(target.tls, insecure) });
    return { socket, ready: "secureConnect" };
  }
  return { socket: net.connect({ host: amqp.hostname, port: amqp.port }), ready: "connect" };
}

const cache = new Map<string, unknown>();

/**
 * A module of amqplib's lib/, loaded once. codec.js (12 KB, field tables) is what a plan needs;
 * defs.js (142 KB, every method: about 9 ms to load with the file cached, 60 ms on a first run)
 * is left to apply's writes.
 */
export function amqplibModule<T>(file: "codec.js" | "defs.js" | "connection.js" | "api_args.js"): T {
  if (!cache.has(file)) {
    const require = createRequire(import.meta.url);
    cache.set(file, require(join(dirname(require.resolve("amqplib")), "lib", file)));
  }
  return cache.get(file) as T;
}
