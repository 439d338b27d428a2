// Errors are classes; only cli.ts turns them into output and an exit code. Each carries a stable
// code, so a pipeline can tell a refused plan from a lock timeout from an unreachable broker
// without reading the words (`--json` prints {"error": {"code", "message", ...}}).

import { escapeUnsafe } from "./core/words.js";

/** The stable error codes; docs/errors.md lists what each means (a test keeps it equal). */
export type ErrorCode =
  | "usage"
  | "config_invalid"
  | "broker_unreachable"
  | "endpoint_mismatch"
  | "auth_failed"
  | "permission_denied"
  | "broker_refused"
  | "version_unsupported"
  | "user_conflict"
  | "refused_destructive"
  | "refused_data_loss"
  | "lock_timeout"
  | "apply_incomplete"
  | "stale_plan"
  | "interrupted"
  | "unroutable"
  | "messages_lost";

export const ERROR_CODES: Record<ErrorCode, string> = {
  usage: "the command line or its arguments are wrong (an unknown cluster, an option out of range)",
  config_invalid: "the topology file is wrong; every problem is listed with FILE:LINE:COL and nothing was sent to a broker",
  broker_unreachable: "a broker did not answer (connection refused, timed out, name not found, not AMQP / not a management API: a gateway's 502, 503 or 504, a redirect, or an answer that is not the management API's JSON, such as a proxy's or a login page's)",
  endpoint_mismatch: "a cluster's AMQP URL and management API reach different brokers, or two clusters are one vhost, or (with a `users:` section) two clusters are one broker under two management URLs",
  auth_failed: "a broker refused the user name or password",
  permission_denied: "the user lacks a tag or a permission the command needs",
  broker_refused:
    "the broker refused a request (the reply is in the message), or would refuse one part-way through apply (a vhost's max-queues, a node's memory or disk alarm blocking the messages a replace moves, or the node of a queue to replace or delete being down, checked before anything is written), or holds a queue of the apply lock's name that is not exclusive, which no apply holds and apply cannot take; when one of its limits refused it (a vhost's or a user's max-connections, max-channels or max-queues, or a node's), the hint names the limit, the command that shows it and the one that raises it",
  version_unsupported:
    "the file asks for something this broker cannot do: its RabbitMQ version lacks it, its settings deny it, or its vhost's default queue type would turn the file's classic queues into another type; each refusal is followed by every key of the file that asks for it, at FILE:LINE:COL",
  user_conflict: "a user the file names exists on the broker without topo's tag (topo.<prefix>): topo did not create it, or the tag was taken off it; nothing was changed, adopt: true takes it over",
  refused_destructive: "apply refused a replace or delete without --allow-destructive, or a delete that would take bindings topo does not manage with it, or a replace that cannot put such bindings back or re-create one exactly, or whose new exchange type routes one otherwise, without --allow-unmanaged-deletes; nothing was written",
  refused_data_loss: "apply refused a change that could lose messages without --allow-data-loss; nothing was written",
  lock_timeout: "another apply held the cluster's lock for longer than --lock-timeout, or other files' applies (other prefixes) kept changing the vhost while apply read it, at every one of its reads, or (with a `users:` section) another apply, of another prefix or vhost, may write a user this apply writes (its lock names the user), or the user changed since apply read it; nothing was written",
  apply_incomplete: "apply stopped part-way; the message says what was and was not done, and a re-run finishes it",
  stale_plan: "a saved plan no longer matches the broker (the message names, per cluster, the objects that changed and how, then the plan's differences), the topology file (or the values its `${VAR}`s take) or topo's version (topo apply PLANFILE); nothing was written",
  interrupted: "a command was stopped by Ctrl-C or SIGTERM (exit code 130; also while topo is still loading, when no command has begun; only a signal within Node's own start, the first tenth of a second or so, ends the process with 130 or 143 and no answer, as with any Node program): any but apply has written nothing; apply's message says how far each cluster got (one that came once every write was made says all were made and were not read back to confirm them; a second signal stops at once, and the message then says only that some changes may have been made, and a replace's batch under way may then be in both queues (docs/safety.md); during the step that puts back the bindings of an exchange being replaced, which only that apply knows, it waits for the step, saying so, and a third stops at once and names the bindings that may be lost), and a re-run finishes it",
  unroutable: "topo route: the task would reach no queue: the file gives it none, or (--live) the broker would drop it or refuse its publish; the message says why",
  messages_lost:
    "a queue replace finished, but fewer messages came back out of its holding queue than it had moved in: the broker dropped the others there (a policy or operator policy that came during the replace, a length limit or a TTL); the message says how many",
};

/** Where an error happened, when it was on one cluster: what --json reports as cluster and object. */
export interface ErrorPlace {
  cluster: string;
  /** The object or request the broker answered about, when there is one. */
  object?: string;
}

export class TopoError extends Error {
  readonly exitCode: number = 1;
  readonly code: ErrorCode;
  readonly place?: ErrorPlace;
  /** Lines of advice printed after the message. */
  readonly hints: string[];
  /** True when retrying later may help (connection refused, 503, a connection lost to a restart). */
  readonly transient: boolean;
  constructor(message: string, hints: string[] = [], transient = false, code: ErrorCode = "usage", place?: ErrorPlace) {
    super(message);
    this.name = new.target.name;
    this.hints = hints;
    this.transient = transient;
    this.code = code;
    this.place = place;
  }
}

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

/**
 * One line per problem: a line break or a terminal escape the file wrote (a name's value, quoted in
 * its problem) is shown escaped, so that it cannot forge a line ("esc.yaml is valid") or colour one.
 */
export function formatProblem(p: ConfigProblem): string {
  return escapeUnsafe(`${p.file}:${p.line}:${p.col}: ${p.message}`);
}

/**
 * Several failures at once (each error is one of `causes`): several clusters, or one cluster's
 * independent refusals. The message holds every one, the code is theirs when they agree, else the
 * first's; --json lists each under `errors`.
 */
export class ClustersError extends TopoError {
  readonly causes: readonly unknown[];
  constructor(message: string, hints: string[], transient: boolean, code: ErrorCode, causes: readonly unknown[], place?: ErrorPlace) {
    super(message, hints, transient, code, place);
    this.causes = causes;
  }
}

/** Said under an error that is not one of topo's own. */
export const BUG_HINT = "this looks like a bug in topo; please report it with the command you ran";

/**
 * One error for every failure given (none: undefined): the one itself, or a ClustersError of them
 * all, whose code is theirs when they agree, else the first's, retryable only if every one is.
 * A ClustersError among them gives its own causes: the list stays flat.
 */
export function allOf(failures: readonly unknown[]): unknown {
  const flat = [...new Set(failures.flatMap((f) => (f instanceof ClustersError ? f.causes : [f])))];
  if (flat.length <= 1) return flat[0];
  const errs = flat.map((f) => (f instanceof Error ? f : new Error(String(f))));
  const ours = errs.filter((e): e is TopoError => e instanceof TopoError);
  // None of ours: each a bug, and together one too (reported as internal, with the bug hint), not
  // a mistake of the command line's.
  if (!ours.length) return new Error(errs.map((e) => e.message).join("\n"));
  const code = (ours[0] as TopoError).code;
  const transient = ours.length === errs.length && ours.every((e) => e.transient);
  // One cluster's refusals keep its name where --json reports it.
  const clusters = new Set(ours.map((e) => e.place?.cluster));
  const place = ours.length === errs.length && clusters.size === 1 && ours[0]?.place ? { cluster: ours[0].place.cluster } : undefined;
  const hints = [...new Set(ours.flatMap((e) => e.hints)), ...(ours.length < errs.length ? [BUG_HINT] : [])];
  return new ClustersError(errs.map((e) => e.message).join("\n"), hints, transient, code, flat, place);
}

/** The file is wrong. Carries every problem found, each with its place. */
export class ConfigError extends TopoError {
  readonly problems: ConfigProblem[];
  /** What the file would be warned of once it is valid (a broad tag beside a missing service): said with its problems, not one run later. */
  readonly warnings: ConfigProblem[];
  constructor(problems: ConfigProblem[], warnings: ConfigProblem[] = []) {
    super(problems.map(formatProblem).join("\n"), [], false, "config_invalid");
    this.problems = problems;
    this.warnings = warnings;
  }
}

const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ESOCKETTIMEDOUT", "UND_ERR_SOCKET"]);

/** The code a broker's answer means, when the caller does not know better. */
function brokerCode(status: number | string | undefined, transient: boolean): ErrorCode {
  if (status === 401) return "auth_failed";
  if (status === 403) return "permission_denied";
  if (typeof status === "string" && UNREACHABLE.has(status)) return "broker_unreachable";
  if (transient && status === undefined) return "broker_unreachable";
  return "broker_refused";
}

/** The broker refused or could not be reached. The message names cluster, object and reply. */
export class BrokerError extends TopoError {
  declare readonly place: ErrorPlace;
  readonly status?: number | string;
  /** The keys of the file that ask for what the broker refuses, each with its place (FILE:LINE:COL). */
  readonly problems?: ConfigProblem[];
  constructor(
    cluster: string,
    message: string,
    opts: { transient?: boolean; status?: number | string; hints?: string[]; code?: ErrorCode; object?: string; problems?: ConfigProblem[] } = {},
  ) {
    super(`cluster ${cluster}: ${message}`, opts.hints ?? [], opts.transient ?? false, opts.code ?? brokerCode(opts.status, opts.transient ?? false), { cluster, object: opts.object });
    this.status = opts.status;
    if (opts.problems?.length) this.problems = opts.problems;
  }

  get cluster(): string {
    return this.place.cluster;
  }

  /** The object or request the broker answered about, when there is one. */
  get object(): string | undefined {
    return this.place.object;
  }
}

/** The plan holds actions the user has not allowed (destructive, or losing messages). */
export class UnsafePlanError extends TopoError {
  constructor(message: string, hints: string[], code: "refused_destructive" | "refused_data_loss" = "refused_destructive") {
    super(message, hints, false, code);
  }
}

/** A saved plan is not what apply would do now: the broker, the file or topo changed since it was made. */
export class StalePlanError extends TopoError {
  constructor(message: string, hints: string[] = ["run topo plan -o FILE again, review it, and apply that"]) {
    super(message, hints, false, "stale_plan");
  }
}

/** Apply could not take the cluster's lock in time. */
export class LockError extends TopoError {
  constructor(message: string, hints: string[] = [], place?: ErrorPlace) {
    super(message, hints, false, "lock_timeout", place);
  }
}

/** Apply stopped part way; the message says what was done and what was not. */
export class ApplyError extends TopoError {
  /** `code`: when nothing was done, the cause's own code (a missing right) says more. */
  constructor(message: string, hints: string[] = [], transient = false, code: ErrorCode = "apply_incomplete", place?: ErrorPlace) {
    super(message, hints, transient, code, place);
  }
}

/** Ctrl-C or SIGTERM stopped an apply; exit 130, as a shell reports a SIGINT. */
export class InterruptedError extends TopoError {
  override readonly exitCode: number = 130;
  constructor(message: string) {
    super(message, [], false, "interrupted");
  }
}

/** What `--json` prints for an error: stable fields a pipeline can branch on. */
export interface ErrorJson {
  error: { code: ErrorCode | "internal"; message: string; cluster?: string; object?: string; hints?: string[]; problems?: ConfigProblem[]; warnings?: ConfigProblem[]; errors?: ErrorJson["error"][] };
}

export function errorJson(e: unknown, redact: (s: string) => string): ErrorJson {
  if (!(e instanceof TopoError)) return { error: { code: "internal", message: redact(e instanceof Error ? e.message : String(e)) } };
  return {
    error: {
      code: e.code,
      message: redact(e.message),
      ...(e instanceof ConfigError || (e instanceof BrokerError && e.problems) ? { problems: (e.problems ?? []).map((p) => ({ ...p, message: redact(p.message) })) } : {}),
      ...(e instanceof ConfigError && e.warnings.length ? { warnings: e.warnings.map((p) => ({ ...p, message: redact(p.message) })) } : {}),
      ...(e.place ? { cluster: e.place.cluster, ...(e.place.object ? { object: redact(e.place.object) } : {}) } : {}),
      ...(e.hints.length ? { hints: e.hints.map(redact) } : {}),
      ...(e instanceof ClustersError ? { errors: e.causes.map((c) => errorJson(c, redact).error) } : {}),
    },
  };
}
