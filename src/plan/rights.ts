// Pure: may the users apply works as carry out this plan? The management user writes vhosts,
// users, permissions and policies over HTTP, which its tags decide; the AMQP user declares, binds
// and deletes, and takes topo's lock, which its permissions on the vhost decide. Without these
// checks apply learnt of a missing right only at the write that needed it, one right a run, and
// after every other refusal the read could have named at once.

import type { Binding, ClusterPlan } from "../model.js";
import { subjectOf } from "../core/keys.js";
import { movesMessages } from "./moves.js";
import { applyMarkName, escapeRegex, holdingQueueName, lockQueueName } from "../core/naming.js";
import { names, permissionCommands, setUserTags, shellWord, shown, shownName } from "../core/words.js";
import { policyRegExp } from "../core/policy-pattern.js";

/** A management API tag that decides what a user may write (RabbitMQ 3.10 to 4.3). */
type Tag = "administrator" | "policymaker";

/**
 * What the plan's writes over HTTP need of the management user's tags: an administrator may do
 * everything; a policymaker may write policies on the vhosts it has rights on; creating a vhost,
 * and writing users and their permissions, are an administrator's.
 */
function tagsNeeded(plan: ClusterPlan): { tag: Tag; why: string[] }[] {
  const count = (kinds: string[]) => {
    const ops = plan.actions.filter((a) => kinds.includes(subjectOf(a).kind)).map((a) => a.op);
    return ["create", "update", "replace", "delete"].flatMap((op) => {
      const n = ops.filter((o) => o === op).length;
      return n ? [`${n} to ${op}`] : [];
    });
  };
  const admin: string[] = [];
  if (plan.actions.some((a) => a.op === "create" && a.after.kind === "vhost")) admin.push(`to create vhost ${plan.vhost}`);
  const users = count(["user", "permission", "topic-permission"]);
  if (users.length) admin.push(`to write users and their permissions: ${users.join(", ")}`);
  const policies = count(["policy"]);
  const out: { tag: Tag; why: string[] }[] = [];
  if (admin.length) out.push({ tag: "administrator", why: [...admin, ...(policies.length ? [`to write topo's policies: ${policies.join(", ")}`] : [])] });
  else if (policies.length) out.push({ tag: "policymaker", why: [`to write topo's policies: ${policies.join(", ")}`] });
  return out;
}

/**
 * The management user's missing tag for this plan, with the command that adds it and keeps the
 * tags it has (rabbitmqctl set_user_tags replaces them all); undefined when it has what it needs.
 */
export function tagRefusal(user: string, tags: readonly string[], plan: ClusterPlan): { tag: string; message: string; hint: string } | undefined {
  if (tags.includes("administrator")) return undefined;
  const need = tagsNeeded(plan).find((n) => !tags.includes(n.tag));
  if (!need) return undefined;
  const has = tags.length ? `has the tags ${tags.join(", ")}` : "has no tags";
  // Only an administrator may create a vhost; one who does lets a user without the tag go on.
  const creates = plan.actions.some((a) => a.op === "create" && a.after.kind === "vhost");
  const v = shellWord(plan.vhost);
  const byHand = creates ? `, or have an administrator create the vhost: rabbitmqctl add_vhost ${v} && rabbitmqctl set_permissions -p ${v} ${shellWord(user)} '.*' '.*' '.*'` : "";
  return {
    tag: need.tag,
    message: `user "${user}" ${has}, and apply's writes need ${need.tag} (${need.why.join("; ")}); the broker would refuse them (401 Not ${need.tag} user), so topo refuses the plan before anything is written`,
    hint: `${setUserTags(user, tags, need.tag)}${byHand}`,
  };
}

export interface VhostPermission {
  configure: string;
  write: string;
  read: string;
}

type Right = keyof VhostPermission;

/** A right apply needs on one exchange or queue. */
type Need = { right: Right; kind: "queue" | "exchange"; name: string };

/** What RabbitMQ checks to bind or unbind, over AMQP or the management API: write on the destination, read on the source. */
function rightsToBind(b: Pick<Binding, "source" | "destination" | "destinationType">): Need[] {
  return [
    { right: "write", kind: b.destinationType, name: b.destination },
    { right: "read", kind: "exchange", name: b.source },
  ];
}

/**
 * A test of whether a permission's pattern lets a name through, as RabbitMQ reads it: an
 * unanchored match, and the empty pattern matches nothing. It answers undefined where JavaScript
 * cannot read the pattern (PCRE only): then topo does not judge it.
 */
function allows(pattern: string): (name: string) => boolean | undefined {
  if (pattern === "") return () => false;
  const re = policyRegExp(pattern);
  return (name) => re?.test(name);
}

/**
 * What the AMQP user needs on the vhost to carry out the plan: configure and read on topo's lock
 * queue (declared, then consumed), configure on topo's apply mark and on every exchange and queue
 * the plan creates, replaces or deletes, write on the destination and read on the source of every
 * binding it makes, removes or makes again after a replace, and what a replace without loss moves
 * messages with (`movesNothing`: apply --allow-data-loss, which moves none).
 */
function rightsNeeded(plan: ClusterPlan, prefix: string, movesNothing: boolean): Need[] {
  const out: Need[] = [
    { right: "configure", kind: "queue", name: lockQueueName(prefix) },
    { right: "read", kind: "queue", name: lockQueueName(prefix) },
    { right: "configure", kind: "exchange", name: applyMarkName(prefix) },
  ];
  const bind = (b: Binding) => out.push(...rightsToBind(b));
  for (const a of plan.actions) {
    const r = subjectOf(a);
    if (r.kind === "queue" || r.kind === "exchange") {
      out.push({ right: "configure", kind: r.kind, name: r.name });
      if (a.op !== "replace") continue;
      // The bindings the old object took with it are made again.
      a.rebind.forEach(bind);
      // A queue replaced without loss (broker/replace.ts): its messages are read from it, go by
      // an exchange of the holding queue's name into that queue, are read from there and published
      // back by the default exchange (whose name in a permission is amq.default).
      if (movesMessages(a, movesNothing)) {
        const hold = holdingQueueName(r.name);
        out.push({ right: "read", kind: "queue", name: r.name }, { right: "write", kind: "queue", name: r.name });
        out.push({ right: "configure", kind: "queue", name: hold }, { right: "write", kind: "queue", name: hold }, { right: "read", kind: "queue", name: hold });
        out.push({ right: "configure", kind: "exchange", name: hold }, { right: "write", kind: "exchange", name: hold }, { right: "read", kind: "exchange", name: hold });
        out.push({ right: "write", kind: "exchange", name: DEFAULT_EXCHANGE });
      }
    } else if (r.kind === "binding") {
      bind(r);
    }
  }
  return out;
}

/** The default exchange, as RabbitMQ names it when it checks a permission. */
const DEFAULT_EXCHANGE = "amq.default";

/** How many names a right's widened pattern in the hint may list. */
const WIDEN_AT_MOST = 24;

/**
 * The AMQP user's permissions on the vhost against what apply needs of them; undefined when they
 * suffice, or when a pattern topo cannot read leaves it unsure. A user with no permissions there
 * at all is not judged here: its login is refused (530), and apply's login waits a while for
 * rights granted late to a vhost just created, then names them (broker/amqp.ts).
 */
export function permissionRefusal(
  user: string,
  vhost: string,
  permission: VhostPermission,
  plan: ClusterPlan,
  prefix: string,
  movesNothing = false,
): { message: string; hint: string } | undefined {
  return refusalOf(user, vhost, permission, rightsNeeded(plan, prefix, movesNothing), "");
}

/** A binding the management API removes by its properties_key: one with arguments (broker/remove-binding.ts). */
export interface UnbindByKey {
  source: string;
  destination: string;
  destinationType: "queue" | "exchange";
}

/**
 * The management user's own permissions on the vhost against the bindings apply removes through
 * the management API: RabbitMQ checks them there (write on the destination, read on the source),
 * not the AMQP user's, so a management user other than the AMQP user needs them too. Without them
 * apply stopped at that unbind, after its other writes (and a replace after it had bound the
 * holding queue). "none": it has no permissions on the vhost at all. Undefined when they suffice.
 */
export function managementUnbindRefusal(user: string, vhost: string, permission: VhostPermission | "none", unbinds: readonly UnbindByKey[]): { message: string; hint: string } | undefined {
  const needs = unbinds.flatMap(rightsToBind);
  const why = ` (the management API removes ${unbinds.length === 1 ? "a binding with arguments" : "bindings with arguments"} with the management user's own permissions, not the AMQP user's)`;
  return refusalOf(user, vhost, permission === "none" ? undefined : permission, needs, why);
}

/** A binding the management user may not remove: the broker's reply to an unbind asked as that user (broker/unbind-probe.ts). */
export interface RefusedUnbind {
  binding: Pick<Binding, "source" | "destination" | "destinationType" | "routingKey">;
  reply: string;
}

/**
 * What a management user that may not read permissions (not an administrator) was refused when
 * topo asked, as that user over AMQP, the unbinds apply makes through the management API with
 * arguments no binding has: the broker's own replies, since its patterns cannot be read.
 */
export function askedUnbindRefusal(user: string, vhost: string, refused: readonly RefusedUnbind[]): { message: string; hint: string } | undefined {
  if (!refused.length) return undefined;
  // In the binding notation, each name safe to print (words.ts shownName): the broker's names are
  // whoever declared them's to choose, and its reply repeats them.
  const listed = refused.slice(0, WIDEN_AT_MOST).map(({ binding: b, reply }) => `${shownName(b.source)} -> ${b.destinationType === "exchange" ? "exchange " : ""}${shownName(b.destination)} [${shownName(b.routingKey)}]: ${shown(reply)}`);
  const more = refused.length > listed.length ? `; and ${refused.length - listed.length} more` : "";
  return {
    message: `user ${user} may not remove ${refused.length === 1 ? "a binding" : `${refused.length} bindings`} with arguments that apply removes through the management API, which checks the management user's own permissions in vhost ${vhost}, not the AMQP user's; asked as ${user} with an unbind that matches no binding, the broker refused: ${listed.join("; ")}${more}`,
    hint: `removing a binding needs write on its destination and read on its source (from a topic exchange, also the read topic permission of its routing key): ${permissionCommands(user, vhost)}; or give ${user} the administrator tag, so that topo reads its permissions and names the patterns that let it through`,
  };
}

/** `given` undefined: the user has no permissions on the vhost at all. */
function refusalOf(user: string, vhost: string, given: VhostPermission | undefined, needs: readonly Need[], why: string): { message: string; hint: string } | undefined {
  // No permissions at all: each right is one that matches nothing.
  const permission = given ?? { configure: "", write: "", read: "" };
  const set = (p: VhostPermission) => `rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(user)} ${shellWord(p.configure)} ${shellWord(p.write)} ${shellWord(p.read)}`;
  // Each pattern compiled once, and each refused object kept once by a set: a plan of 25,000
  // services that a user's permissions refuse took 57 s to say so.
  const test = { configure: allows(permission.configure), write: allows(permission.write), read: allows(permission.read) };
  const refused = new Map<string, Set<string>>();
  const missing: Record<Right, Set<string>> = { configure: new Set(), write: new Set(), read: new Set() };
  for (const need of needs) {
    if (test[need.right](need.name) !== false) continue;
    const key = given ? `its ${need.right} permission (${permission[need.right]}) does not match` : `it needs ${need.right} on`;
    const objects = refused.get(key) ?? refused.set(key, new Set()).get(key)!;
    objects.add(`${need.kind} ${need.name}`);
    missing[need.right].add(need.name);
  }
  if (!refused.size) return undefined;
  const lacks = [...refused].map(([key, objects]) => `${key} ${names([...objects])}`);
  // Each pattern as it is, widened by exactly the names it refused: a user whose rights a
  // platform team narrowed to its prefix (^mp.*) keeps them, and gains topo's lock and mark only.
  // Past a few dozen names (a user with no rights, and thousands of services) the command would be
  // pages long: that right is left for the reader to write, as the objects named above need.
  const widened = (right: Right): string => {
    const more = [...missing[right]];
    if (!more.length) return permission[right];
    if (more.length > WIDEN_AT_MOST) return right.toUpperCase();
    const exact = `^(?:${more.map(escapeRegex).join("|")})$`;
    return permission[right] === "" ? exact : `(?:${permission[right]})|${exact}`;
  };
  const exactly = (["configure", "write", "read"] as const).every((r) => missing[r].size <= WIDEN_AT_MOST);
  return {
    message: `${given ? `user ${user}'s permissions in vhost ${vhost} do not let apply work` : `user ${user} has no permissions in vhost ${vhost}`}${why}: ${lacks.join("; ")}; the broker would refuse apply at the first of these, so topo refuses the plan before anything is written`,
    hint: `${set({ configure: widened("configure"), write: widened("write"), read: widened("read") })} ${exactly ? (given ? "keeps what they allow now and adds exactly what is named above" : "grants exactly what is named above") : "sets them; write each capitalised one to match what is named above"} (docs/users.md lists what topo needs); rabbitmqctl list_user_permissions ${shellWord(user)} shows them now`,
  };
}
