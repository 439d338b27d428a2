import { loadConfig, refuseUnsetUrls, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";
import { TopoError } from "../errors.js";
import type { DesiredCluster, Exchange } from "../model.js";
import { readCluster } from "../broker/read.js";
import { deliver, isTopoBinding, routeTask, type Route } from "../plan/route.js";
import { describe } from "../core/keys.js";
import { plural, shownName } from "../core/words.js";
import { Ownership } from "../core/naming.js";
import { identifyBeside } from "./clusters.js";
import { managementClient, type ConnectionOptions } from "./source.js";

export interface RouteOptions extends ConnectionOptions {
  file: string;
  task: string;
  /** Also check against the broker's actual bindings. */
  live?: boolean;
  env?: Env;
  /** Learns the file's passwords, to mask them in what the caller prints. */
  redactor?: Redactor;
  /** Told of each user's password variable that is not set (a route needs none). */
  warn?: (msg: string) => void;
}

export interface LiveRoute {
  exchangeExists: boolean;
  queues: string[];
  /** The broker routes the task to other queues than the file says. */
  differs: boolean;
  /**
   * Bindings the task crosses that are not topo's (to a queue, or to another exchange, and on from
   * there): plan lists those from a service exchange, and no action changes them.
   */
  unmanaged: { binding: string; queue?: string; exchange?: string; listedByPlan: boolean }[];
  /** Alternate exchanges the broker passes the task to, because an exchange had no binding that took it. */
  alternates: { from: string; to: string; by: string }[];
  /** What topo cannot tell about the broker's routing (an exchange that routes by message headers). */
  unknown: string[];
  /** Every binding the task matches on its way, topo's or not, in the order the broker follows them. */
  matched: string[];
  /** The service exchange's type on the broker, when it is not the topic exchange the file makes. */
  exchangeType?: string;
  /** Queues the task is routed to that cannot take it: RabbitMQ lists them crashed, stopped or down. */
  unavailable: { queue: string; state: string }[];
}

/** Queue states in which RabbitMQ lists a queue it cannot run (plan reports them as degraded). */
const UNAVAILABLE = new Set(["crashed", "stopped", "down"]);

export interface RouteReport {
  route: Route;
  endpoint: string;
  live?: LiveRoute;
}

/** Where a task lands according to the file and, with live, according to the broker. */
export async function route(opts: RouteOptions): Promise<RouteReport> {
  // A route needs no user's password, even --live (it reads the bindings as the management user).
  const { desired, unsetPasswords, unsetUrls, warnings } = loadConfig(opts.file, opts.env, opts.redactor, { passwordsOptional: true });
  for (const w of [...unsetPasswords, ...warnings]) opts.warn?.(w);
  const r = routeTask(desired, opts.task);
  if (!r.ok) throw new TopoError(r.why, r.hint ? [r.hint] : [], false, r.unroutable ? "unroutable" : "usage");
  const home = desired.clusters.find((c) => c.target.name === r.route.cluster) as DesiredCluster;
  const report: RouteReport = { route: r.route, endpoint: home.target.amqp.display };
  if (!opts.live) return report;
  refuseUnsetUrls(unsetUrls, opts.file, "topo route --live", [home.target.name]);

  const client = managementClient(home, opts);
  let internal = false;
  let vhostExists = true;
  try {
    const [, actual] = await identifyBeside(home, client, opts, readCluster(client, home.target));
    const service = actual.resources.find((x): x is Exchange => x.kind === "exchange" && x.name === r.route.exchange);
    const exchangeExists = service !== undefined;
    const d = exchangeExists ? deliver(actual.resources, r.route.exchange, r.route.routingKey) : { queues: [], bindings: [], alternates: [], unknown: [] };
    const owner = Ownership.of(desired.prefix, actual.resources);
    const unmanaged = d.bindings
      .filter((b) => !isTopoBinding(b, owner))
      .map((b) => ({ binding: describe(b), ...(b.destinationType === "queue" ? { queue: b.destination } : { exchange: b.destination }), listedByPlan: owner.isService(b.source) }))
      .sort((a, b) => (a.binding < b.binding ? -1 : 1));
    const unavailable = d.queues.flatMap((q) => {
      const state = actual.queueFacts[q]?.state;
      return state !== undefined && UNAVAILABLE.has(state) ? [{ queue: q, state }] : [];
    });
    report.live = {
      exchangeExists,
      queues: d.queues,
      differs: d.queues.join("\n") !== r.route.queues.join("\n") || d.unknown.length > 0 || (service !== undefined && service.type !== "topic") || unavailable.length > 0,
      unavailable,
      unmanaged,
      alternates: d.alternates,
      unknown: d.unknown,
      matched: d.bindings.map(describe),
      ...(service && service.type !== "topic" ? { exchangeType: service.type } : {}),
    };
    if (service?.internal) internal = true;
    vhostExists = actual.vhostExists;
  } finally {
    client.close();
  }
  const live = report.live;
  const place = { cluster: r.route.cluster, object: `exchange ${r.route.exchange}` };
  const unroutable = (why: string) =>
    new TopoError(`cluster ${r.route.cluster}: ${opts.task} is unroutable on the broker: ${why}; the broker would drop it (or return it to a mandatory publisher)`, [
      "topo plan shows what is missing; topo apply creates it",
    ], false, "unroutable", place);
  if (!live.exchangeExists) {
    throw unroutable(
      vhostExists
        ? `exchange ${r.route.exchange} does not exist (publishing to it closes the publisher's channel with 404 NOT_FOUND)`
        : `exchange ${r.route.exchange} does not exist, nor does vhost ${r.route.vhost} (the broker refuses a publisher's connection to it with 530 NOT_ALLOWED)`,
    );
  }
  if (internal) {
    throw new TopoError(`cluster ${r.route.cluster}: ${opts.task} cannot be published: exchange ${r.route.exchange} is internal on the broker, and publishing to it closes the publisher's channel with 403 ACCESS_REFUSED`, [
      "topo plan shows the replace that makes it a plain exchange; topo apply --allow-destructive makes it",
    ], false, "unroutable", place);
  }
  if (live.queues.length === 0 && live.unknown.length === 0) {
    // Bindings that match and lead only to exchanges that route it nowhere: the broker then
    // passes it to no alternate exchange of the service's (a binding matched), and drops it.
    const one = live.matched.length === 1;
    const tried = live.matched.length
      ? [`${plural(live.matched.length, "binding")} on its way ${one ? "matches" : "match"} ${opts.task} (${live.matched.join(", ")}), but ${one ? "it leads" : "they lead"} to no queue: the exchanges ${one ? "it reaches route" : "they reach route"} it nowhere`]
      : [
          `no binding of exchange ${r.route.exchange} matches ${opts.task}${live.exchangeType ? ` (${typeWhy(r.route.exchange, live.exchangeType)})` : ""}`,
          ...live.alternates.map((a) => `nor does any of alternate exchange ${shownName(a.to)}`),
        ];
    throw unroutable(tried.join(", "));
  }
  if (live.queues.length > 0 && live.unknown.length === 0 && live.unavailable.length === live.queues.length) {
    throw new TopoError(
      `cluster ${r.route.cluster}: ${opts.task} is routed only to ${live.unavailable.map((u) => `queue ${shownName(u.queue)}, which RabbitMQ lists as ${u.state}`).join(", and ")}: no queue takes it (a crashed queue's publishes are nacked)`,
      ["topo plan shows it as degraded, with what starts the queue again"],
      false,
      "unroutable",
      place,
    );
  }
  if (live.queues.length === 0) {
    throw new TopoError(`cluster ${r.route.cluster}: ${opts.task} reaches no queue that topo can see on the broker, and whether it reaches any depends on what topo cannot tell: ${live.unknown.join("; ")}`, [
      "topo plan shows what is missing from the file's topology; topo apply creates it",
    ], false, "unroutable", place);
  }
  return report;
}

/** The report as people read it. */
export function routeText(r: RouteReport): string {
  const lines = [
    `${r.route.task}`,
    `  cluster:     ${r.route.cluster} (${r.endpoint})`,
    `  exchange:    ${r.route.exchange} (topic)`,
    `  routing key: ${r.route.routingKey}`,
    `  queues:      ${r.route.queues.join(", ")}`,
  ];
  if (r.live) {
    const l = r.live;
    // The broker's names: quoted where one could pass for two, or for topo's own (shownName).
    const to = l.queues.length ? l.queues.map(shownName).join(", ") : "no queue topo can see";
    lines.push(l.differs ? `  live:        the broker routes it to ${to}, not as the file says (${liveWhy(r)})` : `  live:        the broker's bindings agree`);
  }
  return lines.join("\n");
}

/** Why the broker differs, in the words plan uses for the same bindings. */
function liveWhy(r: RouteReport): string {
  const live = r.live as LiveRoute;
  const extra = live.queues.filter((q) => !r.route.queues.includes(q));
  // A queue reached through a binding that is not topo's (directly, or through exchanges that are
  // not topo's) is not drift; any other difference is.
  const unmanagedQueues = new Set(live.unmanaged.flatMap((u) => (u.queue === undefined ? [] : [u.queue])));
  const drift = extra.some((q) => !unmanagedQueues.has(q)) || r.route.queues.some((q) => !live.queues.includes(q));
  const why: string[] = [];
  const listed = live.unmanaged.filter((u) => u.listedByPlan);
  if (listed.length) {
    const n = listed.length;
    const them = n === 1 ? "it" : "them";
    why.push(`${listed.map((u) => u.binding).join(", ")} ${n === 1 ? "is a binding" : "are bindings"} topo does not manage: topo plan lists ${them} and leaves ${them} alone`);
  }
  // Bindings from exchanges that are not services: outside topo's namespace, plan does not list them.
  const beyond = live.unmanaged.filter((u) => !u.listedByPlan);
  if (beyond.length) {
    const n = beyond.length;
    why.push(`it goes on through ${beyond.map((u) => u.binding).join(", ")}, ${n === 1 ? "a binding" : "bindings"} outside topo's namespace that topo neither lists nor changes`);
  }
  if (live.exchangeType) why.push(typeWhy(r.route.exchange, live.exchangeType));
  for (const u of live.unavailable) why.push(`queue ${u.queue} is listed as ${u.state} and cannot take it; topo plan shows it as degraded`);
  for (const a of live.alternates) why.push(`no binding of exchange ${a.from} takes it, so the broker passes it to alternate exchange ${a.to} of exchange ${a.from} (${a.by})`);
  why.push(...live.unknown.map((u) => `topo cannot tell all of it: ${u}`));
  if (drift || why.length === 0) why.push("topo plan shows the drift");
  return why.join("; ");
}

/** A service exchange of another type routes by that type's rule, not by topic matching. */
function typeWhy(exchange: string, type: string): string {
  return `exchange ${exchange} is a ${type} exchange on the broker, not the topic exchange the file makes, and routes by the ${type} rule; topo plan shows the replace`;
}

/** The report for --json. */
export function routeJson(r: RouteReport): Record<string, unknown> {
  return { ...r.route, endpoint: r.endpoint, live: r.live ?? null };
}
