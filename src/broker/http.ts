// The management HTTP API client: keep-alive, bounded retries of transient failures, and errors
// that name the cluster, the request and the broker's reply (never a bare "fetch failed").

import http from "node:http";
import https from "node:https";
import { BrokerError } from "../errors.js";
import { placesOf, type ManagementEndpoint, type SettingPlaces, type TlsOptions } from "../model.js";
import { maskEcho, Redactor, redactText } from "../redact.js";
import type { ItemCheck } from "./answers.js";
import { tlsOptions, tlsProblem } from "./tls.js";
import { backoff, sleep } from "./retry.js";
import { noRightsHint, permissionCommands, setUserTags, shellWord } from "../core/words.js";

export interface HttpOptions {
  /** Attempts for transient failures (connection refused, reset, 502/503/504, timeouts). */
  attempts?: number;
  /** Bound on each request, from when it has a connection to the last byte of the answer (default 30 s). */
  timeoutMs?: number;
  insecure?: boolean;
  /** Where the user sets this cluster's connection, for hints (default: the file's clusters.<name> keys). */
  places?: SettingPlaces;
  /**
   * The run's redactor: the client masks its password with it, so that it spares what the run
   * spares (the names output shows, Redactor.spare). Without one, a redactor of its own.
   */
  redactor?: Redactor;
  /**
   * Where to say, on stderr, that a request is still unanswered and that one is tried again: a
   * paused broker kept apply's read silent for up to four minutes (a listing's two tries), where
   * AMQP's connect says each try.
   */
  log?: (msg: string) => void;
  /** How long a request waits unanswered before the log hears of it (default STILL_WAITING_MS). */
  stillWaitingMs?: number;
}

/** Per request: the identity probe uses a shorter bound than a large read. */
export interface RequestOptions {
  timeoutMs?: number;
  attempts?: number;
  /**
   * The first request to an endpoint: only "connection refused" (a node booting) is tried again.
   * A port that accepts and then hangs up or says nothing is a wrong URL, not a busy broker.
   */
  probe?: boolean;
  /** A whole vhost's listing: LISTING_TIMEOUT_MS, unless the client was given a bound of its own. */
  listing?: boolean;
  /**
   * A PUT that only creates (`If-None-Match: *`): RabbitMQ's REST handlers answer 412 where the
   * object exists, and leave it as it is, where a plain PUT would set it anew.
   */
  ifAbsent?: boolean;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/**
 * A listing of a vhost's exchanges, queues or bindings is waited for longer than other requests:
 * the ten requests of a read of two 25,000-service vhosts took 19 to 42 s on a slow 2-core machine
 * while the broker worked on the statistics of their 50,000 queues. The probe before the read has
 * shown the API answers, so a slow listing is a busy broker, not a dead one.
 */
export const LISTING_TIMEOUT_MS = 120_000;
/** A request that timed out is tried once more at most: a port that never answers is not busy. */
const TIMEOUT_ATTEMPTS = 2;
/** How long a request waits unanswered before it is said (then again as often), when a log is given. */
export const STILL_WAITING_MS = 15_000;

export interface HttpResponse {
  status: number;
  body: unknown;
  text: string;
  /** The content-type and location headers: what says a reply is not the management API's. */
  contentType?: string;
  location?: string;
  /** The Age header: how many seconds a cache in between had held this answer (RabbitMQ sends none). */
  age?: string;
  /** An earlier try of this request may have reached the broker: it was retried after a lost answer or a 502 to 504. */
  resent?: boolean;
}

/**
 * The query parameter every GET carries, with a value no other request has: a cache in front of
 * the management API then never has this request's answer to give back. RabbitMQ answers
 * `cache-control: no-cache`, which a cache set to ignore it does (nginx's proxy_cache with
 * proxy_ignore_headers Cache-Control, a common "micro-cache" for the management UI's polling):
 * behind one keyed by the whole URI (nginx's default key), plan read a listing from before a
 * change made by hand and said "No changes.", and apply did nothing and said the broker matched
 * the file (measured behind nginx 1.22 with proxy_cache_valid 200 60s). The management API ignores
 * parameters it does not know: it reads each by name (rabbit_mgmt_util:qs_val, in 3.10.8, 4.0.5
 * and 4.3.4 alike), and plan and apply through that nginx on 3.10.8 answered as without it.
 */
export const FRESH_PARAM = "topo_fresh";

/**
 * An answer a cache held this many seconds or more is not the broker's word on the vhost now. A
 * cache that serves what it stored says so with Age (RFC 9111 5.1: Varnish, Squid, Apache's
 * mod_cache, CDNs); one that fetched the answer now may say Age: 0.
 */
const STALE_AGE_S = 1;

const TRANSIENT_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ESOCKETTIMEDOUT", "UND_ERR_SOCKET"]);
const TRANSIENT_STATUS = new Set([502, 503, 504]);

/** RabbitMQ's management plugin refuses in JSON: {"error": "Object Not Found", "reason": "Not Found"}. */
function rabbitRefusal(body: unknown): boolean {
  return typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string";
}

export class ManagementClient {
  /** Requests sent, retries included, and how many of them were writes; the benchmark reports them. */
  requests = 0;
  writes = 0;
  private readonly agent: http.Agent;
  private readonly base: URL;
  private readonly auth: string;
  /** Masks this client's own password (with the run's redactor, when it was given one). */
  private readonly own: Redactor;
  /** When the log last heard that a request waits, and that one is tried again (say). */
  private readonly saidAt: { waiting?: number; again?: number } = {};
  /** What makes each GET's URL this client's and this request's alone (FRESH_PARAM). */
  private readonly freshBase = `${process.pid.toString(36)}${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  /** Where hints send the user to fix this connection. */
  readonly places: SettingPlaces;

  constructor(
    readonly cluster: string,
    private readonly endpoint: ManagementEndpoint,
    tls: TlsOptions,
    private readonly opts: HttpOptions = {},
  ) {
    this.base = new URL(endpoint.baseUrl);
    this.places = placesOf({ name: cluster, places: opts.places });
    this.auth = `Basic ${Buffer.from(`${endpoint.username}:${endpoint.password}`).toString("base64")}`;
    this.own = opts.redactor ?? new Redactor();
    this.own.add(endpoint.password);
    const keepAlive = { keepAlive: true, maxSockets: 8 };
    this.agent =
      this.base.protocol === "https:"
        ? new https.Agent({ ...keepAlive, ...tlsOptions(tls, opts.insecure) })
        : new http.Agent(keepAlive);
  }

  close(): void {
    this.agent.destroy();
  }

  /** Bytes of the Authorization header this client sends (the credentials, base64-encoded). */
  get authBytes(): number {
    return this.auth.length;
  }

  /** The management URL, password masked, for messages. */
  get display(): string {
    return this.endpoint.display;
  }

  /**
   * GET that turns 404 (or the other given statuses) into undefined: an answer, not an error, when
   * it is RabbitMQ's own (see rabbitRefusal). Whatever it answers is JSON: an object, or a list.
   */
  async getOptional<T>(path: string, absent: number[] = [404], opts: RequestOptions = {}): Promise<T | undefined> {
    const r = await this.request("GET", path, undefined, absent, opts);
    if (absent.includes(r.status)) {
      if (!rabbitRefusal(r.body)) throw this.foreignAnswer("GET", path, r, "");
      return undefined;
    }
    if (typeof r.body !== "object" || r.body === null) throw this.foreignAnswer("GET", path, r, "JSON");
    // RabbitMQ answers an error with an error status, never 200.
    if (rabbitRefusal(r.body)) throw this.notTheBrokers("GET", path, `it answered ${r.status} with an error (${redactText(this.unechoed(String((r.body as { error: string }).error))).slice(0, 100)})`);
    return r.body as T;
  }

  /**
   * getOptional of a listing: a JSON list, each item of which passes `item` (of the kind and the
   * vhost asked for), or undefined for an absent status.
   */
  async list<T>(path: string, absent: number[] = [404], opts: RequestOptions = {}, item?: { check: ItemCheck; of: string }): Promise<T[] | undefined> {
    const body = await this.getOptional<unknown>(path, absent, opts);
    if (body !== undefined && !Array.isArray(body)) throw this.foreignAnswer("GET", path, { status: 200, body, text: "" }, "a list");
    if (body && item) {
      for (let i = 0; i < body.length; i++) {
        const wrong = item.check(body[i]);
        if (wrong !== undefined) throw this.notTheBrokers("GET", path, `its item ${i + 1} of ${body.length}${itemName(body[i])} ${wrong}, so it is none of the ${item.of} asked for (another request's answer, another vhost's, or one changed on the way)`);
      }
    }
    return body as T[] | undefined;
  }

  /** getOptional of one object, which must pass `check` (the object asked for, of the vhost asked for). */
  async one<T>(path: string, check: ItemCheck, what: string): Promise<T | undefined> {
    const body = await this.getOptional<unknown>(path);
    const wrong = body === undefined ? undefined : check(body);
    if (wrong !== undefined) throw this.notTheBrokers("GET", path, `it ${wrong}, so it is not ${what} (another request's answer, an error with status 200, or one changed on the way)`);
    return body as T | undefined;
  }

  /** An answer that is not the broker's word on what was asked (`between`: what may have answered instead). */
  notTheBrokers(method: string, path: string, why: string, o: { between?: string; status?: number } = {}): BrokerError {
    return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> not a management API answer: ${why}`), {
      hints: [this.throughHint(o.between ?? "a proxy or cache", ", and topo cannot tell what the broker holds")],
      code: "broker_unreachable",
      status: o.status,
    });
  }

  /**
   * A GET answered from a cache's store (its Age header): what the broker held some time ago, which
   * a plan must not take for what it holds now. Not tried again: the cache would answer alike.
   */
  private cachedAnswer(path: string, r: HttpResponse): BrokerError {
    return this.notTheBrokers("GET", path, `it answered ${r.status} with Age: ${r.age}, an answer a cache in between stored ${r.age} s ago (RabbitMQ sends no Age header), so it says what the broker held then, not now`, {
      between: "a cache",
      status: r.status,
    });
  }

  /** The hint for an answer from something between topo and RabbitMQ's management API. */
  private throughHint(between: string, more: string): string {
    return `${this.places.management} must reach RabbitMQ's management API itself (http://<host>:15672, https on 15671); ${between} in between answers for it${more}`;
  }

  async get<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    return (await this.getOptional<T>(path, [], opts)) as T;
  }

  /**
   * An answer that is not the management API's: a 404 or 401 that is some other server's page
   * (a proxy's, a login page's) is no word on the vhost or the user, and a body that is not the
   * JSON asked for (`wanted`; "" for an error body) is no listing, empty or not. The page is not
   * quoted: it may echo the request, the Authorization header included.
   */
  private foreignAnswer(method: string, path: string, r: HttpResponse, wanted: string): BrokerError {
    const type = r.contentType ? ` (${r.contentType.split(";")[0]?.trim()})` : "";
    const what =
      wanted === ""
        ? `it answered ${r.status}${type}, not as RabbitMQ's management plugin does (a JSON error)`
        : r.text === "" && r.body === undefined
          ? `it answered ${r.status} with nothing, where RabbitMQ answers ${wanted}`
          : typeof r.body === "string"
            ? `it answered ${r.status}${type} with text that is not JSON, where RabbitMQ answers ${wanted} (a page of another server's, or an answer cut short)`
            : `it answered ${r.status} with JSON that is not ${wanted}`;
    return this.notTheBrokers(method, path, what, { between: "a proxy or login page", status: r.status });
  }

  /**
   * PUT; the status RabbitMQ answered (201 created, 204 there already, or changed; with
   * `ifAbsent`, 412 there already and left alone), and whether an earlier try of this PUT may have
   * reached the broker (its answer was lost, or the broker answered 502 to 504): a 204 or a 412
   * then may be for this PUT's own earlier try.
   */
  async put(path: string, body: unknown, o: { ifAbsent?: boolean } = {}): Promise<{ status: number; resent: boolean }> {
    const r = await this.request("PUT", path, body, o.ifAbsent ? [412] : [], { ifAbsent: o.ifAbsent });
    this.written("PUT", path, r);
    return { status: r.status, resent: r.resent === true };
  }

  /** DELETE; 404 counts as done (rule: idempotent steps), when it is RabbitMQ's. */
  async delete(path: string): Promise<void> {
    const r = await this.request("DELETE", path, undefined, [404]);
    if (r.status === 404 && !rabbitRefusal(r.body)) throw this.foreignAnswer("DELETE", path, r, "");
    this.written("DELETE", path, r);
  }

  /**
   * A write RabbitMQ took answers 201 or 204 with nothing, or JSON: a page (a login page a proxy
   * answers 200 with) is no word that the write was made, and apply would count it as made.
   */
  private written(method: string, path: string, r: HttpResponse): void {
    if (typeof r.body === "string") throw this.foreignAnswer(method, path, r, "nothing or JSON");
  }

  async request(method: string, path: string, body?: unknown, okStatus: number[] = [], ro: RequestOptions = {}): Promise<HttpResponse> {
    const attempts = ro.attempts ?? this.opts.attempts ?? 5;
    const timeoutMs = ro.timeoutMs ?? this.opts.timeoutMs ?? (ro.listing ? LISTING_TIMEOUT_MS : DEFAULT_REQUEST_TIMEOUT_MS);
    /** A try before this one may have reached the broker: only a refused connection surely did not. */
    let resent = false;
    for (let attempt = 1; ; attempt++) {
      /** The failure this try ended with, to be tried again, and how many tries it has. */
      let tried: { err: BrokerError; bound: number } | undefined;
      try {
        const r = await this.once(method, path, body, timeoutMs, ro.ifAbsent === true);
        if (method === "GET" && Number(r.age) >= STALE_AGE_S) throw this.cachedAnswer(path, r);
        if ((r.status >= 200 && r.status < 300) || okStatus.includes(r.status)) return resent ? { ...r, resent } : r;
        const err = this.statusError(method, path, r, await this.tagsIfRefused(r));
        if (!err.transient || attempt >= attempts) throw err;
        resent = true;
        tried = { err, bound: attempts };
      } catch (e) {
        if (e instanceof BrokerError) {
          if (!e.transient || attempt >= attempts) throw e;
          resent = true;
          tried = { err: e, bound: attempts };
        } else {
          const err = this.networkError(method, path, e as NodeJS.ErrnoException, timeoutMs, ro.probe === true, attempt);
          const bound = ro.probe && err.status !== "ECONNREFUSED" ? 1 : err.status === "ETIMEDOUT" ? Math.min(attempts, TIMEOUT_ATTEMPTS) : attempts;
          if (!err.transient || attempt >= bound) throw err;
          if (err.status !== "ECONNREFUSED") resent = true;
          tried = { err, bound };
        }
      }
      const delay = backoff(attempt);
      // Each try again said, as AMQP's connect says its own: never a silent wait for the broker.
      if (tried) this.say("again", `${tried.err.message.split("\n")[0]}; trying again in ${(delay / 1000).toFixed(1)} s (try ${attempt + 1} of ${tried.bound})`);
      await sleep(delay);
    }
  }

  private once(method: string, path: string, body: unknown, timeoutMs: number, ifAbsent = false): Promise<HttpResponse> {
    this.requests++;
    if (method !== "GET") this.writes++;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    // Each GET's URL is its own (FRESH_PARAM); messages name the path without it (where).
    const fresh = method === "GET" ? `${path.includes("?") ? "&" : "?"}${FRESH_PARAM}=${this.freshBase}.${this.requests.toString(36)}` : "";
    const url = new URL(this.base.pathname.replace(/\/$/, "") + path + fresh, this.base);
    const lib = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      /** The status of an answer that has begun: a time-out then cut an answer off, not waited for one. */
      let answered: number | undefined;
      const req = lib.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            authorization: this.auth,
            accept: "application/json",
            // A cache that follows the request's word fetches the answer anew (RFC 9111 5.2.1.4).
            ...(method === "GET" ? { "cache-control": "no-cache", pragma: "no-cache" } : {}),
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
            ...(ifAbsent ? { "if-none-match": "*" } : {}),
          },
        },
        (res) => {
          answered = res.statusCode;
          // Decoded as it arrives (a character split between chunks included): before it is
          // parsed, an answer is held twice at most (its pieces, and the flat string JSON.parse
          // makes of them), not three times (the chunks, their concatenation, the string). At
          // 150,000 objects an answer is tens of megabytes.
          res.setEncoding("utf8");
          let text = "";
          res.on("data", (c: string) => (text += c));
          // An answer cut off after it began (aborted) says which status had begun.
          res.on("error", (e) => reject(Object.assign(e, { answered })));
          res.on("end", () => {
            let parsed: unknown = undefined;
            if (text) {
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = text;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, text, contentType: res.headers["content-type"], location: res.headers.location, age: res.headers.age });
          });
        },
      );
      // The socket's idle timeout would let a server that trickles bytes hold a request forever;
      // this bounds the whole request, from when it has a connection: apply's read back may queue
      // thousands of GETs behind the agent's eight sockets, and their wait is not the broker's.
      let timer: NodeJS.Timeout | undefined;
      let saying: NodeJS.Timeout | undefined;
      req.on("socket", () => {
        timer ??= setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: "ETIMEDOUT", answered })), timeoutMs);
        const every = this.stillWaitingMs();
        if (this.opts.log && saying === undefined && timeoutMs > every) {
          const since = Date.now();
          saying = setInterval(() => {
            const waited = Math.round((Date.now() - since) / 1000);
            // A large listing streams for seconds: one whose answer has begun is said to be arriving, not unanswered.
            const state = answered === undefined ? `no answer yet after ${waited} s` : `${answered}, and the answer is still arriving after ${waited} s`;
            this.say("waiting", redactText(`cluster ${this.cluster}: ${this.where(method, path)} -> ${state}; waiting up to ${timeoutMs / 1000} s${answered === undefined ? " (is the broker paused or overloaded?)" : ""}`));
          }, every);
          saying.unref();
        }
      });
      req.on("close", () => {
        clearTimeout(timer);
        clearInterval(saying);
      });
      req.on("error", reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  private stillWaitingMs(): number {
    return this.opts.stillWaitingMs ?? STILL_WAITING_MS;
  }

  /**
   * A line for the log, at most one of each kind per stillWaitingMs: the reads run eight requests at once, and
   * a paused broker made each of them say it waits and tries again, eight lines at a time.
   */
  private say(kind: "waiting" | "again", line: string): void {
    const now = Date.now();
    if (now - (this.saidAt[kind] ?? -Infinity) < this.stillWaitingMs() * 0.9) return;
    this.saidAt[kind] = now;
    this.opts.log?.(line);
  }

  private where(method: string, path: string): string {
    return `${method} ${this.endpoint.display}${decodeURIComponent(path.split("?")[0] ?? path)}`;
  }

  /**
   * The user's tags, when the broker refused a request for a tag it lacks ("Not administrator
   * user"): the hint's set_user_tags must keep them, since it replaces them all. /api/whoami
   * answers every user of the management API; undefined when it does not.
   */
  private async tagsIfRefused(r: HttpResponse): Promise<string[] | undefined> {
    const reason = (r.body as { reason?: unknown } | undefined)?.reason;
    if (r.status !== 401 || typeof reason !== "string" || !/^Not (\w+) user/i.test(reason) || /^Not management user/i.test(reason)) return undefined;
    try {
      const me = await this.once("GET", "/api/whoami", undefined, DEFAULT_REQUEST_TIMEOUT_MS);
      const tags = (me.body as { tags?: unknown } | undefined)?.tags;
      if (me.status !== 200) return undefined;
      return (Array.isArray(tags) ? tags.map(String) : typeof tags === "string" ? tags.split(",") : []).map((t) => t.trim()).filter(Boolean);
    } catch {
      return undefined;
    }
  }

  private statusError(method: string, path: string, r: HttpResponse, tags?: string[]): BrokerError {
    const b = r.body as { error?: string; reason?: unknown } | string | undefined;
    // A server that echoes the request (a proxy's or a debug endpoint's error page) would quote
    // the Authorization header: the credentials, base64-encoded, which no redactor knows.
    // Masked before it is cut short: a piece of an echo at the cut would otherwise be left whole.
    const reason = typeof b === "object" && b ? this.unechoed(`${b.error ?? ""}${b.reason ? `: ${typeof b.reason === "string" ? b.reason : JSON.stringify(b.reason)}` : ""}`) : this.unechoed(String(b ?? "")).slice(0, 300);
    const hints: string[] = [];
    // RabbitMQ refuses in JSON ({"error":"not_authorized",...}): a 401 page without it is a proxy's
    // (its own login in front of the API), and was said to be the broker refusing the file's
    // credentials, auth_failed, which sent the reader to rotate a password that was right.
    const refusal = r.status === 401 && rabbitRefusal(r.body) ? this.unauthorised(path, String((b as { reason?: unknown }).reason ?? ""), tags) : undefined;
    if (refusal) hints.push(...refusal.hints);
    if (r.status === 403) hints.push(`user "${this.endpoint.username}" lacks a tag or permission for this; plan needs the monitoring tag, apply needs the administrator tag (or policymaker with configure/write/read on the vhost)`);
    if (r.status === 404) hints.push(`the object or vhost does not exist; run topo plan to see what is there`);
    if (r.status === 400 && /inequivalent/.test(reason)) hints.push(`the object exists with other properties; topo plan shows it as a replace, and apply --allow-destructive carries it out`);
    // RabbitMQ's own 500 (an Erlang error or time-out inside the management plugin), or one in its
    // form from something in between: no hint said what to do.
    if (r.status === 500 && rabbitRefusal(r.body)) hints.push(`the management API failed on this request (an error inside the broker, or in a proxy in front of it): run topo again; if it keeps failing, the broker's log (or the proxy's) says why`);
    // A redirect is some other server's (RabbitMQ's API redirects nowhere): a login page, a moved
    // URL. Where it goes says which; its page says nothing more.
    const redirect = r.status >= 300 && r.status < 400;
    // 502, 503 and 504 are a gateway's words: the broker behind it did not answer.
    const gateway = TRANSIENT_STATUS.has(r.status);
    // 429 is a limit on requests (a proxy's, or a gateway's in front of the API): tried again with
    // backoff, as a gateway's 503 is; it failed at once, as broker_refused, with no word of what to do.
    const throttled = r.status === 429;
    if (throttled) hints.push(`the management API, or a proxy in front of it, limits how many requests it takes (429 Too Many Requests), and topo tried again with backoff: run topo again in a moment, or raise that limit for ${this.endpoint.username}`);
    // RabbitMQ refuses in JSON; an error without it comes from in between, or from RabbitMQ
    // asked a path topo did not send (a proxy that decodes %2F: 406 for a vhost "a/b").
    const foreign = !redirect && !gateway && !throttled && !rabbitRefusal(r.body);
    if (redirect || gateway || foreign) {
      hints.push(
        this.throughHint("a proxy or login page", gateway ? ", and the broker behind it did not answer: check that it runs, and try again" : foreign ? ", or changes the path it asks (one that decodes %2F in a vhost's name)" : ""),
      );
    }
    const said = redirect ? `: it redirects to ${r.location ?? "(no location)"}` : ` ${reason}`;
    return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> ${r.status}${said}`.trim()), {
      transient: gateway || throttled,
      status: r.status,
      hints,
      code: refusal?.code ?? (gateway || throttled || redirect || foreign ? "broker_unreachable" : undefined),
    });
  }

  /**
   * `text` without the credentials this client sends, as the Authorization header carries them (in
   * any form an echo may take) or as the password itself: masked here, before a page is cut short,
   * since the caller's redactor finds only a whole password.
   */
  /**
   * A secret this client sends other than its password (a user's password hash: salted, but
   * cheap to attack offline): masked wherever an answer echoes it, as a proxy's error page did.
   */
  sends(secret: string): void {
    this.own.add(secret);
  }

  unechoed(text: string): string {
    return maskEcho(this.own.text(text), this.auth.slice("Basic ".length));
  }

  /**
   * RabbitMQ answers 401 both to a wrong password and to a missing right; only the reason tells
   * them apart (3.10: "Login failed", "Not management user", "Not administrator user", "User not
   * authorised to access virtual host").
   */
  private unauthorised(path: string, reason: string, tags?: readonly string[]): { code: "auth_failed" | "permission_denied"; hints: string[] } {
    const user = this.endpoint.username;
    const tag = /^Not (\w+) user/i.exec(reason)?.[1]?.toLowerCase();
    if (tag === "management") {
      return {
        code: "permission_denied",
        hints: [
          `user "${user}" may not use the management API: it has no management tag. topo plan needs the monitoring tag; apply needs administrator to create vhosts, or policymaker to write policies: ${setUserTags(user, undefined, "monitoring")}`,
        ],
      };
    }
    if (tag) {
      return {
        code: "permission_denied",
        hints: [
          `user "${user}" lacks the ${tag} tag this request needs${tag === "administrator" && /\/api\/vhosts\//.test(path) ? " (only an administrator may create a vhost)" : ""}: ${setUserTags(user, tags, tag)}${tag === "administrator" && /\/api\/vhosts\//.test(path) ? `, or have an administrator create it: rabbitmqctl add_vhost ${shellWord(vhostOf(path) ?? "VHOST")} && rabbitmqctl set_permissions -p ${shellWord(vhostOf(path) ?? "VHOST")} ${shellWord(user)} '.*' '.*' '.*'` : ""}`,
        ],
      };
    }
    if (/virtual host|vhost/i.test(reason)) {
      const v = vhostOf(path) ?? "VHOST";
      return {
        code: "permission_denied",
        hints: [noRightsHint(user, v)],
      };
    }
    // A resource the user's permissions in the vhost refuse (3.10: "Access refused."): the
    // management API checks the management user's own permissions, not the AMQP user's. Its
    // credentials are right, and saying to check them sent the reader the wrong way.
    if (/^Access refused/i.test(reason) && vhostOf(path) !== undefined) {
      const v = vhostOf(path) as string;
      const d = decodeURIComponent;
      const b = /^\/api\/bindings\/[^/]+\/e\/([^/]+)\/(q|e)\/([^/]+)\//.exec(path);
      const needs = b ? `removing a binding needs write on its destination (${b[2] === "q" ? "queue" : "exchange"} ${d(b[3]!)}) and read on its source (exchange ${d(b[1]!)})` : "this request needs a permission they do not give";
      return {
        code: "permission_denied",
        hints: [
          `user "${user}"'s permissions in vhost ${v} refuse it: the management API checks the management user's own permissions there, not the AMQP user's, and ${needs}: ${permissionCommands(user, v)}`,
        ],
      };
    }
    return { code: "auth_failed", hints: [`the management API refused the credentials (user name or password) of "${user}"; check them in ${this.places.credentials}`] };
  }

  /** `tries`: the tries of this request so far, this one included (a time-out said after two waited twice as long). */
  private networkError(method: string, path: string, e: NodeJS.ErrnoException, timeoutMs: number, probe: boolean, tries = 1): BrokerError {
    const each = tries > 1 ? `, on each of ${tries} tries` : "";
    const code = e.code ?? "";
    const hints: string[] = [];
    const mgmtHint = `set ${this.places.management} to the management API, usually http://${this.base.hostname}:15672 (https on 15671); AMQP (5672) and Erlang distribution (25672) ports do not speak HTTP`;
    // An AMQP port answers an HTTP request with its protocol header, which Node cannot parse.
    if (code.startsWith("HPE_")) {
      return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> not a management API: the answer is not HTTP (${code})`), {
        status: code,
        hints: [mgmtHint],
        code: "broker_unreachable",
      });
    }
    // Erlang distribution (25672) takes the connection and drops it some seconds later. Later in a
    // run the same reset is more likely a restart: only the first request says "wrong port".
    // A server of another protocol may reset the connection on the request instead (an MQTT broker does).
    const begun = (e as { answered?: number }).answered;
    if (probe && code === "ECONNRESET") {
      const how = begun !== undefined ? `began an answer (HTTP ${begun}) and closed the connection before its end` : "accepted the connection and closed it without an HTTP answer";
      return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> the port ${how} (${e.message}); is this a management API?`), {
        status: code,
        transient: true,
        hints: [mgmtHint],
        code: "broker_unreachable",
      });
    }
    const answered = (e as { answered?: number }).answered;
    if (code === "ETIMEDOUT" && answered !== undefined) {
      return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> ${answered}, but the answer did not end within ${timeoutMs / 1000} s${each}`), {
        status: code,
        transient: true,
        hints: probe ? [mgmtHint] : [`the answer was still arriving after ${timeoutMs / 1000} s; is the broker overloaded, or is this not its management API? topo's reads of very large vhosts take a few seconds`],
        code: "broker_unreachable",
      });
    }
    // topo connects directly, whatever the environment's proxy variables say: where one is set,
    // a host only the proxy reaches fails as if the URL were wrong. Its value is not shown (a
    // proxy URL may hold a password).
    const proxy = /^(ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(code) ? proxyNotUsed(this.base.protocol) : undefined;
    if (code === "ETIMEDOUT") {
      // The probe's bound is short, and a management API under load can outlast it: both causes
      // are named, the wrong port first (a hint to change a right URL alone misled).
      return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> no answer within ${timeoutMs / 1000} s${each}${probe ? ": either this port accepts connections and never answers (not a management API), or the management API is too busy to answer its smallest request" : ""}`), {
        status: code,
        transient: true,
        hints: [
          ...(probe
            ? [mgmtHint, `if it is the management API, it is overloaded: run topo again once it answers (curl -u USER ${this.base.origin}/api/cluster-name shows how long it takes)`]
            : [`the broker did not answer within ${timeoutMs / 1000} s; is it overloaded? topo's reads of very large vhosts take a few seconds`]),
          ...(proxy ? [proxy] : []),
        ],
        code: "broker_unreachable",
      });
    }
    if (proxy) hints.push(proxy);
    if (code === "ECONNREFUSED") hints.push(`nothing answers at ${this.endpoint.display}; is the broker up and the management plugin enabled (rabbitmq-plugins enable rabbitmq_management)?`);
    const tls = tlsProblem({ host: this.places.managementHost, tls: this.places.tls }, e);
    if (tls) hints.push(tls.hint);
    if (code === "ENOTFOUND") hints.push(`the host name does not resolve; check ${this.places.managementHost}`);
    // Reset or closed after the request went out, every try: the broker restarted or is
    // overloaded, or something in between (a proxy, a load balancer) cut the answer short.
    const cut = code === "ECONNRESET" || code === "EPIPE" || /^(aborted|socket hang up)$/.test(e.message);
    if (cut) hints.push(`the connection was closed before the answer was complete, on every try: the broker restarted or is overloaded, or a proxy or load balancer between topo and ${this.places.management} cut it (an idle timeout or a size limit); run topo again, and if it keeps happening, check what sits in between`);
    // A failed TLS handshake is a wrong URL (or CA), as on the AMQP side, not a broker's refusal.
    const said = tls?.text ?? e.message;
    return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> ${code && !said.includes(code) ? `${code} ${said}` : said || code || "error"}`), {
      transient: TRANSIENT_CODES.has(code),
      status: code,
      hints,
      code: tls || cut ? "broker_unreachable" : undefined,
    });
  }
}

/** How an item of a listing is named in a message: by its name, or a binding's ends; nothing else. */
function itemName(x: unknown): string {
  if (typeof x !== "object" || x === null) return "";
  const o = x as Record<string, unknown>;
  const name = typeof o.name === "string" ? o.name : typeof o.source === "string" && typeof o.destination === "string" ? `${o.source} -> ${o.destination}` : undefined;
  return name === undefined ? "" : ` (${JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}...` : name)})`;
}

/** The vhost a per-vhost API path names: /api/queues/{vhost}/..., /api/vhosts/{vhost}. */
function vhostOf(path: string): string | undefined {
  const m = /^\/api\/(?:exchanges|queues|bindings|policies|operator-policies|permissions|vhosts|definitions)\/([^/?]+)/.exec(path);
  return m?.[1] === undefined ? undefined : decodeURIComponent(m[1]);
}

export function vh(vhost: string): string {
  return encodeURIComponent(vhost);
}

/**
 * Said where a proxy variable is set for the management URL's scheme (HTTP_PROXY for http,
 * HTTPS_PROXY for https, ALL_PROXY, in either case) and topo could not connect: topo does not use
 * it. Its value is never shown.
 */
function proxyNotUsed(protocol: string): string | undefined {
  const names = [protocol === "https:" ? "HTTPS_PROXY" : "HTTP_PROXY", "ALL_PROXY"].flatMap((n) => [n, n.toLowerCase()]);
  const set = names.filter((n) => (process.env[n] ?? "") !== "");
  if (!set.length) return undefined;
  return `${set.join(" and ")} ${set.length === 1 ? "is" : "are"} set, and topo does not use a proxy: it connects to the management API (and AMQP) directly, so run it where the broker is reachable without one`;
}
