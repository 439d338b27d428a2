// Users are the broker's, but an apply's lock is its prefix's in its vhost: two applies of files
// that list one user (other prefixes, or one prefix on other vhosts) held their own locks, both
// planned "create user", both wrote it, and the later write won unseen while the earlier apply
// said the broker matched its file (seen on 3.10.8: two files started together, both exit 0, the
// user carrying one file's tag and password and both files' rights).
//
// So each lock names the users its apply may write (x-topo-users), and before an apply writes a
// user, under its lock: (1) no other apply's lock on the broker names that user, and then (2) the
// user is still as the plan read it, and as the plan read before the lock did (the one apply
// printed). Whichever of two such applies checks second sees either the other's lock, still held
// because the other has not finished, or, the other having finished, its write: one of them always
// stops before writing, without any wait or timing. (Compared with the read under the lock alone,
// a user the other apply created between this one's first read and its lock was read as there,
// planned as an update of its password, and overwritten: seen on 3.10.8, both applies exit 0, and
// the first one's workers refused at login.)

import type { Action, ActualCluster, ClusterPlan } from "../model.js";
import { LockError } from "../errors.js";
import type { ManagementClient } from "./http.js";
import { shellWord, shown } from "../core/words.js";
import { userItem } from "./answers.js";
import { tagsOf } from "./state.js";
import { closeHolderAdvice } from "../plan/left-behind.js";

/** The lock argument that names the users an apply may write. */
export const USERS_ARGUMENT = "x-topo-users";
/** The lock argument that names the apply itself: the locks of one apply's clusters are not each other's rivals. */
export const APPLY_ARGUMENT = "x-topo-apply";

/** The users a plan creates, updates or deletes. */
export function usersWritten(plan: ClusterPlan): string[] {
  const names = new Set<string>();
  for (const a of plan.actions) {
    const r = subject(a);
    if (r.kind === "user") names.add(r.name);
  }
  return [...names].sort();
}

function subject(a: Action) {
  return a.op === "delete" ? a.before : a.after;
}

interface LockRow {
  name?: unknown;
  vhost?: unknown;
  exclusive?: unknown;
  arguments?: Record<string, unknown>;
}

/** Every apply lock on the broker (topo.<prefix>.lock in any vhost), page by page: the name filter works only on a paged listing. */
async function applyLocks(http: ManagementClient): Promise<LockRow[]> {
  const rows: LockRow[] = [];
  const name = encodeURIComponent("^topo\\..+\\.lock$");
  for (let page = 1; ; page++) {
    const body = await http.get<{ items?: unknown; page_count?: unknown }>(`/api/queues?disable_stats=true&columns=name,vhost,exclusive,arguments&name=${name}&use_regex=true&page=${page}&page_size=500`);
    if (!Array.isArray(body?.items)) throw http.notTheBrokers("GET", "/api/queues", "it has no list of items, which a paged listing of queues holds");
    rows.push(...(body.items as LockRow[]));
    if (typeof body.page_count !== "number" || page >= body.page_count) return rows;
  }
}

/** Each user a read found, with its tags and, where it could be read, its password's hash. */
export type UsersAsRead = ReadonlyMap<string, { tags: readonly string[]; hash?: string }>;

export function usersAsRead(actual: ActualCluster): UsersAsRead {
  return new Map(actual.resources.flatMap((r) => (r.kind === "user" ? [[r.name, { tags: r.tags, ...(actual.userHashes?.[r.name] ? { hash: actual.userHashes[r.name]?.hash } : {}) }] as const] : [])));
}

/**
 * Refuses, before any write, a plan that writes a user another apply may be writing now, or one
 * that changed since the plan read it, or since the read before the lock (`first`). `intent`: the
 * users this apply's lock names; a user the plan writes outside it could be written by another
 * apply that did not see this one.
 */
export async function refuseRivalUserWrites(
  http: ManagementClient,
  o: {
    cluster: string;
    vhost: string;
    applyId: string;
    intent: readonly string[];
    plan: ClusterPlan;
    actual: ActualCluster;
    saved?: boolean;
    /** The users as the read before the lock found them, where apply read before it: the plan it printed. */
    first?: UsersAsRead;
    /** This apply's lock queue (its prefix's), and the vhosts of the file's clusters on this broker: a lock of that name there is the same file's. */
    own?: { lock: string; clusters: readonly { name: string; vhost: string }[] };
  },
): Promise<void> {
  const users = usersWritten(o.plan);
  if (users.length === 0) return;
  // A saved plan holds what was planned before: only a new plan shows whose user it is now.
  const again = o.saved ? `once the other apply has finished, run topo plan -o FILE again and apply that` : `run topo apply again once the other apply has finished`;
  const retry = `${again}: ${o.saved ? "the new plan shows" : "its plan then shows"} whose user it is (a user another topology made is refused, user_conflict)`;
  const unnamed = users.filter((u) => !o.intent.includes(u));
  if (unnamed.length) {
    throw new LockError(
      `cluster ${o.cluster}: the plan made under the lock writes user${unnamed.length === 1 ? "" : "s"} ${unnamed.join(", ")}, which the plan read before the lock did not, so this apply's lock does not name ${unnamed.length === 1 ? "it" : "them"} to other applies that may write ${unnamed.length === 1 ? "it" : "them"} at the same time; nothing was written`,
      ["run topo apply again: its lock then names every user it writes"],
      { cluster: o.cluster, object: `user ${unnamed[0]}` },
    );
  }
  for (const row of await applyLocks(http)) {
    const args = row.arguments ?? {};
    if (row.exclusive !== true || args[APPLY_ARGUMENT] === o.applyId) continue;
    const named = Array.isArray(args[USERS_ARGUMENT]) ? (args[USERS_ARGUMENT] as unknown[]).filter((u): u is string => typeof u === "string") : [];
    const both = users.filter((u) => named.includes(u));
    if (both.length === 0) continue;
    // Whoever may declare a queue in any vhost of the broker chooses these: shown(), so a newline
    // or a terminal escape among them adds no line to the message and moves no cursor.
    const holder = typeof args["x-topo-holder"] === "string" ? shown(args["x-topo-holder"]) : undefined;
    const since = typeof args["x-topo-since"] === "string" ? `since ${shown(args["x-topo-since"])}` : undefined;
    // A lock that names no holder (declared by hand, or by a client that is no topo) is said by its name alone.
    const who = [[holder, since].filter(Boolean).join(" "), `lock ${shown(String(row.name))} in vhost ${shown(String(row.vhost))}`].filter(Boolean).join(", ");
    // Two applies of one file, each with --cluster (parallel deploy jobs), share its users: the
    // other lock is this file's own, in the vhost of another of its clusters. Telling them that
    // two files list one user sent them looking for a second file that does not exist.
    const sibling = o.own && row.name === o.own.lock ? o.own.clusters.find((c) => c.vhost === row.vhost) : undefined;
    const hints = sibling
      ? [
          again,
          `that lock is this file's own, on its cluster ${shown(sibling.name)}: two applies of one file, each with --cluster, both write the users their clusters share; apply those clusters in one run (leave out --cluster), or one after the other`,
        ]
      : holder === undefined
        ? [
            // Anyone who may declare a queue in any vhost of the broker can hold such a lock, and
            // every apply that writes the user it names then refused, told to wait for an apply
            // that never ends.
            `that lock names no holder, though every topo apply's lock names one: if no apply of topo's is running, a client that is no topo apply holds it (declared by hand, or by another program); ${closeHolderAdvice(String(row.vhost))}, and the lock goes with its connection`,
            retry,
          ]
        : [retry, `two files should not both list one user: give each service's user to one file`];
    throw new LockError(
      `cluster ${o.cluster}: user${both.length === 1 ? "" : "s"} ${both.join(", ")}: another apply (${who}) may write ${both.length === 1 ? "it" : "them"} now; users are the broker's, not a vhost's, so each apply's lock does not keep the other out, and the later write would win unseen; nothing was written`,
      hints,
      { cluster: o.cluster, object: `user ${both[0]}` },
    );
  }
  // After the locks: an apply that finished before this one listed them wrote its users before.
  const now = new Map(
    // Checked as the plan's read of them is (an answer that is no list of users is not taken for one).
    ((await http.list<{ name: string; tags: unknown; password_hash?: unknown }>(`/api/users?columns=name,password_hash,tags`, [404], {}, { check: userItem, of: "users" })) ?? []).map((u) => [u.name, u] as const),
  );
  const differs = (reads: UsersAsRead, u: string): boolean => {
    const was = reads.get(u);
    const is = now.get(u);
    if (!was || !is) return !was !== !is;
    return !sameTags(tagsOf(is.tags), was.tags) || (was.hash !== undefined && is.password_hash !== was.hash);
  };
  const read = usersAsRead(o.actual);
  const changed = users.filter((u) => differs(read, u) || (o.first !== undefined && differs(o.first, u)));
  if (changed.length) {
    throw new LockError(
      `cluster ${o.cluster}: user${changed.length === 1 ? "" : "s"} ${changed.join(", ")} changed since this apply read ${changed.length === 1 ? "it" : "them"} (created, deleted, or given other tags or another password: another apply, of another prefix or vhost, wrote ${changed.length === 1 ? "it" : "them"} meanwhile, or someone by hand); writing the plan would undo that unseen; nothing was written`,
      [userChangedHint(o.cluster)],
      { cluster: o.cluster, object: `user ${changed[0]}` },
    );
  }
}

/** Whether two users' tags are the same, in whatever order. */
export function sameTags(a: readonly string[], b: readonly string[]): boolean {
  return [...a].sort().join(",") === [...b].sort().join(",");
}

/**
 * What to do about a user that changed since the plan read it. Its `topo plan` is a command the
 * CLI completes with the file it was run with (hintsForInvocation): "-f FILE" was left as written.
 */
export function userChangedHint(cluster: string): string {
  return `run topo apply again: it plans from the user as it is now; topo plan --cluster ${shellWord(cluster)} shows it`;
}
