// Pure: the file's `services` list, each service in the fewest settings that, over the chosen
// defaults, make its queues what the broker holds. Then read back the way topo will read the file
// (normalize): a service that does not come out as the broker has it is spelled out in full.

import { TRAFFIC, type Args, type DesiredState, type Traffic, type Queue } from "../model.js";
import { normalize, type NormalizeResult, type RawQueueSettings, type RawService } from "../config/normalize.js";
import { stableJson } from "../core/keys.js";
import { names } from "../core/words.js";
import type { Wanted } from "./types.js";

/** A queue of the file: its service, its kind, and what it must be. Its name is `<service>.<kind>`. */
export interface QueueToSpell {
  service: string;
  kind: Traffic;
  wanted: Wanted;
}

export interface SpelledServices {
  /** In service-name order: a plain name where the defaults say it all. */
  services: (string | RawService)[];
  /** What topo reads from the file: the same objects as `queues`, exactly. */
  desired: DesiredState;
}

/** What a queue of `kind` is when its service says nothing: the defaults over the built-in ones. */
export function settingsUnder(defaults: Partial<Record<Traffic, RawQueueSettings>>, kind: Traffic): Wanted {
  const d = defaults[kind] as RawQueueSettings;
  const type = d.type ?? "classic";
  return {
    cluster: d.cluster as string,
    type,
    durable: type === "classic" ? (d.durable as boolean) : true,
    mirrored: type === "classic" ? (d.mirrored as boolean) : false,
    arguments: d.arguments ?? {},
  };
}

/** The fewest settings that turn `under` (the kind's defaults) into `w`. */
export function fewestSettings(under: Wanted, w: Wanted): RawQueueSettings {
  const o: RawQueueSettings = {};
  if (w.cluster !== under.cluster) o.cluster = w.cluster;
  if (w.type !== under.type) {
    o.type = w.type;
    // Which durable/mirrored a type change inherits depends on the layers; say them outright.
    if (w.type === "classic") Object.assign(o, { durable: w.durable, mirrored: w.mirrored });
  } else if (w.type === "classic") {
    if (w.durable !== under.durable) o.durable = w.durable;
    if (w.mirrored !== under.mirrored) o.mirrored = w.mirrored;
  }
  const args: Args = {};
  for (const [k, v] of Object.entries(w.arguments)) if (stableJson(v) !== stableJson(under.arguments[k])) args[k] = v;
  if (Object.keys(args).length) o.arguments = args;
  return o;
}

/** Every setting written out: what a service falls back to if the short form does not come out right. */
export function allSettings(w: Wanted): RawQueueSettings {
  return {
    cluster: w.cluster,
    type: w.type,
    ...(w.type === "classic" ? { durable: w.durable, mirrored: w.mirrored } : {}),
    ...(Object.keys(w.arguments).length ? { arguments: w.arguments } : {}),
  };
}

/** One entry of `services`: `false` for a kind it lacks, and its plain name when nothing else is said. */
function serviceEntry(service: string, byKind: Partial<Record<Traffic, Wanted>>, settings: (kind: Traffic, w: Wanted) => RawQueueSettings): string | RawService {
  const e: RawService = { name: service };
  let plain = true;
  for (const kind of TRAFFIC) {
    const w = byKind[kind];
    if (!w) {
      e[kind] = false;
      plain = false;
      continue;
    }
    const o = settings(kind, w);
    if (Object.keys(o).length) {
      e[kind] = o;
      plain = false;
    }
  }
  return plain ? service : e;
}

/**
 * The services whose queues topo reads back otherwise than `queues` says (by their place in
 * `services`). A problem outside `services` is the defaults', which no service can mend: thrown.
 */
function misread(read: NormalizeResult, services: string[], queues: QueueToSpell[]): Set<string> {
  const wrong = new Set<string>();
  for (const p of read.problems) {
    const i = p.path[0] === "services" && typeof p.path[1] === "number" ? p.path[1] : -1;
    if (i < 0) throw new Error(`import produced defaults topo refuses: ${p.path.join(".")}: ${p.message}`);
    wrong.add(services[i] as string);
  }
  const specs = new Map(read.desired.clusters.flatMap((dc) => dc.queues.map((q) => [`${q.cluster}|${q.queue.name}`, q])));
  for (const c of queues) {
    const name = `${c.service}.${c.kind}`;
    const spec = specs.get(`${c.wanted.cluster}|${name}`);
    const want: Queue = { kind: "queue", name, type: c.wanted.type, durable: c.wanted.durable, autoDelete: false, exclusive: false, arguments: c.wanted.arguments };
    if (!spec || stableJson(spec.queue as never) !== stableJson(want as never) || spec.mirrored !== c.wanted.mirrored) wrong.add(c.service);
  }
  return wrong;
}

/**
 * The fewest per-service settings over `defaults` that topo reads back as exactly `queues`, with
 * what it reads. `clusters` are the file's clusters and their vhosts. Throws when even services
 * spelled out in full do not come out right (the defaults hold something a service cannot undo).
 */
export function spellServices(
  queues: QueueToSpell[],
  defaults: Partial<Record<Traffic, RawQueueSettings>>,
  clusters: { name: string; vhost: string }[],
  prefix: string,
): SpelledServices {
  const placeholders = Object.fromEntries(
    // normalize needs a URL per cluster; the vhost must be the real one so that a diff against
    // what was read compares like with like. The host is never contacted.
    clusters.map((s, i) => [s.name, { url: `amqp://import-${i}.invalid/${encodeURIComponent(s.vhost)}` }]),
  );
  const services = [...new Set(queues.map((c) => c.service))].sort();
  const byService = new Map<string, Partial<Record<Traffic, Wanted>>>();
  for (const c of queues) byService.set(c.service, { ...byService.get(c.service), [c.kind]: c.wanted });
  const short = (kind: Traffic, w: Wanted) => fewestSettings(settingsUnder(defaults, kind), w);

  const spelled = new Set<string>();
  for (let attempt = 0; attempt < 2; attempt++) {
    const entries = services.map((s) => serviceEntry(s, byService.get(s) ?? {}, spelled.has(s) ? (_kind, w) => allSettings(w) : short));
    const read = normalize({ version: 1, prefix, clusters: placeholders, defaults, services: entries });
    const wrong = misread(read, services, queues);
    if (wrong.size === 0 && read.desired.clusters.reduce((n, dc) => n + dc.queues.length, 0) === queues.length) {
      return { services: entries, desired: read.desired };
    }
    for (const s of wrong) spelled.add(s);
  }
  throw new Error(`import could not describe services ${names([...spelled])} so that topo reads them back as they are`);
}
