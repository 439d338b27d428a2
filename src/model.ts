// The core types. Everything the pure core (normalize, diff, render) works on is defined here,
// as plain data: no classes, no IO.

/**
 * A queue's traffic class: sync (the caller waits for the answer) or async (fire and forget). Not
 * to be confused with a resource's `kind` (vhost, exchange, queue, binding, policy).
 */
export type Traffic = "sync" | "async";
export const TRAFFIC: readonly Traffic[] = ["sync", "async"];

export type QueueType = "classic" | "quorum" | "stream";

/**
 * Channels apply writes over in parallel, per cluster (apply --parallelism): enough to keep a
 * 2-core broker busy. One more may open beside them, for a write done again on its own.
 */
export const DEFAULT_CHANNELS = 64;

/** Argument values keep their YAML/JSON types: a number stays a number on the wire. */
export type ArgValue = string | number | boolean | null | ArgValue[] | { [k: string]: ArgValue };
export type Args = Record<string, ArgValue>;

export interface Vhost {
  kind: "vhost";
  name: string;
}

export interface Exchange {
  kind: "exchange";
  name: string;
  type: string;
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: Args;
}

export interface Queue {
  kind: "queue";
  name: string;
  type: QueueType;
  durable: boolean;
  autoDelete: boolean;
  exclusive: boolean;
  /** x-arguments without x-queue-type (that one is `type`), keys sorted. */
  arguments: Args;
}

export interface Binding {
  kind: "binding";
  source: string;
  destination: string;
  destinationType: "queue" | "exchange";
  routingKey: string;
  /** As the management API shows them: without their AMQP types (see `exact`). */
  arguments: Args;
  /**
   * The broker's name of a binding read with arguments (its `properties_key`): routing key and a
   * hash of the arguments with their AMQP types, so it tells apart bindings whose arguments JSON
   * shows alike (`long 1` and `byte 1`), which RabbitMQ holds as distinct bindings.
   */
  propertiesKey?: string;
  /**
   * Of a binding read with arguments: those arguments with the AMQP types and order the broker
   * holds them in, found by their hash (broker/exact-args.ts). What re-creates the binding exactly.
   */
  exact?: TypedField[];
  /** Of a binding read with arguments: why topo cannot re-create it exactly (`exact` is then absent). */
  inexact?: string;
  /**
   * Of a binding read beside another that JSON shows alike (the same ends, routing key and
   * arguments as JSON shows them: `byte 1` and `long 1`, or a table's keys in another order), which
   * RabbitMQ holds as two: its properties_key, which keeps the two apart in topo too (core/keys.ts
   * keyOf). Absent on the one of them with the lowest properties_key, which the file's binding
   * matches.
   */
  twin?: string;
}

/** An AMQP field-table integer type, as RabbitMQ names it. */
export type IntegerType = "byte" | "unsignedbyte" | "short" | "unsignedshort" | "signedint" | "unsignedint" | "long" | "timestamp";

/** A field-table value with its AMQP type: what the management API's JSON does not show. */
export type TypedValue =
  | { type: "longstr"; value: string }
  | { type: "binary"; base64: string }
  | { type: "bool"; value: boolean }
  | { type: "void" }
  | { type: IntegerType | "float" | "double"; value: number }
  | { type: "table"; fields: TypedField[] }
  | { type: "array"; items: TypedValue[] };

export interface TypedField {
  key: string;
  value: TypedValue;
}

export interface Policy {
  kind: "policy";
  name: string;
  pattern: string;
  applyTo: "queues" | "exchanges" | "all" | "classic_queues" | "quorum_queues" | "streams";
  priority: number;
  definition: Args;
}

/**
 * A broker user topo manages. Never holds a password or a hash: what the file gives is kept by
 * DesiredCluster.credentials, what the broker stores by ActualCluster.userHashes, and plan says
 * only whether they differ.
 */
export interface User {
  kind: "user";
  name: string;
  /** Sorted; topo's marker tag (topo.<prefix>) included. */
  tags: string[];
}

/** A user's configure/write/read regexes on the cluster's vhost. */
export interface Permission {
  kind: "permission";
  user: string;
  configure: string;
  write: string;
  read: string;
}

/** A user's routing-key regexes on one topic exchange of the cluster's vhost. */
export interface TopicPermission {
  kind: "topic-permission";
  user: string;
  exchange: string;
  write: string;
  read: string;
}

export type Resource = Vhost | Exchange | Queue | Binding | Policy | User | Permission | TopicPermission;
export type ResourceKind = Resource["kind"];

/** Where a cluster lives. Passwords are kept here and nowhere else; `display` is safe to print. */
export interface Endpoint {
  protocol: "amqp" | "amqps";
  hostname: string;
  port: number;
  username: string;
  password: string;
  vhost: string;
  /** The AMQP URL with its password masked. */
  display: string;
}

export interface ManagementEndpoint {
  /** Base URL without credentials, no trailing slash, e.g. http://localhost:15672 */
  baseUrl: string;
  username: string;
  password: string;
  display: string;
}

export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
}

export interface ClusterTarget {
  name: string;
  amqp: Endpoint;
  management: ManagementEndpoint;
  tls: TlsOptions;
  /** Where the user sets this cluster's connection, for hints; absent: the file's clusters.<name> keys. */
  places?: SettingPlaces;
}

/**
 * Where hints send the user to fix a cluster's connection: the keys of a topology file, or the
 * command-line options a cluster came from (topo import --url), which have no file key to name.
 */
export interface SettingPlaces {
  /** The AMQP URL: clusters.sync.url. */
  url: string;
  /** The management API, to set or correct: clusters.sync.management. */
  management: string;
  /** Where the management API's host comes from: clusters.sync (its url, or its management). */
  managementHost: string;
  /** The user name and password: clusters.sync (url or management). */
  credentials: string;
  /** Where the AMQP login is set, for a refused one: clusters.sync.url; absent: url. */
  login?: string;
  /** The TLS files: clusters.sync.tls; undefined where none can be given. */
  tls?: string;
}

export function placesOf(target: { name: string; places?: SettingPlaces }): SettingPlaces {
  const at = `clusters.${target.name}`;
  return target.places ?? { url: `${at}.url`, management: `${at}.management`, managementHost: at, credentials: `${at} (url or management)`, tls: `${at}.tls` };
}

/** One queue that topo wants, with why it exists (for messages and mirroring). */
export interface QueueSpec {
  service: string;
  traffic: Traffic;
  cluster: string;
  queue: Queue;
  mirrored: boolean;
  /** Where the file asks for it: what a refusal only the broker reveals points at. */
  origin?: QueueOrigin;
}

/** A path of keys and indexes into the file, as config/places.ts names a place. */
export type FilePath = (string | number)[];

/**
 * The keys of the file a queue's settings come from. `settings` holds the key that set each of
 * type, durable, mirrored and arguments.NAME; one the file does not write is a built-in default.
 */
export interface QueueOrigin {
  /** The service's entry: services[i]. */
  service: FilePath;
  settings: Readonly<Record<string, FilePath>>;
}

/** What the file asks for on one cluster: its vhost and every object in it. */
export interface DesiredCluster {
  target: ClusterTarget;
  /** Sorted, de-duplicated, keyed by keyOf. */
  resources: Resource[];
  queues: QueueSpec[];
  /** The file's users as far as this cluster's broker is concerned; absent when the file has no users section. */
  users?: DesiredUsers;
}

/**
 * Users are per broker, not per vhost: two clusters of the file on one broker share them. Each
 * cluster creates and updates the users it grants rights to; a user topo marked that no cluster
 * of the broker wants is deleted by the first of them (`deletes`), and also by one that holds
 * all its rights (see DesiredUsers.deletes).
 */
export interface DesiredUsers {
  /** Every user of the file that some cluster on the same broker wants. */
  onBroker: string[];
  /**
   * This cluster deletes the broker's marked users that no cluster of the file wants there. The
   * others delete only those whose rights are on their own vhost alone (plan/diff.ts).
   */
  deletes: boolean;
  /**
   * The vhosts of the file's clusters on this broker. A marked user with permissions on another
   * vhost is another topology's (one that shares the prefix, on its own vhosts): never deleted.
   */
  vhosts: string[];
  /** Users the file adopts: they exist without topo's tag, and topo takes them over. */
  adopt: string[];
  /**
   * The users topo connects as, to any cluster of the file (AMQP and management): never deleted
   * or stripped of their rights, even when marked, since another cluster may run as one of them.
   */
  connectsAs: string[];
  credentials: Credentials;
}

/** A user's password as the broker stores it (GET /api/users). */
export interface StoredHash {
  hash: string;
  algorithm: string;
}

/**
 * The passwords of the file's users, behind methods: nothing here is enumerable data, so no
 * serialisation of a plan or a desired state can carry a password or a hash.
 */
export interface Credentials {
  /** Does what the file gives for `user` match what the broker stores? */
  matches(user: string, stored: StoredHash): boolean;
  /** The body fields that set `user`'s password: a freshly salted hash, never the password itself. */
  hashFor(user: string): { password_hash: string; hashing_algorithm: string };
  /**
   * scrypt, salted with `key`, of every user's password or hash: a saved plan keeps it (with its
   * random key) to tell whether apply sees the passwords the plan was made with.
   */
  fingerprint(key: string): string;
}

export interface DesiredState {
  prefix: string;
  clusters: DesiredCluster[];
}

/** Per-queue facts the broker reports that are not part of the wanted state. */
export interface QueueFacts {
  /** Ready and unacknowledged together, as the management API counts them. */
  messages?: number;
  ready?: number;
  unacked?: number;
  /**
   * A consumer holds messages unacknowledged and the statistics, their only count, did not catch
   * up with the queue's live count: `unacked` (0) and `messages` count the ready ones only.
   */
  unackedUnknown?: boolean;
  consumers?: number;
  /**
   * A quorum queue's messages dead-lettered at least once (x-dead-letter-strategy at-least-once)
   * that wait in it for their target to take them (broker/read.ts deadLettersIn). They are neither
   * ready nor unacknowledged, so no passive declare, totals or move sees them, and an if-empty
   * delete takes them with the queue (measured on 4.0.5). On RabbitMQ 4.3 the count holds as well
   * the retries the queue delays (delayedRetries), which are out of reach the same way.
   */
  deadLettersWaiting?: number;
  /**
   * Of deadLettersWaiting, the returned messages RabbitMQ 4.3 holds back for a delay before it
   * delivers them again (x-delayed-retry-type; its statistics' messages_delayed): not dead letters,
   * but out of a move's reach until the delay ends. undefined: the broker keeps no statistics, so
   * nothing tells the two apart.
   */
  delayedRetries?: number;
  /** Bytes of the message bodies the queue holds (ready and unacknowledged). */
  bytes?: number;
  node?: string;
  /**
   * "running" (4.x) or "live" (3.x with stats off); "down" while the node of a queue without
   * mirrors is down; "crashed" or "stopped" when RabbitMQ cannot run it (plan/queue-state.ts).
   */
  state?: string;
  policy?: string;
  /**
   * The operator policy the broker's statistics name for the queue (seconds behind), read only
   * where the patterns cannot tell which applies (plan/policy-limits.ts operatorPoliciesUnsure):
   * the listing topo reads with statistics off names the queue's policy, not its operator policy.
   */
  operatorPolicy?: string;
  /** Mirror nodes (3.x classic mirroring); undefined when the broker did not report them. */
  mirrors?: string[];
  synchronisedMirrors?: string[];
  /** A quorum queue's members and those online; undefined for other types, or when not reported. */
  members?: string[];
  online?: string[];
}

/** What a cluster holds, normalised the same way as the desired state. */
export interface ActualCluster {
  vhostExists: boolean;
  version: string;
  /** Running nodes of the cluster. */
  nodes: string[];
  /** Nodes the cluster knows of that are not running. */
  downNodes?: string[];
  resources: Resource[];
  queueFacts: Record<string, QueueFacts>;
  /** The vhost's operator policies; undefined when the management user may not read them. */
  operatorPolicies?: Policy[];
  /** The vhosts each user has permissions or topic permissions on, across the broker. */
  userVhosts?: Record<string, string[]>;
  /** Users' limits by user (max-connections, max-channels); undefined when they could not be read. */
  userLimits?: Record<string, Record<string, number>>;
  /** Stored password hashes by user (never printed); undefined when users could not be read. */
  userHashes?: Record<string, StoredHash>;
  /** Why users and permissions could not be read (the management user may not list them). */
  usersUnreadable?: string;
  /** The management user's tags (GET /api/whoami), where a check needed them and they could be read. */
  managementTags?: string[];
  /** Why the cluster's nodes could not be read (then which nodes run, and are down, is unknown). */
  nodesUnreadable?: string;
  /** Why the vhost's operator policies could not be read (then whether one caps a queue is unknown). */
  operatorPoliciesUnreadable?: string;
  /**
   * The queues' message counts were read (broker/read.ts readMessageCounts): a queue whose
   * `messages` is still undefined then holds a number the broker did not give, not one unread.
   */
  messagesCounted?: boolean;
  /**
   * The type a durable queue declared without x-queue-type gets in this vhost (its default queue
   * type, RabbitMQ 3.11+; for a vhost apply creates, the broker's default): read only when the
   * file has such queues and the broker has the setting.
   */
  defaultQueueType?: string;
}

export type Action =
  | {
      op: "create";
      key: string;
      after: Resource;
      /** A policy create: queues that would lose messages once it applies (plan/policy-shifts.ts). */
      losses?: PolicyLoss[];
    }
  | {
      op: "update";
      key: string;
      before: Resource;
      after: Resource;
      changed: string[];
      /** A policy update: queues that would lose messages once it is made (plan/policy-shifts.ts). */
      losses?: PolicyLoss[];
      /**
       * A user's password change: its connections open now, on any vhost. They stay open, but
       * each login after the apply with the old password is refused.
       */
      connections?: number;
    }
  | {
      op: "replace";
      key: string;
      before: Resource;
      after: Resource;
      because: string[];
      /** Bindings that vanish with the old object and are re-created in the same apply. */
      rebind: Binding[];
      /**
       * An exchange's topic permissions, every user's, that RabbitMQ 4 deletes with it (3.x keeps
       * them): apply puts them back as they were right after the re-declare (plan/topic-keep.ts).
       */
      topics?: KeptTopicPermission[];
      /** Why an exchange's topic permissions could not be read on a broker that deletes them with it: apply refuses the replace. */
      topicsUnread?: string;
      /**
       * Of `rebind`, those the broker will not let topo make again: apply refuses the replace
       * unless --allow-unmanaged-deletes, and then does not count their failure. Absent when none.
       */
      lost?: LostBinding[];
      /**
       * Of `rebind`, bindings from an exchange whose type the replace changes that the file does
       * not make, and that the new type routes otherwise (plan/retyped.ts): apply refuses the
       * replace unless --allow-unmanaged-deletes. Absent when none.
       */
      retyped?: Binding[];
      messages?: number;
      /** Of `messages`, those the queue holds neither ready nor unacknowledged (QueueFacts.deadLettersWaiting): no move takes them, and no delete-ok counts them. */
      apart?: number;
      /** `messages` counts the ready messages only: how many its consumers hold unacknowledged is not known. */
      unackedUnknown?: boolean;
      /** Why this queue replace could lose messages (plan/risk.ts); apply refuses it unless data loss is allowed. */
      risks?: ReplaceRisk[];
      /** What the new queue and its holding queue will enforce, so the move never overfills them. */
      limits?: { queue: QueueLimits; hold: QueueLimits; old?: QueueLimits };
      /** Messages moved back would be dead-lettered by a key the dead-letter exchange drops (plan/dead-lettering.ts). */
      movedDeadLetters?: string;
      /**
       * Queues that dead-letter into this queue by its name (the default exchange): what they send
       * while it is replaced bypasses its holding queue (plan/dead-lettering.ts deadLetterSendersByName).
       */
      namedDeadLetters?: { queues: string[]; note: string };
      /**
       * An exchange replace: the queues that dead-letter to it and the exchanges whose alternate
       * exchange it is, by argument or policy, whose messages are dropped while it is re-created (plan/diff.ts markRoutesIntoReplaced).
       */
      routedInto?: string;
      /**
       * A lossless replace of this queue was interrupted: its holding queue still exists.
       * `queueDone`: the queue already has its new properties, so only the move back is left.
       */
      resume?: { hold: Queue; holdBindings: Binding[]; messages?: number; queueDone: boolean };
    }
  | {
      op: "delete";
      key: string;
      before: Resource;
      messages?: number;
      /** Of `messages`, those a quorum queue holds neither ready nor unacknowledged (QueueFacts.deadLettersWaiting): no delete-ok counts them. */
      apart?: number;
      /**
       * `messages` counts the ready messages only: how many its consumers (or, where the broker
       * gave no count, anyone) hold unacknowledged is not known.
       */
      unackedUnknown?: boolean;
      /**
       * A quorum queue's dead letters waiting for their target have no count: the broker gave the
       * queue no statistics within apply's bound (its leader had not reported), so `messages`
       * may not count them all.
       */
      deadLettersUnknown?: boolean;
      /**
       * Of `messages`, those fetched but not acknowledged (basic.get without ack, or a consumer
       * cancelled on a channel still open): no passive declare counts them, and the broker deletes
       * them with the queue, if-empty and if-unused included.
       */
      unacked?: number;
      /** A user's connections open now, on any vhost: RabbitMQ closes them when it deletes the user. */
      connections?: number;
      /** Consumers attached to this queue now (apply's passive declare; plan does not know). */
      consumers?: number;
      /**
       * Bindings topo does not manage that the broker removes with this exchange or queue (a
       * user's `mplogin -> audit`): plan names them, and apply refuses the delete unless told it
       * may take them (--allow-unmanaged-deletes). Absent when there are none.
       */
      unmanaged?: Binding[];
      /** Of `unmanaged`, those whose auto-delete source exchange the broker deletes with them (why: "auto-delete"). */
      lost?: LostBinding[];
      /** A policy delete: queues that would lose messages once it is gone (plan/policy-shifts.ts). */
      losses?: PolicyLoss[];
    };

/** A plan's replace: the object deleted and declared again with what the file says (broker/replace.ts). */
export type ReplaceAction = Extract<Action, { op: "replace" }>;

export type Op = Action["op"];

/**
 * A binding that goes with a replaced or deleted object and that topo cannot make again. Its
 * source (or, `into`, its destination) is an auto-delete exchange that loses its last binding in
 * this apply, and so is deleted by the broker ("auto-delete"). Or its destination is an exclusive queue, which only the
 * connection that declared it may bind (405 RESOURCE_LOCKED otherwise) ("exclusive").
 */
export interface LostBinding {
  binding: Binding;
  why: "auto-delete" | "exclusive";
  /** "auto-delete": the exchange that goes is the binding's destination, not its source. */
  into?: true;
  /**
   * Only when queue replaces are a plain delete and re-create (--allow-data-loss): a replace
   * without loss binds the holding queue before it unbinds the queue, so the exchange keeps a
   * binding throughout.
   */
  plainOnly?: true;
}

/** One reason a queue replace could lose messages, and what the user can do about it. */
/** A topic permission of any user, as a replace of its exchange puts it back. */
export type KeptTopicPermission = Omit<TopicPermission, "kind">;

export interface ReplaceRisk {
  /** The rule that found it: "consumers", "x-max-length", "x-message-ttl", ... */
  rule: string;
  reason: string;
  advice: string;
}

/**
 * A queue that a change to topo's policies would make lose messages: another policy's limit (a
 * user's, that topo's shadowed) applies to it once the change is made, and it holds more than
 * that limit lets it keep. apply refuses the change unless data loss is allowed.
 */
export interface PolicyLoss extends ReplaceRisk {
  queue: string;
  /** What the queue holds, by the read; undefined when the broker did not count it. */
  messages?: number;
}

export type Overflow = "drop-head" | "reject-publish" | "reject-publish-dlx";

/** A limit and what set it: a queue argument (`x-max-length`) or a policy (`policy p's max-length`). */
export interface Limit {
  value: number;
  from: string;
  /** The value as written, where it is not the number (a stream's max-age "2s", whose value is in ms). */
  shown?: string;
}

/** What a queue does with messages, from its arguments and the policy that applies to it. */
export interface QueueLimits {
  maxLength?: Limit;
  maxLengthBytes?: Limit;
  overflow: Overflow;
  messageTtl?: Limit;
  expires?: Limit;
  /** A stream's max-age, in milliseconds. */
  maxAge?: Limit;
  deadLetterExchange?: string;
  /** The key dead-lettering routes by: the argument's, else the policy's; none: each message's own. */
  deadLetterRoutingKey?: string;
  /** A quorum queue's delivery limit (the lowest of argument, policy and operator policy): a requeue past it drops or dead-letters. */
  deliveryLimit?: Limit;
}

export interface ClusterPlan {
  cluster: string;
  endpoint: string;
  vhost: string;
  version?: string;
  actions: Action[];
  /** Drift topo sees but cannot repair (a mirror missing, a policy shadowing topo's). */
  degraded: string[];
  warnings: string[];
  /**
   * What plan could not read, and so did not compare ("users and permissions", "mirroring"): its
   * warnings say why. Without it, "No changes." would say the broker matches where topo never looked.
   */
  notCompared?: string[];
}

export interface Plan {
  clusters: ClusterPlan[];
  /** The file's clusters left out with --cluster: not read, so nothing is said of them. */
  unread?: string[];
}

export interface Summary {
  create: number;
  update: number;
  replace: number;
  delete: number;
}

/**
 * The x-arguments a queue is declared with. Classic queues are declared without x-queue-type,
 * exactly like a kombu worker does, so a worker's redeclare is equivalent on 3.x and 4.x alike;
 * every export that a client or the broker reads (Celery config, definitions) uses the same.
 */
export function queueDeclareArgs(q: Queue): Args {
  return q.type === "classic" ? { ...q.arguments } : { ...q.arguments, "x-queue-type": q.type };
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}
