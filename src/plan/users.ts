// Pure: the users the file names that topo may not take: a broker user topo did not create (no
// marker tag topo.<prefix>) is never changed or deleted, unless the file adopts it.

import type { ActualCluster, DesiredCluster } from "../model.js";
import { markedAsOnly, otherMarkers, TOPO_NAMESPACE, userMarkerTag } from "../core/naming.js";

export interface UserConflict {
  user: string;
  message: string;
  hint: string;
}

/**
 * Why the file's users were not compared on this cluster, where they were not: a file with a
 * users section manages users on every broker it names, even where none of its users gets rights
 * (`users: {}`, or users whose services are all on another broker): there it deletes the marked
 * users it dropped. A management user who may not list users (a monitoring user's drift check)
 * saw none of them, and plan and apply said "No changes." over marked users the file deletes.
 */
export function usersUnread(desired: DesiredCluster, actual: ActualCluster): string | undefined {
  return desired.users ? actual.usersUnreadable : undefined;
}

export function userConflicts(desired: DesiredCluster, actual: ActualCluster, prefix: string): UserConflict[] {
  if (!desired.users || actual.usersUnreadable !== undefined) return [];
  const marker = userMarkerTag(prefix);
  const existing = new Map(actual.resources.flatMap((r) => (r.kind === "user" ? [[r.name, r.tags] as const] : [])));
  const out: UserConflict[] = [];
  const adopted = new Set(desired.users.adopt);
  for (const r of desired.resources) {
    if (r.kind !== "user") continue;
    const tags = existing.get(r.name);
    if (!tags || markedAsOnly(tags, prefix)) continue;
    // adopt takes over a user made by hand, never one another topology manages: its apply would
    // change the password back, or delete the user, under this file's services. Nor one that
    // carries another prefix's marker beside this one's: this apply would take that marker off.
    const other = otherMarkers(tags, prefix)[0];
    if (!other && adopted.has(r.name)) continue;
    out.push({
      user: r.name,
      message: other
        ? tags.includes(marker)
          ? `user ${r.name} exists and belongs to another topology as well (it carries ${other} beside ${marker}); topo does not take it over`
          : `user ${r.name} exists and belongs to another topology (its tag is ${other}, not ${marker}); topo does not take it over`
        : `user ${r.name} exists without topo's tag ${marker} (topo did not create it, or the tag was taken off it); topo never changes a user it does not manage`,
      hint: other
        ? `give the service a user name of its own; or take user ${r.name} out of the topology of prefix "${other.slice(TOPO_NAMESPACE.length)}" first (its apply deletes the user), then apply this file, which creates it`
        : `to let topo manage user ${r.name} (its password, tags and permissions in this file's vhosts), set users.${r.name}.adopt: true; or give the service a user name of its own`,
    });
  }
  return out;
}
