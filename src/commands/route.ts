import { loadConfig, type Env } from "../config/load.js";
import type { Redactor } from "../redact.js";
import { TopoError } from "../errors.js";
import type { DesiredCluster } from "../model.js";
import { readCluster } from "../broker/read.js";
import { matchingBindings, routeTask, type Route } from "../plan/route.js";
import { describe } from "../core/keys.js";
import { Ownership } from "../core/naming.js";
import { identify } from "./clusters.js";
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
  /** Bindings that take the task and are not topo's: plan lists them, and no action changes them. */
  unmanaged: { binding: string; queue: string }[];
}

export interface RouteReport {
  route: Route;
  endpoint: string;
  live?: LiveRoute;
}

/** Where a task lands according to the file and, with live, according to the broker. */
export async function route(opts: RouteOptions): Promise<RouteReport> {
  // A route needs no user's password, even --live (it reads the bindings as the management user).
  const { desired, unsetPasswords } = loadConfig(opts.file, opts.env, opts.redactor, { passwordsOptional: true });
  for (const w of unsetPasswords) opts.warn?.(w);
  const r = routeTask(desired, opts.task);
  if (!r.ok) throw new TopoError(r.why, r.hint ? [r.hint] : []);
  const home = desired.clusters.find((c) => c.target.name === r.route.cluster) as DesiredCluster;
  const report: RouteReport = { route: r.route, endpoint: home.target.amqp.display };
  if (!opts.live) return report;

  const client = managementClient(home, opts);
  try {
    const [actual] = await Promise.all([readCluster(client, home.target), identify(home, client, opts)]);
    const exchangeExists = actual.resources.some((x) => x.kind === "exchange" && x.name === r.route.exchange);
    const bindings = exchangeExists ? matchingBindings(actual.resources, r.route.exchange, r.route.routingKey) : [];
    const queues = [...new Set(bindings.map((b) => b.destination))].sort();
    const owner = Ownership.of(desired.prefix, actual.resources);
    const unmanaged = bindings
      .filter((b) => !owner.owns(b))
      .map((b) => ({ binding: describe(b), queue: b.destination }))
      .sort((a, b) => (a.binding < b.binding ? -1 : 1));
    report.live = { exchangeExists, queues, differs: queues.join("\n") !== r.route.queues.join("\n"), unmanaged };
  } finally {
    client.close();
  }
  const live = report.live;
  if (!live.exchangeExists || live.queues.length === 0) {
    const why = live.exchangeExists
      ? `no binding of exchange ${r.route.exchange} matches ${opts.task}`
      : `exchange ${r.route.exchange} does not exist (publishing to it closes the publisher's channel with 404 NOT_FOUND)`;
    throw new TopoError(`cluster ${r.route.cluster}: ${opts.task} is unroutable on the broker: ${why}; the broker would drop it (or return it to a mandatory publisher)`, [
      "topo plan shows what is missing; topo apply creates it",
    ]);
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
    lines.push(r.live.differs ? `  live:        the broker routes it to ${r.live.queues.join(", ")}, not as the file says (${liveWhy(r)})` : `  live:        the broker's bindings agree`);
  }
  return lines.join("\n");
}

/** Why the broker differs, in the words plan uses for the same bindings. */
function liveWhy(r: RouteReport): string {
  const live = r.live as LiveRoute;
  const extra = live.queues.filter((q) => !r.route.queues.includes(q));
  const unmanagedQueues = new Set(live.unmanaged.map((u) => u.queue));
  const drift = extra.some((q) => !unmanagedQueues.has(q)) || r.route.queues.some((q) => !live.queues.includes(q));
  const why: string[] = [];
  if (live.unmanaged.length) {
    const n = live.unmanaged.length;
    const them = n === 1 ? "it" : "them";
    why.push(`${live.unmanaged.map((u) => u.binding).join(", ")} ${n === 1 ? "is a binding" : "are bindings"} topo does not manage: topo plan lists ${them} and leaves ${them} alone`);
  }
  if (drift || why.length === 0) why.push("topo plan shows the drift");
  return why.join("; ");
}

/** The report for --json. */
export function routeJson(r: RouteReport): Record<string, unknown> {
  return { ...r.route, endpoint: r.endpoint, live: r.live ?? null };
}
