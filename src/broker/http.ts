// The management HTTP API client: keep-alive, bounded retries of transient failures, and errors
// that name the cluster, the request and the broker's reply (never a bare "fetch failed").

import http from "node:http";
import https from "node:https";
import { BrokerError } from "../errors.js";
import type { ManagementEndpoint, TlsOptions } from "../model.js";
import { redactText } from "../redact.js";
import { tlsOptions, tlsProblem } from "./tls.js";
import { backoff, sleep } from "./retry.js";

export interface HttpOptions {
  /** Attempts for transient failures (connection refused, reset, 502/503/504, timeouts). */
  attempts?: number;
  timeoutMs?: number;
  insecure?: boolean;
}

export interface HttpResponse {
  status: number;
  body: unknown;
  text: string;
}

const TRANSIENT_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ESOCKETTIMEDOUT", "UND_ERR_SOCKET"]);
const TRANSIENT_STATUS = new Set([502, 503, 504]);

export class ManagementClient {
  /** Requests sent, retries included, and how many of them were writes; the benchmark reports them. */
  requests = 0;
  writes = 0;
  private readonly agent: http.Agent;
  private readonly base: URL;
  private readonly auth: string;

  constructor(
    readonly cluster: string,
    private readonly endpoint: ManagementEndpoint,
    tls: TlsOptions,
    private readonly opts: HttpOptions = {},
  ) {
    this.base = new URL(endpoint.baseUrl);
    this.auth = `Basic ${Buffer.from(`${endpoint.username}:${endpoint.password}`).toString("base64")}`;
    const keepAlive = { keepAlive: true, maxSockets: 8 };
    this.agent =
      this.base.protocol === "https:"
        ? new https.Agent({ ...keepAlive, ...tlsOptions(tls, opts.insecure) })
        : new http.Agent(keepAlive);
  }

  close(): void {
    this.agent.destroy();
  }

  /** GET that turns 404 (or the other given statuses) into undefined: an answer, not an error. */
  async getOptional<T>(path: string, absent: number[] = [404]): Promise<T | undefined> {
    const r = await this.request("GET", path, undefined, absent);
    return absent.includes(r.status) ? undefined : (r.body as T);
  }

  async get<T>(path: string): Promise<T> {
    return (await this.request("GET", path)).body as T;
  }

  async put(path: string, body: unknown): Promise<void> {
    await this.request("PUT", path, body);
  }

  /** DELETE; 404 counts as done (rule: idempotent steps). */
  async delete(path: string): Promise<void> {
    await this.request("DELETE", path, undefined, [404]);
  }

  async request(method: string, path: string, body?: unknown, okStatus: number[] = []): Promise<HttpResponse> {
    const attempts = this.opts.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.once(method, path, body);
        if ((r.status >= 200 && r.status < 300) || okStatus.includes(r.status)) return r;
        const err = this.statusError(method, path, r);
        if (!err.transient || attempt >= attempts) throw err;
      } catch (e) {
        if (e instanceof BrokerError) {
          if (!e.transient || attempt >= attempts) throw e;
        } else {
          const err = this.networkError(method, path, e as NodeJS.ErrnoException);
          if (!err.transient || attempt >= attempts) throw err;
        }
      }
      await sleep(backoff(attempt));
    }
  }

  private once(method: string, path: string, body?: unknown): Promise<HttpResponse> {
    this.requests++;
    if (method !== "GET") this.writes++;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const url = new URL(this.base.pathname.replace(/\/$/, "") + path, this.base);
    const lib = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            authorization: this.auth,
            accept: "application/json",
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          },
          timeout: this.opts.timeoutMs ?? 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = undefined;
            if (text) {
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = text;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, text });
          });
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("request timed out"), { code: "ETIMEDOUT" })));
      req.on("error", reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  private where(method: string, path: string): string {
    return `${method} ${this.endpoint.display}${decodeURIComponent(path.split("?")[0] ?? path)}`;
  }

  private statusError(method: string, path: string, r: HttpResponse): BrokerError {
    const b = r.body as { error?: string; reason?: unknown } | string | undefined;
    const reason = typeof b === "object" && b ? `${b.error ?? ""}${b.reason ? `: ${typeof b.reason === "string" ? b.reason : JSON.stringify(b.reason)}` : ""}` : String(b ?? "").slice(0, 300);
    const hints: string[] = [];
    if (r.status === 401) hints.push(`the management API refused the credentials; check the user and password in clusters.${this.cluster} (url or management)`);
    if (r.status === 403) hints.push(`user "${this.endpoint.username}" lacks a tag or permission for this; plan needs the monitoring tag, apply needs the administrator tag (or policymaker with configure/write/read on the vhost)`);
    if (r.status === 404) hints.push(`the object or vhost does not exist; run topo plan to see what is there`);
    if (r.status === 400 && /inequivalent/.test(reason)) hints.push(`the object exists with other properties; topo plan shows it as a replace, and apply --allow-destructive carries it out`);
    return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> ${r.status} ${reason}`.trim()), {
      transient: TRANSIENT_STATUS.has(r.status),
      status: r.status,
      hints,
    });
  }

  private networkError(method: string, path: string, e: NodeJS.ErrnoException): BrokerError {
    const code = e.code ?? "";
    const hints: string[] = [];
    if (code === "ECONNREFUSED") hints.push(`nothing answers at ${this.endpoint.display}; is the broker up and the management plugin enabled (rabbitmq-plugins enable rabbitmq_management)?`);
    const tls = tlsProblem(this.cluster, e);
    if (tls) hints.push(tls.hint);
    if (code === "ENOTFOUND") hints.push(`the host name does not resolve; check clusters.${this.cluster}`);
    return new BrokerError(this.cluster, redactText(`${this.where(method, path)} -> ${code || "error"} ${tls?.text ?? e.message}`), {
      transient: TRANSIENT_CODES.has(code),
      status: code,
      hints,
    });
  }
}

export function vh(vhost: string): string {
  return encodeURIComponent(vhost);
}
