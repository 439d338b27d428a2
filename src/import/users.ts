// Pure: the users section of an imported file. A user topo marked (tag topo.<prefix>) is written
// with what it consumes and publishes, read off its permissions on each cluster: a service is
// consumed where the user's read regex matches one of its queues there, and published to where
// its write regex matches the service's exchange. Its password is never read (the broker has
// only a hash): the file refers to a variable, which the user exports before running topo.

import type { Action, Permission, User } from "../model.js";
import { isTopoName, markedAsOnly, otherMarkers, USER_NAME_RULE, USER_NAME_WORDS, USER_TAG_RULE, userMarkerTag } from "../core/naming.js";
import { shown } from "../core/words.js";
import { subjectOf } from "../core/keys.js";
import type { ImportSource, PlannedChange } from "./types.js";
import { allowedAmong, rightsAmong } from "../core/permissions.js";
import { policyRegExp } from "../core/policy-pattern.js";

export interface ImportedUser {
  name: string;
  passwordEnv: string;
  consumes: string[];
  publishes: string[] | "all";
  tags: string[];
}

export interface ImportedUsers {
  users: ImportedUser[];
  /** Marked users import leaves out, and why. */
  skipped: string[];
}

/** The variable a user's password is read from: USER_PASSWORD, upper case, other characters as _. */
export function passwordVariable(user: string): string {
  const v = `${user.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`;
  return /^[0-9]/.test(v) ? `U_${v}` : v;
}

/**
 * A permission regex as RabbitMQ applies it: the empty string allows nothing (RabbitMQ reads it as
 * `^$`; JavaScript's empty RegExp matches every name, and import gave a user without rights every
 * service's). RabbitMQ's regexes are PCRE: one JavaScript cannot read, or would read as another
 * pattern (`\A`, `(?i)`), is undefined, and the caller says so.
 */
function matcher(source: string): ((name: string) => boolean) | undefined {
  if (source === "") return () => false;
  const re = policyRegExp(source, { unicode: true });
  return re ? (name) => re.test(name) : undefined;
}

/** One cluster as importUsers reads it: the names of its queues and exchanges, its permissions by user. */
interface SourceView {
  names: Set<string>;
  permissions: Map<string, Permission>;
}

function viewOf(s: ImportSource): SourceView {
  const names = new Set<string>();
  const permissions = new Map<string, Permission>();
  for (const r of s.actual.resources) {
    if (r.kind === "queue" || r.kind === "exchange") names.add(r.name);
    else if (r.kind === "permission") permissions.set(r.user, r);
  }
  return { names, permissions };
}

/**
 * `own`: the users topo connects as (the clusters' url and management users), which a file may
 * not list. `reserved`: the variables the file already reads (its clusters' urls). Each user gets a variable
 * of its own: hi.u2 and hi-u2 would both be HI_U2_PASSWORD, and two users cannot be given two
 * passwords through one variable (apply would set one's password to the other's).
 */
export function importUsers(sources: ImportSource[], services: string[], prefix: string, reserved: Iterable<string> = [], own: Iterable<string> = []): ImportedUsers {
  const connectsAs = new Set(own);
  const taken = new Set(reserved);
  const variableFor = (user: string): string => {
    const base = passwordVariable(user);
    let v = base;
    for (let n = 2; taken.has(v); n++) v = `${base}_${n}`;
    taken.add(v);
    return v;
  };
  const marker = userMarkerTag(prefix);
  const marked = new Map<string, User>();
  for (const s of sources) for (const r of s.actual.resources) if (r.kind === "user" && r.tags.includes(marker)) marked.set(r.name, r);
  const shared = new Set([...marked.values()].filter((u) => !markedAsOnly(u.tags, prefix)));
  const views = sources.map(viewOf);
  // Each cluster's queues gathered once, not once per user (import of thousands of users).
  const rightsIn = views.map(({ names }) => rightsAmong(services, names));
  const serviceNames = new Set(services);
  const serviceOfQueue = new Map<string, string>(services.flatMap((svc) => [[`${svc}.sync`, svc], [`${svc}.async`, svc]]));
  const queueNames = new Set(serviceOfQueue.keys());
  const users: ImportedUser[] = [];
  const skipped: string[] = [];
  for (const u of [...marked.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const consumes = new Set<string>();
    const publishes = new Set<string>();
    // A marked user with no rights on these vhosts is another topology's (same prefix, other vhosts).
    if (!views.some((v) => v.permissions.has(u.name))) continue;
    if (shared.has(u)) {
      skipped.push(`user ${shown(u.name)} carries topo's tag ${marker} and another topology's (${otherMarkers(u.tags, prefix).join(", ")}), so it is that topology's as well: import leaves it out, and a plan of the file never deletes or changes it`);
      continue;
    }
    // Anyone may put topo's tag on a user: one the file cannot list stays out of it, said.
    if (connectsAs.has(u.name)) {
      skipped.push(`user ${shown(u.name)} carries topo's tag ${marker} but is the user topo connects as, which a file cannot list, so import leaves it out (a plan never deletes it)`);
      continue;
    }
    if (!USER_NAME_RULE.test(u.name)) {
      skipped.push(`user ${JSON.stringify(u.name)} carries topo's tag ${marker} but a file cannot name it: a user name is ${USER_NAME_WORDS}; import leaves it out (a plan of the file would delete it: rename it, or take topo's tag off it)`);
      continue;
    }
    const unread: string[] = [];
    for (const [i, { names, permissions }] of views.entries()) {
      const p = permissions.get(u.name);
      if (!p) continue;
      const [read, write] = [matcher(p.read), matcher(p.write)];
      for (const [what, re, m] of [["read", p.read, read], ["write", p.write, write]] as const) {
        if (!m) unread.push(`${what} ${JSON.stringify(re)} on vhost ${shown(sources[i]!.vhost)}`);
      }
      // The names each regex lists, where it is a list, rather than every service's (10,000 users
      // each testing 10,000 services' names is quadratic).
      if (read) for (const q of allowedAmong(p.read, read, queueNames)) if (names.has(q)) consumes.add(serviceOfQueue.get(q)!);
      if (write) for (const svc of allowedAmong(p.write, write, serviceNames)) if (names.has(svc)) publishes.add(svc);
    }
    if (unread.length) {
      skipped.push(
        `user ${u.name}: topo cannot read its permission${unread.length === 1 ? "" : "s"} ${unread.join(", ")} (RabbitMQ reads permissions as PCRE), so import counted ${unread.length === 1 ? "it" : "them"} as allowing nothing: the broker may let it consume or publish more than the file's consumes and publishes say; a plan of the file shows the rights it would set, check them before applying`,
      );
    }
    if (consumes.size === 0 && publishes.size === 0) {
      skipped.push(`user ${u.name} carries topo's tag ${marker} but its permissions on these vhosts let it consume or publish to no service of the file, so import leaves it out (a plan of the file would delete it: add it to users: by hand if it must stay)`);
      continue;
    }
    // A consumer may publish its own queues' task names (its retries): write on its own service's
    // exchange is no sign that it publishes to it, where the rights without it are exactly the
    // broker's.
    const own = [...publishes].filter((svc) => consumes.has(svc));
    if (own.length) {
      const fewer = { user: u.name, consumes: [...consumes], publishes: [...publishes].filter((svc) => !consumes.has(svc)) };
      const same = views.every(({ permissions }, i) => {
        const p = permissions.get(u.name);
        const r = p && rightsIn[i]!(fewer);
        return !p || (r !== undefined && r.configure === p.configure && r.write === p.write && r.read === p.read);
      });
      if (same) for (const svc of own) publishes.delete(svc);
    }
    users.push({
      name: u.name,
      passwordEnv: variableFor(u.name),
      consumes: [...consumes].sort(),
      // The services it may publish to, by name, even when that is every one: `all` would also
      // grant it every service added to the file later, which the broker's rights never said.
      publishes: [...publishes].sort(),
      // The marker is topo's to add, and another prefix's marker no tag the file may set; nor is
      // one the schema refuses (plan of the file takes it off, and import lists that change).
      tags: u.tags.filter((t) => !isTopoName(t) && USER_TAG_RULE.test(t)),
    });
  }
  return { users, skipped };
}

const USER_KINDS = new Set(["user", "permission", "topic-permission"]);

/** Is this one of plan's actions on users and their rights? */
export function isUserAction(a: Action): boolean {
  return USER_KINDS.has(subjectOf(a).kind);
}

/**
 * The users written whose broker holds no password for them (an empty hash: they log in with a
 * client certificate, or not at all), by name, with the variable the file reads theirs from.
 * Only a broker whose users were read says so.
 */
export function passwordlessUsers(users: ImportedUser[], sources: ImportSource[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const u of users) {
    if (sources.some((s) => s.actual.userHashes !== undefined && !Object.hasOwn(s.actual.userHashes, u.name))) out.set(u.name, u.passwordEnv);
  }
  return out;
}

/**
 * Of plan's actions on a file import wrote, those on users and their rights, each with why the
 * file cannot avoid it. A password is among them only for a user the broker holds none for
 * (`passwordless`, by name, with its variable): a file cannot say "no password", so plan shows
 * (password) whatever the variable holds, and apply gives the user a password login it did not
 * have. Any other password is left out: the broker holds only a hash, so the file reads each from
 * a variable the user exports (the notes say so), and import cannot know it.
 */
export function userChanges(actions: Action[], passwordless: ReadonlyMap<string, string> = new Map()): PlannedChange[] {
  const out: PlannedChange[] = [];
  for (const a of actions) {
    if (!isUserAction(a)) continue;
    const r = subjectOf(a);
    if (a.op === "update" && r.kind === "user") {
      const variable = passwordless.get(r.name);
      const changed = variable ? a.changed : a.changed.filter((c) => c !== "password");
      const whys = [
        ...(changed.some((c) => c !== "password") ? [`the file gives a user topo's tag and the tags it lists`] : []),
        ...(variable && changed.includes("password")
          ? [
              `the broker holds no password for this user (it logs in with a client certificate, or not at all), and a file cannot say so: apply sets the value of \${${variable}} as its password, a password login it did not have`,
            ]
          : []),
      ];
      if (changed.length) out.push({ action: { ...a, changed }, why: whys.join("; and ") });
      continue;
    }
    out.push({
      action: a,
      why:
        r.kind === "user"
          ? `it carries topo's tag, but its rights here let it consume or publish to no service of the file, so the file leaves it out`
          : `the file gives a user the rights that follow from what it consumes and publishes, the same on every cluster where those services have queues (docs/users.md); import read those off the broker's rights, which allow more or other than that`,
    });
  }
  return out;
}
