// The AMQP edge: one connection per cluster, a pool of channels for parallel declares (amqplib
// serialises RPCs per channel, so parallelism needs channels), and broker replies turned into
// errors that name the cluster, the object and the reply.

import type { Channel, ChannelModel, ConfirmChannel } from "amqplib";
import net from "node:net";
import { BrokerError, type ErrorCode } from "../errors.js";
import { DEFAULT_CHANNELS, placesOf, type ClusterTarget } from "../model.js";
import { redactText } from "../redact.js";
import { amqplibModule, amqpSocket } from "./raw-amqp.js";
import { tlsOptions, tlsProblem } from "./tls.js";
import { backoff, sleep } from "./retry.js";
import { noRightsHint, permissionCommands, plural, shellWord } from "../core/words.js";
import { hostPort } from "../config/url.js";
import { alarmHint, blockedKind } from "../plan/alarms.js";

export interface AmqpOptions {
  insecure?: boolean;
  /** Attempts to connect while the broker refuses connections (a node booting). */
  connectAttempts?: number;
  /** Progress for people (stderr): said once when a vhost's refusal is waited out. */
  log?: (msg: string) => void;
}

/**
 * Connects to a vhost that is not running yet, or not yet open to its creator's user (just
 * created): waits of 0.2 to 5 s, about 11 s in all. A node under load (the test suite's, a
 * 3-node cluster) can take several seconds to start a vhost.
 */
const VHOST_START_ATTEMPTS = 7;

/** How long a connect may take, TCP, TLS and AMQP's handshake included. */
const CONNECT_TIMEOUT_MS = 15_000;
/** Connects that time out before apply gives up on the broker (a stopped or paused node). */
const SILENT_CONNECTS = 2;

/** A connect error's code and message, as the tests of what happened read them. */
function errorText(e: Error): string {
  return `${(e as NodeJS.ErrnoException).code ?? ""} ${e.message}`;
}

/** A connect that reached a host and got no answer in time (amqplib's own time-out, or the socket's). */
function timedOut(e: Error): boolean {
  return /ETIMEDOUT/.test(errorText(e));
}

/**
 * How long publishing may stay blocked (a memory or disk alarm) before a replace that moves
 * messages gives up: a short alarm clears by itself, a long one needs an operator.
 */
export const PUBLISH_BLOCKED_GRACE_MS = 10_000;

/** The broker blocked publishing on topo's connection for longer than the grace (connection.blocked). */
export class PublishBlocked extends Error {
  constructor(readonly reason: string) {
    super(`the broker blocked publishing on topo's connection (${reason})`);
  }
}

/** How topo words a connection out of channels; limitHint() names the setting. */
const CHANNEL_MAX_TEXT = "no channel left: the broker lets one connection open";

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
  /** Why the broker blocks this connection's publishing (a memory or disk alarm), while it does. */
  private blockedBy: string | undefined;
  /** Channels open on the connection now, idle ones included. */
  private openChannels = 0;

  private constructor(
    readonly cluster: string,
    readonly conn: ChannelModel,
    /** The user it logged in as (a message published with its user-id must name it). */
    readonly user: string,
  ) {
    conn.on("error", (e: Error) => {
      this.lost ??= e;
      this.loseAll(e);
    });
    conn.on("close", (e?: Error) => {
      if (!this.closed) this.lost ??= e ?? new Error("connection closed");
      this.loseAll(this.lost ?? new Error("connection closed"));
    });
    conn.on("blocked", (reason: string) => {
      this.blockedBy = reason;
    });
    conn.on("unblocked", () => {
      this.blockedBy = undefined;
    });
  }

  /** The first error the connection was lost with, once it was. */
  private goneWith: Error | undefined;
  /** How each orLost still waiting is told of the connection's loss. */
  private readonly waiting = new Set<(e: Error) => void>();

  private loseAll(e: Error): void {
    this.goneWith ??= e;
    for (const lose of this.waiting) lose(this.goneWith);
    this.waiting.clear();
  }

  /**
   * `p`, or the connection's loss. A basic.get whose message amqplib cannot decode (a header of a
   * type it does not know, as py-amqp writes a 64-bit integer: tag "L") ends the connection and
   * never settles: awaited alone, the apply waited for nothing, and Node ended it with exit code 0.
   * Not a Promise.race with one promise of the connection's loss: each race left a reaction on
   * that promise, which never settles, holding its result, so every message a replace fetched
   * stayed in memory until topo exited (measured: 2.5 GB of RSS after moving 300 messages of
   * 4 MB out and back, with a collection forced every 2 s).
   */
  orLost<T>(p: Promise<T>): Promise<T> {
    if (this.goneWith) return Promise.reject(this.goneWith);
    return new Promise<T>((resolve, reject) => {
      this.waiting.add(reject);
      p.then(resolve, reject).finally(() => this.waiting.delete(reject));
    });
  }

  /**
   * `p`, unless the broker blocks this connection's publishing (connection.blocked: a memory or
   * disk alarm) and does not unblock it within `graceMs`. While it is blocked the broker reads
   * nothing more from the connection, so a publish's confirm never comes and even closing a
   * channel would wait for ever: the connection is closed at once (amqplib does not wait for a
   * blocked broker's reply) and a PublishBlocked rejects, naming the broker's reason.
   */
  unlessBlocked<T>(p: Promise<T>, graceMs = PUBLISH_BLOCKED_GRACE_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const give = (reason: string) => {
        const e = new PublishBlocked(reason);
        this.lost ??= e;
        void this.conn.close().catch(() => undefined);
        reject(e);
      };
      const onBlocked = (reason: string) => {
        clearTimeout(timer);
        timer = setTimeout(() => give(reason), graceMs);
      };
      const onUnblocked = () => clearTimeout(timer);
      const done = () => {
        clearTimeout(timer);
        this.conn.off("blocked", onBlocked);
        this.conn.off("unblocked", onUnblocked);
      };
      this.conn.on("blocked", onBlocked);
      this.conn.on("unblocked", onUnblocked);
      if (this.blockedBy !== undefined) onBlocked(this.blockedBy);
      p.then(
        (v) => {
          done();
          resolve(v);
        },
        (e: unknown) => {
          done();
          reject(e);
        },
      );
    });
  }

  static async open(target: ClusterTarget, opts: AmqpOptions = {}): Promise<AmqpSession> {
    const amqplib = await import("amqplib");
    const { amqp, tls } = target;
    const attempts = opts.connectAttempts ?? 8;
    /** Connects that timed out: a node that is booting refuses them at once; one that takes them and says nothing is stopped or paused. */
    let silent = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const conn = await amqplib.connect(
          {
            protocol: amqp.protocol,
            hostname: amqp.hostname,
            port: amqp.port,
            username: amqp.username,
            password: amqp.password,
            // amqplib unescapes the vhost it is given (querystring.unescape), even in this object
            // form: given as it is, "a%41" would open the vhost "aA". Escaped, it opens the one named.
            vhost: encodeURIComponent(amqp.vhost),
            heartbeat: 30,
          },
          {
            ...tlsOptions(tls, opts.insecure),
            timeout: CONNECT_TIMEOUT_MS,
            clientProperties: { connection_name: `topo ${target.name}` },
          },
        );
        return new AmqpSession(target.name, conn, amqp.username);
      } catch (e) {
        const refusal = OPEN_REFUSED.test((e as Error).message) ? await openRefusal(target, opts).catch(() => undefined) : undefined;
        const err = connectError(target, e as Error, refusal);
        // A vhost that is starting gets about 11 s, even on a first connect. So does a vhost that
        // refuses the user: that is also what a vhost another client is creating answers until
        // its creator has been granted rights on it (two applies started together: the second
        // sees the vhost and connects). A vhost that truly refuses is reported 11 s later.
        // A limit (the vhost's or the user's connections) also says "refused for user": it is not a
        // vhost that is starting, and is reported at once.
        const starting =
          refusal !== undefined && ("opened" in refusal || VHOST_DOWN.test(refusal.text) || (REFUSED_FOR_USER.test(refusal.text) && !limitHint(refusal.text)));
        // Waiting out a booting node is worth a few tries; a broker that took the connection and
        // said nothing for CONNECT_TIMEOUT_MS, twice, is not booting: eight such tries were two
        // silent minutes of a deploy job before it failed (a paused broker).
        if (timedOut(e as Error)) silent++;
        const last = starting ? Math.max(attempts, VHOST_START_ATTEMPTS) : attempts;
        if (!(err.transient || starting) || attempt >= last || silent >= SILENT_CONNECTS) throw err;
        const delay = backoff(attempt);
        if (starting && attempt === 1) {
          const why = "code" in refusal ? refusal.text : "refused, then accepted";
          opts.log?.(`cluster ${target.name}: vhost "${amqp.vhost}" refused the connection (${redactText(why)}); trying again for up to 11 s, as a vhost another client has just created does`);
        } else if (!starting) {
          // Each try said, so that a wait for the broker is never silent.
          opts.log?.(`${err.message.split("\n")[0]}; trying again in ${(delay / 1000).toFixed(1)} s (connect ${attempt + 1} of ${last})`);
        }
        await sleep(delay);
      }
    }
  }

  /**
   * The channels the broker lets one connection open (channel_max in rabbitmq.conf, 2047 by
   * default; a hosted broker may set far fewer), as negotiated when the connection opened.
   */
  get channelMax(): number {
    return (this.conn as unknown as { connection?: { channelMax?: number } }).connection?.channelMax || 0xffff;
  }

  /** The AMQP user's max-channels (rabbitmqctl set_user_limits), when apply could read it: this connection's share of it. */
  private userLimit: { user: string; max: number; of?: { limit: number; sharing: number } } | undefined;

  /**
   * Keep within the user's max-channels as within channel_max. The broker counts a user's channels
   * over all its connections and closes the whole connection that opens one too many (530), so a
   * replace stopped part-way. A negative limit is none. `sharing`: how many connections of this
   * apply (clusters on one broker as one user) write at once, each within its share: each kept
   * within the whole, two clusters together went past it, and the second failed after the first
   * had written.
   */
  limitChannels(user: string, max: number, sharing = 1): void {
    this.userLimit = max < 0 ? undefined : sharing > 1 ? { user, max: Math.floor(max / sharing), of: { limit: max, sharing } } : { user, max };
  }

  /** The channels topo may have open at once: channel_max, or the user's max-channels when lower. */
  get channelBudget(): number {
    return this.userLimit && this.userLimit.max < this.channelMax ? this.userLimit.max : this.channelMax;
  }

  /** The user whose max-channels sets channelBudget; undefined when channel_max does. */
  get budgetUser(): { user: string; max: number; of?: { limit: number; sharing: number } } | undefined {
    return this.userLimit && this.userLimit.max < this.channelMax ? this.userLimit : undefined;
  }

  /** Channels open and in use now (the lock's, a replace's), idle ones left out. */
  get channelsHeld(): number {
    return this.openChannels - this.idle.length;
  }

  async channel(): Promise<Channel> {
    return this.opened(async () => this.conn.createChannel());
  }

  /** A channel in confirm mode: every publish is confirmed by the broker. */
  async confirmChannel(): Promise<ConfirmChannel> {
    return this.opened(async () => this.conn.createConfirmChannel());
  }

  /**
   * Open a channel within the connection's channel_max: idle channels are closed to make room
   * (amqplib would refuse with "No channels left to allocate"), and a channel's slot is given
   * back when it closes, whoever closes it.
   */
  private async opened<C extends Channel>(create: () => Promise<C>): Promise<C> {
    while (this.openChannels >= this.channelBudget && this.idle.length) await closeChannel(this.idle.pop() as Channel);
    if (this.openChannels >= this.channelBudget) {
      const by = this.budgetUser;
      // Worded as the broker words its own refusal, so limitHint() names the limit either way.
      throw new Error(
        by
          ? `number of channels opened for user '${by.user}' has reached the maximum allowed user limit of (${by.max}) (topo stopped short of it)`
          : `${CHANNEL_MAX_TEXT} ${this.channelMax} (its channel_max), and topo uses them all`,
      );
    }
    this.rpcs++;
    const ch = await create();
    this.openChannels++;
    ch.once("close", () => this.openChannels--);
    // A channel closed by the broker (406, 404, ...) emits 'error'; the failing call rejects with
    // the same error, which is where topo handles it.
    ch.on("error", () => undefined);
    return ch;
  }

  /**
   * How many channels runAll may write over: what was asked, within the connection's channel_max
   * (and the user's max-channels),
   * less the channels other work holds, and one kept spare (a failed batch's writes are done
   * again on a channel of their own). Never below one.
   */
  writers(asked: number): number {
    return Math.max(1, Math.min(asked, this.channelBudget - this.channelsHeld - 1));
  }

  /** Move batches between their first publish and the acknowledgements at their source. */
  private readonly moving = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;

  /**
   * Run one batch of a move, from its publishes to the acknowledgements at its source, to its end
   * even when close() is asked for meanwhile: a connection closed between the confirms and the
   * acknowledgements puts the whole batch back in its source, a copy of each message the target
   * holds already. None starts once close() was asked for.
   */
  async wholeBatch<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closing) throw new Error("the connection is closing (apply was interrupted)");
    const p = fn();
    this.moving.add(p);
    try {
      return await p;
    } finally {
      this.moving.delete(p);
    }
  }

  close(): Promise<void> {
    return (this.closing ??= this.closeAfterBatches());
  }

  /**
   * Close, or drop the connection's socket when the close is not answered within `ms`: a broker
   * under a memory or disk alarm stops reading a connection once it has published on it, so the
   * close handshake waited for ever (amqplib closes at once only once it was told of the block,
   * which may come after a publish's confirm).
   */
  async closeWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([this.close().then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
    clearTimeout(timer);
    if (answered) return;
    (this.conn as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }

  /**
   * The apply lock this connection held was taken from it (the broker cancelled the lock's
   * consumer: its queue was deleted). Another apply may take the lock and write meanwhile, so this
   * connection goes as if lost: what it was writing fails as a connection lost, and apply
   * reconnects, takes the lock again (waiting for whoever holds it) and plans anew before it
   * writes more.
   */
  loseLock(why: string): void {
    if (this.closing || this.lost) return;
    const e = new Error(why);
    this.lost = e;
    this.loseAll?.(e);
    void this.conn.close().catch(() => undefined);
  }

  private async closeAfterBatches(): Promise<void> {
    // Bounded: a batch waits for its confirms at most as long as a blocked broker is waited out.
    if (this.moving.size) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.moving]), new Promise((r) => (timer = setTimeout(r, PUBLISH_BLOCKED_GRACE_MS)))]);
      clearTimeout(timer);
    }
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
            // The broker closes a channel on any error: it is not reused. A refusal `fn` put in
            // words already is kept as it is.
            failure ??= e instanceof BrokerError ? e : amqpError(this.cluster, what(item), e as Error, this.lost);
            ch = undefined;
          }
        }
      } catch (e) {
        failure ??= amqpError(this.cluster, "open channel", e as Error, this.lost);
      } finally {
        if (ch) this.idle.push(ch);
      }
    };
    const workers = Math.max(1, Math.min(this.writers(size), items.length));
    await Promise.all(Array.from({ length: workers }, worker));
    if (failure) throw failure;
  }
}

const CODE_HINTS: Record<number, string> = {
  403: "the user lacks configure/write/read permission on this vhost, or the name is reserved (amq.*)",
  404: "the object does not exist (yet); run topo plan to see the broker's state",
  405: "the queue is exclusive to another client's connection, which alone may use it, and RabbitMQ deletes it when that connection closes: close that client (rabbitmqctl list_queues name owner_pid, then close_connection), then run topo apply again",
  // 406 has several causes; hintFor() tells them apart by the broker's words.
  320: "the broker closed the connection (restart, or an operator closed it); run topo apply again: it finishes what is left",
  530: "the vhost does not exist or the user may not use it",
  541: "the broker failed internally; on RabbitMQ 4 this is what a denied deprecated feature looks like, and rabbitmqctl list_deprecated_features shows which this broker denies: transient non-exclusive queues (permit with deprecated_features.permit.transient_nonexcl_queues = true, or make the queue durable), x-queue-master-locator (deprecated_features.permit.queue_master_locator = true, or drop the argument); otherwise the broker's log names the crash: a queue whose x-expires ran out while it was being declared is one (RabbitMQ 4.3.6, a quorum queue with an x-expires of milliseconds), and topo apply run again declares it anew",
};

/** The broker's words from an amqplib error: `406 PRECONDITION_FAILED - inequivalent arg ...`. */
export function replyText(e: Error & { code?: unknown }): { code?: number; text: string } {
  // Greedy: the broker's words can hold quotes of their own (<<"k">> in a refused argument).
  const m = /with message "(.*)"\s*$/s.exec(e.message);
  const code = typeof e.code === "number" ? e.code : undefined;
  if (m) return { code, text: `${code ?? ""} ${m[1]}`.trim() };
  return { code, text: e.message };
}

/** RabbitMQ's words for a refused resource access; they do not say which permission. */
const ACCESS_REFUSED = /access to (queue|exchange) '(.*)' in vhost '(.*)' refused for user '(.*)'/;
/** A routing key a user's topic permission refused (a bind or unbind from a topic exchange checks the read pattern, a publish the write one). */
const TOPIC_REFUSED = /access to topic '(.*)' in exchange '(.*)' in vhost '(.*)' refused for user '(.*)'/;

/**
 * Which permission an AMQP operation needed on the object the broker named, and the commands
 * that show and set it. The broker says only "access refused"; the operation says which: a
 * declare or delete (topo's lock and apply mark too) needs configure, a bind needs write on its
 * destination and read on its source, a get, a consume or a move needs read (and write on the
 * queue moved into), a publish needs write on its exchange. A refused routing key is a topic permission's: the pattern it checks, named.
 */
function permissionHint(text: string, what = ""): string | undefined {
  const t = TOPIC_REFUSED.exec(text);
  if (t) {
    const [, key, exchange, vhost, user] = t as unknown as [string, string, string, string, string];
    const pattern = /^(bind|unbind|replace)\b/.test(what) ? "read" : "write";
    return `user ${user}'s topic permission on exchange ${exchange} in vhost ${vhost} refuses routing key ${key} (its ${pattern} pattern; a bind or unbind from a topic exchange is checked against the read one): rabbitmqctl list_user_topic_permissions ${shellWord(user)} shows it, and rabbitmqctl set_topic_permissions -p ${shellWord(vhost)} ${shellWord(user)} ${shellWord(exchange)} WRITE READ sets it; or apply as a user without topic permissions on it`;
  }
  const m = ACCESS_REFUSED.exec(text);
  if (!m) return undefined;
  const [, kind, name, vhost, user] = m as unknown as [string, string, string, string, string];
  // A replace's steps are named after it ("replace queue q: delete old q"): the step says which.
  const step = what.replace(/^replace (?:queue|exchange) .*?: /, "");
  const [verb = "", bound] = step.split(" ");
  // A bind named by its destination alone (a replace's "bind topo.hold.q"): an exchange the
  // broker refused that is not that destination is a source.
  const source = what.includes(`${name} -> `) || what.includes(`from ${name} `) || (!step.includes(" -> ") && kind === "exchange" && name !== bound);
  const perm = /^(declare|delete|take|renew)$/.test(verb) ? "configure" : /^(bind|unbind|move)$/.test(verb) ? (source ? "read" : "write") : verb === "publish" ? "write" : /^(count|peek|look|consume)$/.test(verb) ? "read" : "configure, write or read";
  return `user ${user}'s ${perm} permission in vhost ${vhost} does not match ${kind} ${name}: ${permissionCommands(user, vhost)}`;
}

/**
 * Advice for a broker reply, only where the reply says what caused it: a 406 is an existing
 * object with other properties, a refused argument, or a queue that is not empty or in use, and
 * each needs different advice; one topo cannot place gets none rather than a wrong one.
 */
export function hintFor(code: number, text: string, what?: string): string | undefined {
  const limit = limitHint(text);
  if (limit) return limit.hint;
  if (code === 403) return permissionHint(text, what) ?? CODE_HINTS[403];
  // rabbitmqctl lists vhost / unless told another: the reply names the queue's vhost.
  const vhost = code === 405 ? /in vhost '([^']*)'/.exec(text)?.[1] : undefined;
  if (vhost !== undefined) return (CODE_HINTS[405] as string).replace("rabbitmqctl list_queues name owner_pid", `rabbitmqctl list_queues -p ${shellWord(vhost)} name owner_pid`);
  if (code !== 406) return CODE_HINTS[code];
  if (/inequivalent arg/i.test(text)) return "the object exists with other properties; topo plan shows it as a replace, and apply --allow-destructive carries it out";
  if (/invalid arg/i.test(text)) return "this broker refuses the argument, for the reason its reply gives (a value it does not take, an argument this queue type or RabbitMQ version does not know, or one that needs another beside it); fix it in the file";
  if (/not empty/i.test(text)) return "the queue still holds messages; let the workers drain it (topo plan shows the count), or pass --allow-data-loss";
  if (/in use/i.test(text)) return "the queue has consumers; stop the workers that consume it, then run topo apply again";
  return undefined;
}

/**
 * The broker's words when one of its limits stopped topo: a vhost's or a user's limit
 * (rabbitmqctl set_vhost_limits / set_user_limits) or a node's (rabbitmq.conf). Each says which
 * limit, where it is set and what to do; `transient` where only the check itself failed. The
 * texts are those of RabbitMQ 3.10 to 4.3 (rabbit_reader, rabbit_channel, rabbit_queue_type).
 */
export function limitHint(text: string): { hint: string; transient?: boolean } | undefined {
  let m: RegExpExecArray | null;
  if ((m = /access to vhost '(.*)' refused for user '.*': connection limit \((\d+)\) is reached/.exec(text))) {
    const [, vhost = "", n = ""] = m;
    return {
      hint: `vhost "${vhost}" has reached its limit of ${n} connection${n === "1" ? "" : "s"} (max-connections; rabbitmqctl list_vhost_limits -p ${shellWord(vhost)} shows it${n === "0" ? ", and 0 means the vhost accepts none" : ""}); topo needs one connection per cluster (plan to check its login, apply to write): raise the limit with rabbitmqctl set_vhost_limits -p ${shellWord(vhost)} '{"max-connections": ${Number(n) + 1}}' (it replaces all of the vhost's limits: add the others list_vhost_limits shows), or close another client's connection, then run the command again`,
    };
  }
  if (/connection limit cannot be queried/.test(text)) {
    return { hint: "the broker could not check the vhost's connection limit in time (a busy or partitioned cluster); topo tried again, and a later run may pass", transient: true };
  }
  if ((m = /connection refused for user '(.*)': user connection limit \((\d+)\) is reached/.exec(text))) {
    const [, user = "", n = ""] = m;
    return {
      hint: `user "${user}" has reached its limit of ${n} open connection${n === "1" ? "" : "s"} (max-connections; rabbitmqctl list_user_limits --user ${shellWord(user)} shows it); topo needs one per cluster (plan to check its login, apply to write): raise it with rabbitmqctl set_user_limits ${shellWord(user)} '{"max-connections": ${Number(n) + 1}}', close one of that user's connections, or run topo as another user`,
    };
  }
  if ((m = /node connection limit \((\d+)\) is reached/.exec(text))) {
    return { hint: `the node accepts at most ${m[1]} connections (connection_max in rabbitmq.conf) and has them all; raise it, or close connections, then run the command again` };
  }
  if ((m = /channels opened for user '(.*)' has reached the maximum allowed user limit of \(?(\d+)\)?/.exec(text))) {
    const [, user = "", n = ""] = m;
    return {
      hint: `user "${user}" may have at most ${n} channels open (max-channels; rabbitmqctl list_user_limits --user ${shellWord(user)} shows it), counting those of all its connections; topo writes over ${DEFAULT_CHANNELS} channels per cluster unless told otherwise, and opens one more while it does: apply with --parallelism ${Math.max(1, Number(n) - 1)} or fewer (halve it when two clusters of the file use this user), raise the limit with rabbitmqctl set_user_limits ${shellWord(user)} '{"max-channels": ${DEFAULT_CHANNELS + 1 + Number(n)}}', clear it, or run topo as a user without it`,
    };
  }
  if ((m = new RegExp(`${CHANNEL_MAX_TEXT} (\\d+)`).exec(text))) {
    return {
      hint: `the broker's channel_max (in rabbitmq.conf) lets a connection open ${plural(Number(m[1]), "channel")}; topo writes within it, but replacing a queue without losing its messages needs two at once: raise channel_max (2047 by default)`,
    };
  }
  if ((m = /channels opened on node '(.*)' has reached the maximum allowed limit of \(?(\d+)\)?/.exec(text))) {
    return { hint: `node ${m[1]} accepts at most ${m[2]} open channels (channel_max_per_node in rabbitmq.conf) and has them all; topo opens up to ${DEFAULT_CHANNELS + 1} per cluster while it writes: raise the setting, close channels, or apply with a lower --parallelism` };
  }
  if ((m = /cannot declare queue '(.*)': queue limit in vhost '(.*)' \((\d+)\) is reached/.exec(text))) {
    const [, queue = "", vhost = "", n = ""] = m;
    // topo's own queues count too: its lock while apply runs, and a holding queue for each queue
    // a replace moves messages through.
    const own = queue.startsWith("topo.")
      ? `, and topo needs room for its own queue ${queue} beside the file's while apply runs (its lock, or where a replace holds messages)`
      : ", and it is full: plan checked that the file's queues fit, so other clients' queues took the room since, or the file needs more than was there (topo's lock takes one more while apply runs)";
    return {
      hint: `vhost "${vhost}" may hold at most ${n} queue${n === "1" ? "" : "s"} (max-queues; rabbitmqctl list_vhost_limits -p ${shellWord(vhost)} shows it)${own}: raise the limit with rabbitmqctl set_vhost_limits -p ${shellWord(vhost)} '{"max-queues": N}' (it replaces all of the vhost's limits: add the others list_vhost_limits shows), or drop queues from the file`,
    };
  }
  if ((m = /queue limit in cluster \((\d+)\) is reached/.exec(text))) {
    return { hint: `the cluster may hold at most ${m[1]} queues (cluster_queue_limit in rabbitmq.conf), and it is full (every vhost's queues count): raise the setting, or drop queues from the file or elsewhere` };
  }
  return undefined;
}

/** amqplib's words for a field of a type it cannot read (codec.js). */
const UNDECODABLE = /Unexpected type tag/;
const UNDECODABLE_HINT =
  "a message holds a header value that topo's AMQP client (amqplib) cannot read, though RabbitMQ took it from another client (py-amqp writes an integer beyond 32 bits with the tag L): the broker put the message back in its queue, unchanged; topo cannot move it, so move or consume that message with another client (it is among the first 256 messages the queue holds now: the batch topo was fetching), then run topo apply again";

/**
 * Close a channel, ignoring its errors, and settle even when the connection goes while the close
 * waits for the broker's close-ok: amqplib's close() then never settles (the channel only emits
 * "close"), and a replace awaiting it left Node nothing to run: topo stopped mid-replace with an
 * `internal` error that named no cluster and no half-done replace.
 */
export function closeChannel(ch: Channel | ConfirmChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ch.off("close", done);
      resolve();
    };
    ch.once("close", done);
    ch.close().then(done, done);
  });
}

/**
 * The reasons RabbitMQ itself forces a connection closed with (320 CONNECTION_FORCED): its node
 * stopping, a node put into maintenance mode (rabbitmq-upgrade drain), the connection's vhost
 * deleted or stopped. Whatever else comes with 320 is an operator's reason.
 */
const BROKERS_OWN_CLOSE = /broker forced connection closure with reason 'shutdown'|maintenance mode|vhost '.*' is (deleted|down|stopped)/i;

export function amqpError(cluster: string, what: string, e: Error, lost?: Error): BrokerError {
  const own = replyText(e as Error & { code?: unknown });
  const gone = lost && lost !== e ? replyText(lost as Error & { code?: unknown }) : undefined;
  const lostText = gone ? `; connection lost: ${gone.text}` : "";
  // When the broker closed the whole connection, its reply (e.g. 541 for a denied deprecated
  // feature) says more than the channel's "Channel ended".
  const code = own.code ?? gone?.code;
  const connectionGone = !!lost || /Connection closed|Channel ended|IllegalOperationError|Socket closed/.test(`${e.name} ${e.message}`);
  // topo closed a connection the broker blocked (an alarm): no restart to reconnect after. The
  // broker reads nothing from it until the alarm clears, so it holds topo's lock till then.
  const blockedBy = e instanceof PublishBlocked ? e : lost instanceof PublishBlocked ? lost : undefined;
  // Retry only what a restart explains: a dropped socket, or a forced close (320) with the words
  // RabbitMQ gives when its node stops or drains, or when the vhost goes (the reconnect then says
  // so). Any other forced close is an operator's, which means "stop": the management UI and API
  // send "Closed via management plugin" or the reason the operator typed, and rabbitmqctl
  // close_connection always sends one (apply reconnected and kept writing through all of these
  // but the first). Any other reply is permanent.
  const byOperator = code === 320 && !BROKERS_OWN_CLOSE.test(`${own.text} ${gone?.text ?? ""}`);
  // amqplib could not decode a frame the broker sent (a message header of a type it does not
  // know): every try meets the same message, so no reconnect helps.
  const undecodable = UNDECODABLE.test(`${e.message} ${lost?.message ?? ""}`);
  const transient = connectionGone && !byOperator && !blockedBy && !undecodable && (code === undefined || code === 320);
  // A limit the broker closed the whole connection for (a user's max-channels) is named in the
  // connection's reply; the channel itself only "ended".
  const limit = limitHint(own.text) ?? (gone ? limitHint(gone.text) : undefined);
  const hint = undecodable ? UNDECODABLE_HINT : limit ? limit.hint : blockedBy ? alarmHint(blockedKind(blockedBy.reason)) : code !== undefined ? hintFor(code, own.text, what) : connectionGone ? CODE_HINTS[320] : undefined;
  return new BrokerError(cluster, redactText(`${what} -> ${own.text}${lostText}`), {
    object: what,
    status: code,
    transient,
    hints: hint ? [hint] : [],
  });
}

/**
 * Whether the broker accepts this cluster's AMQP login, for a cluster whose vhost apply has yet to
 * create (a session cannot open before that write). RabbitMQ checks the credentials at
 * connection.start-ok and the vhost only at connection.open, so "vhost not found" there means the
 * login was accepted. Any other outcome is left to an ordinary connect, which says what is wrong
 * exactly as it would have after the vhost was created, or which opens after all (someone else
 * created the vhost meanwhile).
 */
export async function checkLogin(target: ClusterTarget, opts: AmqpOptions = {}): Promise<void> {
  const found = await vhostFoundOverAmqp(target, opts, "is the login accepted?");
  if (found === "opens" || found === "missing") return;
  const failed = await connectOnce(target, opts);
  if (failed !== undefined) throw failed;
}

/**
 * The cluster's AMQP login, as a read checks it beside its requests: a plan that passes says the
 * file's credentials work too, not only that the broker matches (a no-change apply opens no session,
 * and without this the first apply with something to write would fail at its connect). One
 * short connection. A refused login (403) or a vhost that refuses the user (530: no rights on it,
 * still after the wait a connect gives such a vhost) is the error a connect gives; a vhost not
 * created yet proves the login (apply creates it and grants the rights); a connection limit that
 * is full (but not 0, which refuses every connection), an unreachable port or one that sends no
 * connection.start is left to the read, identify and apply. A login the broker greeted and then
 * left unanswered (reset, closed, or silent) is the error a connect gives.
 */
export async function refusedLogin(target: ClusterTarget, opts: AmqpOptions = {}): Promise<BrokerError | undefined> {
  // A login too long for the broker to read (LOGIN_CREDENTIALS_MAX) is dropped: plan passed, and
  // every connect of apply's was reset. The probe below sends less beside the credentials than a
  // connect does (3,807 bytes of them passed it and were dropped from apply's connect, 3.10.8), so
  // such a login is tried as apply makes it; a broker with a larger initial_frame_max opens it.
  if (longLogin(target.amqp) !== undefined) {
    const failed = await connectOnce(target, opts);
    if (failed instanceof BrokerError && droppedAtLogin(failed)) return failed;
  }
  let dropped = false;
  let r = await openRefusal(target, opts, "is the login accepted?", () => (dropped = true)).catch(() => undefined);
  if (!r && dropped) {
    // The broker sent connection.start and the login got no answer: reset or closed (a node going
    // down, a proxy in front of it that cuts the connection), or silent. Left to apply as a port
    // that did not answer, a wrong password planned "No changes." through such a proxy; apply's
    // every connect then failed. Tried once more as a connect makes it, whose error says what it
    // met; a login answered this time is read as below. (A port that refuses the connection, or
    // sends no connection.start, is identify's to report.)
    const failed = await connectOnce(target, opts);
    if (failed === undefined) return undefined;
    r = await openRefusal(target, opts, "is the login accepted?").catch(() => undefined);
    if (!r) {
      const e = failed instanceof BrokerError ? failed : connectError(target, failed as Error);
      e.hints.unshift(`the login of "${target.amqp.username}" could not be checked: ${hostPort(target.amqp.hostname, target.amqp.port)} greeted the connection (connection.start) and dropped it when topo sent the login, each time it tried; every connect of apply's would meet the same`);
      return e;
    }
  }
  if (!r || "opened" in r) return undefined;
  // As a connect words it: the reply without its code.
  if (r.code === 403) return connectError(target, new Error(r.text.replace(/^\d+ /, "")));
  if (r.code !== 530 || !REFUSED_FOR_USER.test(r.text)) return undefined;
  // A connection limit that is full now may not be at apply; one of 0 refuses every connection,
  // and a plan that passed said nothing of an apply that could never connect.
  if (limitHint(r.text) && !/connection limit \(0\) is reached/.test(r.text)) return undefined;
  // A vhost another client has just created refuses the user until its creator is granted rights
  // (two applies started together): a connect waits for that, about 11 s, and so does this.
  const failed = await connectOnce(target, opts);
  if (failed === undefined) return undefined;
  return failed instanceof BrokerError ? failed : connectError(target, failed as Error, r);
}

/**
 * One connect as apply makes it, tried once and closed at once: what it failed with, or undefined
 * where it opened.
 */
function connectOnce(target: ClusterTarget, opts: AmqpOptions): Promise<unknown> {
  return AmqpSession.open(target, { ...opts, connectAttempts: 1 }).then(
    (s) => s.close().then(() => undefined),
    (e: unknown) => e,
  );
}

/**
 * What the cluster's AMQP user finds at its vhost: it opens ("opens"), the broker refuses the user
 * there ("refused": the vhost exists), or there is no such vhost ("missing"); undefined where the
 * login itself fails or nothing answers. The management API of RabbitMQ 4.3 answers a vhost's
 * listings 404 for a user without permissions on it, as for a vhost that does not exist: this
 * tells the two apart.
 */
export async function vhostFoundOverAmqp(target: ClusterTarget, opts: AmqpOptions = {}, why = "does the vhost exist?"): Promise<"opens" | "refused" | "missing" | undefined> {
  const r = await openRefusal(target, opts, why).catch(() => undefined);
  if (!r) return undefined;
  if ("opened" in r) return "opens";
  if (r.code === 530 && REFUSED_FOR_USER.test(r.text)) return "refused";
  if (r.code === 530 && vhostNotFound(r.text)) return "missing";
  return undefined;
}

/** How amqplib words a connection.close sent in answer to connection.open (a vhost refused). */
const OPEN_REFUSED = /Expected ConnectionOpenOk; got <ConnectionClose/;
/** The broker's words when a vhost exists but does not run on the node yet (541). */
const VHOST_DOWN = /vhost '.*' is down/;
/**
 * The broker's words when the user has no rights on the vhost, or has none yet (530). A reply text
 * is at most 255 bytes, and RabbitMQ cuts it there: with a long vhost name the words after it are
 * gone, so how the reply starts decides too.
 */
const REFUSED_FOR_USER = /refused for user|^530 NOT_ALLOWED - access to vhost /;
/** So when the vhost does not exist ("vhost X not found", cut after the name when it is long). */
function vhostNotFound(text: string): boolean {
  return /not found/.test(text) || (/^530 NOT_ALLOWED - vhost /.test(text) && !VHOST_DOWN.test(text));
}

interface AmqplibInternals {
  Connection: new (stream: net.Socket) => {
    step(cb: (err: Error | null, frame: { id?: number; fields?: Record<string, unknown> } | null) => void): void;
    open(fields: Record<string, unknown>, cb: (err: Error | null) => void): void;
  };
  ConnectionClose: number;
}
function amqplibInternals(): AmqplibInternals {
  return {
    Connection: amqplibModule<Pick<AmqplibInternals, "Connection">>("connection.js").Connection,
    ConnectionClose: amqplibModule<{ ConnectionClose: number }>("defs.js").ConnectionClose,
  };
}

/** Why connection.open was refused, or that it was accepted when tried again. */
type Refusal = { code: number; text: string } | { opened: true };

/**
 * amqplib reports a connection.close sent in answer to connection.open only as "Expected
 * ConnectionOpenOk; got <ConnectionClose channel:0>": the frame that carries the broker's words
 * (530 NOT_ALLOWED - access to vhost 'v' refused for user 'u', or vhost 'v' not found) is not
 * kept. So after such a failure, open once more through amqplib's own Connection, watching the
 * frames it reads, and return that reply. `onDropped` is told when there is none because the
 * connection was lost, or went silent, after the broker's first frame.
 */
function openRefusal(target: ClusterTarget, opts: AmqpOptions, why = "why was the connection refused?", onDropped?: () => void): Promise<Refusal | undefined> {
  const { Connection, ConnectionClose } = amqplibInternals();
  const { amqp } = target;
  return new Promise((resolve) => {
    const { socket, ready } = amqpSocket(target, opts.insecure);
    const timer = setTimeout(() => finish(undefined), 5_000);
    /** The broker sent a frame (connection.start comes first): a login left unanswered after it was dropped. */
    let greeted = false;
    function finish(r: Refusal | undefined): void {
      clearTimeout(timer);
      socket.destroy();
      if (!r && greeted) onDropped?.();
      resolve(r);
    }
    socket.on("error", () => finish(undefined));
    socket.once(ready, () => {
      const c = new Connection(socket);
      let close: Record<string, unknown> | undefined;
      const step = c.step.bind(c);
      c.step = (cb) =>
        step((err, frame) => {
          if (frame) greeted = true;
          if (frame?.id === ConnectionClose) close = frame.fields;
          cb(err, frame);
        });
      c.open(
        {
          // authentication_failure_close: a refused login is answered at once with 403, not
          // by closing the socket after RabbitMQ's silent 3 s (checkLogin meets wrong passwords).
          clientProperties: { connection_name: `topo ${target.name} (${why})`, capabilities: { authentication_failure_close: true } },
          mechanism: "PLAIN",
          response: Buffer.from(["", amqp.username, amqp.password].join("\0")),
          locale: "en_US",
          channelMax: 0,
          frameMax: 131072,
          heartbeat: 0,
          virtualHost: amqp.vhost,
          capabilities: "",
          insist: 0,
        },
        (err) => finish(close ? { code: Number(close.replyCode), text: `${String(close.replyCode)} ${String(close.replyText)}` } : err ? undefined : { opened: true }),
      );
    });
  });
}

/**
 * The most bytes of user name and password a login may carry on a broker as RabbitMQ sets it by
 * default. The login (connection.start-ok) comes before the connection is tuned, when RabbitMQ
 * reads frames of at most initial_frame_max (rabbitmq.conf, 4096 bytes by default): a longer one
 * is dropped without a reply, 3 s later (rabbit_reader's frame_too_large, silent before the
 * login). Measured on 3.10.8 with amqplib 2.3.1, user name of 7 bytes: a password of 3,780 bytes
 * logs in, one of 3,800 is reset; what amqplib sends beside them (its client properties, topo's
 * connection name) takes the other 300 bytes or so, so past this bound a dropped login is said to
 * be its length, not a node going down (and not tried again eight times).
 */
const LOGIN_CREDENTIALS_MAX = 4096 - 512;

/** The bytes of the cluster's AMQP user name and password, when past LOGIN_CREDENTIALS_MAX. */
function longLogin(amqp: { username: string; password: string }): number | undefined {
  const n = Buffer.byteLength(amqp.username) + Buffer.byteLength(amqp.password);
  return n > LOGIN_CREDENTIALS_MAX ? n : undefined;
}

/** A connection the broker took, then reset or closed before it answered the login. */
function droppedAtLogin(e: Error): boolean {
  return /ECONNRESET|EPIPE|Socket closed abruptly during opening handshake/.test(errorText(e));
}

function longLoginHint(target: ClusterTarget, bytes: number): string {
  return `the user name and password of "${target.amqp.username}" take ${bytes} bytes, and RabbitMQ drops a login longer than its initial_frame_max (4096 bytes by default, with what the client sends beside them) without a reply: use a shorter password in ${placesOf(target).url}, or raise initial_frame_max in the broker's rabbitmq.conf`;
}

function connectError(target: ClusterTarget, e: Error, reason?: Refusal): BrokerError {
  const places = placesOf(target);
  const tls = tlsProblem({ host: places.url, tls: places.tls }, e as Error & { code?: unknown });
  const refusal = reason && "code" in reason ? reason : undefined;
  const { code, text } = tls ? { code: undefined, text: tls.text } : (refusal ?? replyText(e as Error & { code?: unknown }));
  const where = `connect ${target.amqp.display}`;
  const hints: string[] = [];
  let transient = false;
  let kind: ErrorCode | undefined;
  const { username: user, vhost } = target.amqp;
  const limit = refusal ? limitHint(refusal.text) : undefined;
  const said = errorText(e);
  const long = longLogin(target.amqp);
  if (tls) hints.push(tls.hint);
  else if ((refusal && VHOST_DOWN.test(refusal.text)) || (reason && "opened" in reason)) {
    // 541 "vhost 'v' is down": the vhost exists but does not run on this node yet. RabbitMQ 3.10
    // says so to a connection that comes just after another client created the vhost (two
    // applies of one file started together). A refusal that is gone when tried again is the same.
    kind = "broker_refused";
    transient = true;
    hints.push(`vhost "${vhost}" is not running on the node (it was just created, or it failed there); rabbitmqctl list_vhosts name cluster_state shows its state on each node`);
  } else if (limit) {
    kind = "broker_refused";
    transient = limit.transient === true;
    hints.push(limit.hint);
  } else if (refusal && REFUSED_FOR_USER.test(refusal.text)) {
    kind = "permission_denied";
    hints.push(noRightsHint(user, vhost));
  } else if (refusal && vhostNotFound(refusal.text)) {
    kind = "permission_denied";
    hints.push(`vhost "${vhost}" does not exist: topo apply creates it when the management user is an administrator; or: rabbitmqctl add_vhost ${shellWord(vhost)} && rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(user)} '.*' '.*' '.*'`);
  } else if (refusal) {
    kind = "broker_refused";
    if (refusal.code in CODE_HINTS) hints.push(CODE_HINTS[refusal.code] as string);
  } else if (/ACCESS.REFUSED|403/.test(e.message)) {
    kind = "auth_failed";
    hints.push(`the broker refused the credentials (user name or password) of "${user}"; check them in ${places.login ?? places.url}`);
  } else if (/NOT.ALLOWED|530|vhost/.test(e.message)) {
    kind = "permission_denied";
    hints.push(`vhost "${target.amqp.vhost}" does not exist or user "${target.amqp.username}" has no permission on it; topo apply creates the vhost when the management user may`);
  } else if (droppedAtLogin(e) && long !== undefined) {
    kind = "broker_refused";
    hints.push(longLoginHint(target, long));
  } else if (TRANSIENT_NET.test(said)) {
    kind = "broker_unreachable";
    transient = true;
    const at = hostPort(target.amqp.hostname, target.amqp.port);
    // A time-out is no refusal: the host did not answer, or the broker took the connection and
    // did not answer it (stopped, paused, too busy); said as nothing accepting connections, it
    // sent people after a port that was right.
    hints.push(
      /ETIMEDOUT/.test(said)
        ? `no AMQP answer from ${at} in time: the host does not answer, or the broker accepts connections and does not answer them (stopped, paused or too busy: rabbitmq-diagnostics status on its node says whether it runs); is the broker up?`
        : /ECONNREFUSED/.test(said)
          ? `nothing accepts AMQP connections at ${at}; is the broker up?`
          : /EHOSTUNREACH/.test(said)
            ? `no route to ${at}: the host is down or a network between cuts it off; check the host in ${places.url}`
            : // Reset or cut after it was taken: "nothing accepts" sent people after a listener
              // that was there (a node shutting down or restarting, a proxy with no broker behind it).
              `${at} took the connection and then dropped it (reset or closed): the node is shutting down or restarting, or a proxy or load balancer in between has no broker behind it; run topo again once the broker is up (rabbitmq-diagnostics status on its node)`,
    );
  }
  return new BrokerError(target.name, redactText(`${where} -> ${text}`), { status: code, transient, hints, code: kind ?? (tls ? "broker_unreachable" : undefined) });
}
