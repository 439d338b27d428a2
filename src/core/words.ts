// Pure: small pieces of the sentences topo prints, used by every layer.

/** "1 queue", "2 queues". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A word as a shell command line takes it (a rabbitmqctl command in a hint): quoted only if it must be. */
export function shellWord(s: string): string {
  if (/^[A-Za-z0-9._@/-]+$/.test(s)) return s;
  if (!UNSAFE.test(s)) return `'${s.replace(/'/g, `'\\''`)}'`;
  // A line break or another control or format character (a bidi override) printed raw would add
  // or reorder lines of the plan around the command: bash's $'...' writes each as an escape.
  return `$'${[...s].map((c) => (c === "\\" || c === "'" ? `\\${c}` : UNSAFE.test(c) ? escapeChar(c) : c)).join("")}'`;
}

/** A file's path in a command topo prints: a shell word (shellWord), never read as an option ("-x" is "./-x"). */
export function shellPath(p: string): string {
  return shellWord(p.startsWith("-") ? `./${p}` : p);
}

const NAMED_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeChar(c: string): string {
  if (NAMED_ESCAPES[c]) return NAMED_ESCAPES[c];
  const n = c.codePointAt(0)!;
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : n < 0x10000 ? `\\u${n.toString(16).padStart(4, "0")}` : `\\U${n.toString(16).padStart(8, "0")}`;
}

/**
 * The command that gives `user` the tag `add` and keeps the tags it has: rabbitmqctl set_user_tags
 * replaces a user's tags, so the command lists them all. `tags` undefined: they could not be read,
 * and the command holds a placeholder for them.
 */
export function setUserTags(user: string, tags: readonly string[] | undefined, add: string): string {
  if (!tags) return `rabbitmqctl set_user_tags ${user.startsWith("-") ? "-- " : ""}${shellWord(user)} TAGS... ${add}, where TAGS are the tags it has now (rabbitmqctl list_users shows them; set_user_tags replaces them all)`;
  const all = tags.includes(add) ? [...tags] : [...tags, add];
  // A tag (or name) that starts with "-" is an option to rabbitmqctl, quoted or not ("-n
  // management" named another node): "--" ends its options.
  const end = [user, ...all].some((w) => w.startsWith("-")) ? "-- " : "";
  return `rabbitmqctl set_user_tags ${end}${shellWord(user)} ${all.map(shellWord).join(" ")} (set_user_tags replaces the user's tags: this keeps the ${plural(tags.length, "tag")} it has${tags.length ? `, ${tags.join(", ")}` : ""})`;
}

/** "a, b, c and 4 more": a long list of names cut to a readable length. */
export function names(list: readonly string[], max = 5): string {
  return list.length <= max ? list.join(", ") : `${list.slice(0, max).join(", ")} and ${list.length - max} more`;
}

/**
 * Characters that would let a name forge or hide output: line breaks and other C0 and C1 controls
 * (terminal escapes), DEL, and the bidirectional overrides and isolates that reorder what a
 * terminal or a pull-request page shows. A tab is allowed.
 */
// Controls, line and paragraph separators, and every format character: bidi overrides and
// isolates, and the invisible ones (zero-width space and joiners, LRM/RLM, U+FEFF), with which a
// foreign queue "mplogin.sync\u200b" printed exactly like topo's own mplogin.sync.
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/u;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "gu");

/** JSON text with the unsafe characters JSON leaves as they are written as \u escapes (still JSON). */
export function escapeUnsafe(json: string): string {
  // Each UTF-16 unit of the match: a format character beyond 16 bits (a tag) is two.
  return json.replace(UNSAFE_ALL, (ch) => ch.split("").map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""));
}

/** Whether `s` holds a character escapeUnsafe() escapes. */
export function holdsUnsafe(s: string): boolean {
  return UNSAFE.test(s);
}

/** A name or pattern from the broker, always quoted, as JSON, and safe to print. */
export function quoted(s: string): string {
  return escapeUnsafe(JSON.stringify(s));
}

/**
 * A name as output shows it: as it is, or, when it holds an unsafe character, as a JSON string
 * (quoted, escaped). Names come from the broker, where whoever may declare or bind chooses them: a
 * routing key holding "\n  - delete queue x" must not add a line to the plan a reviewer reads.
 */
export function shown(name: string): string {
  return UNSAFE.test(name) ? escapeUnsafe(JSON.stringify(name)) : name;
}

/**
 * A broker's name in a list or in a binding's notation (`a -> exchange b [key]`): shown(), and
 * quoted too where it holds what the notation is made of (a space, a comma, brackets, quotes,
 * "->"). A foreign queue named "x [#], mpwallet -> mpwallet.sync" read as two bindings, one of
 * them topo's own, and one named "exchange mpwallet" as a binding to the exchange.
 */
export function shownName(name: string): string {
  const s = shown(name);
  return s === name && /[\s,[\]"'(){}]|->/.test(name) ? JSON.stringify(name) : s;
}

/**
 * What to do about a user with no permissions on a vhost, said alike by the AMQP login and the
 * management API (one hint, once): apply's rights, and the read-only ones a plan-only user needs.
 */
/**
 * The commands that show and set a user's permissions in a vhost: said wherever the broker refused
 * a resource for them (over AMQP, or the management API's own user over HTTP).
 */
export function permissionCommands(user: string, vhost: string): string {
  return `rabbitmqctl list_user_permissions ${shellWord(user)} shows its patterns, and rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(user)} CONFIGURE WRITE READ sets them (docs/users.md lists what topo needs)`;
}

export function noRightsHint(user: string, vhost: string): string {
  return `user "${user}" has no permissions on vhost "${vhost}": rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(user)} '.*' '.*' '.*' for a user that applies, or '^$' '^$' '.*' for one that only plans (docs/ci.md)`;
}

/**
 * The hints for --cluster names the file does not have: its clusters, and, where a name is
 * several of them run together ("sync,async", as other tools take lists), how to give each.
 * `repeatable`: whether the command takes --cluster more than once.
 */
export function unknownClusterHints(unknown: readonly string[], known: readonly string[], repeatable: boolean): string[] {
  const hints = [`clusters in the file: ${known.join(", ")}`];
  const lists = unknown.map((n) => n.split(/[\s,;]+/).filter(Boolean)).filter((parts) => parts.length > 1 && parts.every((p) => known.includes(p)));
  if (lists.length) {
    const parts = [...new Set(lists.flat())];
    hints.unshift(repeatable ? `--cluster takes one name; repeat it for more: ${parts.map((p) => `--cluster ${shellWord(p)}`).join(" ")}` : `--cluster takes one name: this command works on one cluster at a time (--cluster ${shellWord(parts[0]!)})`);
  }
  return hints;
}

/**
 * Who holds a queue's messages unacknowledged without being its consumer. The second case is the
 * one a Celery user meets: a worker told to stop (warm shutdown) cancels its consumers at once and
 * keeps its channel, and its reserved tasks, until its running tasks end (measured with 5.2.6 and
 * acks_late: 8 prefetched tasks stayed unacknowledged, with no consumer, until the worker exited).
 */
export const FETCHED_WITHOUT_CONSUMER =
  "basic.get without ack, or a consumer cancelled on a channel still open, as a Celery worker in warm shutdown holds its reserved tasks until it exits";

/** What to do about such messages: `them` is "it" or "them". */
export function letGoOf(them: string): string {
  return `let that client acknowledge ${them} or close its channel (a Celery worker that is stopping: wait until it has exited)`;
}

/**
 * What deleting a queue does to the Celery workers consuming it: the broker cancels their
 * consumer, the worker reconnects and consumes again, gets 404 NOT_FOUND and stops (measured with
 * 5.2.6: `Unrecoverable error: NotFound(404, ...)`, exit 0), taking every other queue it consumed
 * with it.
 */
export const CELERY_QUEUE_GONE =
  "a Celery worker whose queue is deleted stops altogether, its other queues included (it consumes again, gets 404 NOT_FOUND, logs Unrecoverable error and exits 0): restart the workers without this queue in -Q before the apply";

/**
 * The file's defaults that make its mirrored queues quorum queues, as a hint's example: naming the
 * kinds the file mirrors (a file may mirror its async queues too), sync first.
 */
export function quorumDefaultsExample(kinds: Iterable<string>): string {
  const named = [...new Set(kinds)].sort().reverse();
  return `defaults: { ${named.map((k) => `${k}: { type: quorum }`).join(", ")} }`;
}
