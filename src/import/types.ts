// The data import works on: what it is given, what it returns, and what one step of inferTopology
// hands to the next. Every step is a pure function of these plain values.

import type { Action, ActualCluster, Args, Traffic, Queue, QueueType, Resource } from "../model.js";
import type { RawQueueSettings, RawService } from "../config/normalize.js";

/** One cluster as read: its name in the file to be written, its vhost, and its objects. */
export interface ImportSource {
  name: string;
  vhost: string;
  actual: ActualCluster;
}

/** The JSON-schema fragment of one x-argument (schema `definitions.arguments.properties.<name>`). */
export interface ArgumentSchema {
  type?: string;
  minimum?: number;
  maximum?: number;
  enum?: unknown[];
  pattern?: string;
  const?: unknown;
}

export interface InferOptions {
  prefix: string;
  /**
   * The schema's x-argument definitions, so values the file could not hold (a string
   * x-consumer-timeout, which RabbitMQ stores without checking) are reported, not written.
   * Without it only the argument names and queue types are checked (by config's argument rule).
   */
  argumentSchemas?: Record<string, ArgumentSchema>;
  /**
   * The schema's longest service name (`definitions.serviceName.maxLength`). RabbitMQ takes names
   * of up to 255 bytes, so a broker can hold a service of topo's namespace that no file can name:
   * it is left out, and plan's deletes of its objects are listed. Without it, any length is written.
   */
  serviceNameMaxLength?: number;
  /** The users topo connects as: their rights on the vhost come with its cluster, not the file's users. */
  ownUsers?: string[];
}

/** A change `topo plan` will show on the written file, and why the file cannot avoid it. */
export interface PlannedChange {
  action: Action;
  why: string;
}

export interface ClusterImport {
  name: string;
  vhost: string;
  version: string;
  /** Queues of the file on this cluster. */
  queues: number;
  changes: PlannedChange[];
  /**
   * What plan of the file reports degraded on this cluster (an operator policy that caps the
   * queues, a user's policy that shadows topo's): no change fixes it, and plan
   * --detailed-exitcode exits 2 while it lasts.
   */
  degraded: string[];
  /** Objects that touch topo's namespace but that topo never changes, so the file leaves them out. */
  kept: string[];
  /**
   * Exchanges and queues outside topo's namespace, left out of the file, and the users topo did
   * not mark (nor connects as) that have rights on the vhost: a file gives rights only to its own.
   */
  outside: { exchanges: string[]; queues: string[]; users: string[] };
}

/** The part of a topology file import writes besides `clusters` (which come from the user). */
export interface TopologyBody {
  prefix: string;
  defaults: Partial<Record<Traffic, RawQueueSettings>>;
  services: (string | RawService)[];
}

export interface Inference {
  body: TopologyBody;
  clusters: ClusterImport[];
  services: number;
  queues: number;
}

// ---------------------------------------------------------------------------------------------
// Between the steps

/** A queue of the namespace as found on one cluster. */
export interface Found {
  source: ImportSource;
  /** The source's place in the list given: ties go to the first. */
  order: number;
  service: string;
  kind: Traffic;
  queue: Queue;
}

/** What one queue of the file must be, as the file's settings say it. */
export interface Wanted {
  cluster: string;
  type: QueueType;
  durable: boolean;
  mirrored: boolean;
  arguments: Args;
}

/** A queue the file describes: as found, and as the file will say it. */
export interface Chosen extends Found {
  wanted: Wanted;
}

/** The cluster each kind's queues go to by default. */
export type KindClusters = Partial<Record<Traffic, string>>;

/** Why the file cannot avoid a change to one object on one cluster. */
export interface Reason {
  cluster: string;
  resource: Resource;
  text: string;
}

/**
 * Users' mirroring policies that the file's queues fall under, each with the queues it mirrors,
 * in the order first met.
 */
export interface UserMirrors {
  /** ha-mode all: the file marks these queues mirrored: true, which topo's own policy then does. */
  all: { cluster: string; kind: Traffic; policy: string; queues: string[] }[];
  /** Another ha-mode, which mirrored: true cannot mean: the file says false and the policy stays. */
  partial: { cluster: string; policy: string; queues: string[] }[];
}
