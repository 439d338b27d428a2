// The AMQP edge: one connection per cluster, a pool of channels for parallel declares (amqplib
// serialises RPCs per channel, so parallelism needs channels), and broker replies turned into
// errors that name the cluster, the object and the reply.

import type { Channel, ChannelModel } from "amqplib";
import { BrokerError, type ErrorCode } from "../errors.js";
import type { ClusterTarget } from "../model.js";
import { redactText } from "../redact.js";
import { tlsOptions, tlsProblem } from "./tls.js";
import { backoff, sleep } from "./retry.js";

export interface AmqpOptions {
  insecure?: boolean;
  /** Attempts to connect while the broker refuses connections (a node booting). */
  connectAttempts?: number;
}

/** Connection-level failures worth retrying: the broker is starting, restarting or overloaded. */
const TRANSIENT_NET = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|socket hang up|Socket closed abruptly/;

export class AmqpSession {
  /** AMQP RPCs sent (declares, binds, deletes, channel opens); the benchmark reports it. */
  rpcs = 0;
  private closed = false;
  /** Channels kept open between phases: opening one is a round trip, and apply has several phases. */
  private readonly idle: Channel[] = [];
  /** Set when the broker or an operator closed the connection under us. */
  lost: Error | undefined;

  private constructor(
    readonly cluster: string,
    readonly conn: ChannelModel,
  ) {
    conn.on("error", (e: Error) => {
      this.lost ??= e;
    });
    conn.on("close", (e?: Error) => {
      if (!this.closed) this.lost ??= e ?? new Error("connection closed");
    });
  }

  static async open(target: ClusterTarget, opts: AmqpOptions = {}): Promise<AmqpSession> {
    const amqplib = await import("amqplib");
    const { amqp, tls } = target;
    const attempts = opts.connectAttempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      try {
        const conn = await amqplib.connect(
          {
            protocol: amqp.protocol,
            hostname: amqp.hostname,
            port: amqp.port,
            username: amqp.username,
            password: amqp.password,
            vhost: amqp.vhost,
            heartbeat: 30,
          },
          {
            ...tlsOptions(tls, opts.insecure),
            timeout: 15_000,
            clientProperties: { connection_name: `topo ${target.name}` },
          },
        );
        return new AmqpSession(target.name, conn);
      } catch (e) {
        const err = connectError(target, e as Error);
        if (!err.transient || attempt >= attempts) throw err;
        await sleep(backoff(attempt));
      }
    }
  }

  async channel(): Promise<Channel> {
    this.rpcs++;
    const ch = await this.conn.createChannel();
    // A channel closed by the broker (406, 404, ...) emits 'error'; the failing call rejects with
    // the same error, which is where topo handles it.
    ch.on("error", () => undefined);
    return ch;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.conn.close();
    } catch {
      // Already gone: nothing to release.
    }
  }

  /**
   * Run `fn` on every item over up to `size` channels in parallel. Stops at the first failure,
   * lets the calls in flight finish, and throws that failure with the number done.
   */
  async runAll<T>(
    items: readonly T[],
    size: number,
    fn: (ch: Channel, item: T) => Promise<unknown>,
    what: (item: T) => string,
    onDone: (item: T) => void = () => undefined,
  ): Promise<void> {
    if (items.length === 0) return;
    let next = 0;
    let failure: BrokerError | undefined;
    const worker = async (): Promise<void> => {
      let ch: Channel | undefined;
      try {
        while (!failure && next < items.length) {
          const item = items[next++] as T;
          ch ??= this.idle.pop() ?? (await this.channel());
          try {
            this.rpcs++;
            await fn(ch, item);
            onDone(item);
          } catch (e) {
            // The broker closes a channel on any error: it is not reused.
            failure ??= amqpError(this.cluster, what(item), e as Error, this.lost);
            ch = undefined;
          }
        }
      } catch (e) {
        failure ??= amqpError(this.cluster, "open channel", e as Error, this.lost);
      } finally {
        if (ch) this.idle.push(ch);
      }
    };
    const workers = Math.max(1, Math.min(size, items.length));
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure) throw failure;
  }
}

const CODE_HINTS: Record<number, string> = {
  403: "the user lacks configure/write/read permission on this vhost, or the name is reserved (amq.*)",
  404: "the object does not exist (yet); run topo plan to see the broker's state",
  405: "the queue is exclusive to another connection",
  406: "the object exists with other properties (or, for a delete, still holds messages); topo plan shows what differs",
  320: "the broker closed the connection (restart, or an operator closed it); run topo apply again: it finishes what is left",
  530: "the vhost does not exist or the user may not use it",
  541: "the broker failed internally; on RabbitMQ 4 this is what a denied deprecated feature (transient non-exclusive queues) looks like: permit it with deprecated_features.permit.transient_nonexcl_queues = true, or make the queue durable",
};

/** The broker's words from an amqplib error: `406 PRECONDITION_FAILED - inequivalent arg ...`. */
export function replyText(e: Error & { code?: unknown }): { code?: number; text: string } {
  const m = /with message "([^"]*)"/.exec(e.message);
  const code = typeof e.code === "number" ? e.code : undefined;
  if (m) return { code, text: `${code ?? ""} ${m[1]}`.trim() };
  return { code, text: e.message };
}

export function amqpError(cluster: string, what: string, e: Error, lost?: Error): BrokerError {
  const own = replyText(e as Error & { code?: unknown });
  const gone = lost && lost !== e ? replyText(lost as Error & { code?: unknown }) : undefined;
  const lostText = gone ? `; connection lost: ${gone.text}` : "";
  // When the broker closed the whole connection, its reply (e.g. 541 for a denied deprecated
  // feature) says more than the channel's "Channel ended".
  const code = own.code ?? gone?.code;
  const connectionGone = !!lost || /Connection closed|Channel ended|IllegalOperationError|Socket closed/.test(`${e.name} ${e.message}`);
  // Retry only what a restart explains: a forced close or a dropped socket. An operator closing
  // the connection (management UI or API) means "stop", and any other reply is permanent.
  const byOperator = /Closed via management plugin/i.test(`${e.message} ${lost?.message ?? ""}`);
  const transient = connectionGone && !byOperator && (code === undefined || code === 320);
  const hint = code !== undefined ? CODE_HINTS[code] : connectionGone ? CODE_HINTS[320] : undefined;
  return new BrokerError(cluster, redactText(`${what} -> ${own.text}${lostText}`), {
    object: what,
    status: code,
    transient,
    hints: hint ? [hint] : [],
  });
}

function connectError(target: ClusterTarget, e: Error): BrokerError {
  const tls = tlsProblem(target.name, e as Error & { code?: unknown });
  const { code, text } = tls ? { code: undefined, text: tls.text } : replyText(e as Error & { code?: unknown });
  const where = `connect ${target.amqp.display}`;
  const hints: string[] = [];
  let transient = false;
  let kind: ErrorCode | undefined;
  if (tls) hints.push(tls.hint);
  else if (/ACCESS.REFUSED|403/.test(e.message)) {
    kind = "auth_failed";
    hints.push(`the broker refused user "${target.amqp.username}"; check the user and password in clusters.${target.name}.url`);
  } else if (/NOT.ALLOWED|530|vhost/.test(e.message)) {
    kind = "permission_denied";
    hints.push(`vhost "${target.amqp.vhost}" does not exist or user "${target.amqp.username}" has no permission on it; topo apply creates the vhost when the management user may`);
  } else if (TRANSIENT_NET.test(`${(e as NodeJS.ErrnoException).code ?? ""} ${e.message}`)) {
    kind = "broker_unreachable";
    transient = true;
    hints.push(`nothing accepts AMQP connections at ${target.amqp.hostname}:${target.amqp.port}; is the broker up?`);
  }
  return new BrokerError(target.name, redactText(`${where} -> ${text}`), { status: code, transient, hints, code: kind ?? (tls ? "broker_unreachable" : undefined) });
}
