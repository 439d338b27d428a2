// Pure: tags in the file's users section that give a user more than the rights topo derives for it.
// topo's users are least-privilege by design (docs/users.md); these tags reach past permissions,
// so the file may set them, but validate, plan and apply warn at each one.

import { isObject } from "./places.js";

/** Tags that let a user do what no permission topo writes allows, and what each lets it do. */
const BROAD_TAGS: ReadonlyMap<string, string> = new Map([
  ["administrator", "manage every vhost, user, permission and policy of the broker through the management API"],
  ["policymaker", "set policies on the vhosts it has rights on, which can cap, expire or dead-letter any service's queue there"],
  ["impersonator", "publish messages that carry another user's user_id"],
]);

/** A warning at each tag of users.<name>.tags that reaches past the user's permissions. */
export function broadTags(data: unknown): { path: (string | number)[]; message: string }[] {
  if (!isObject(data) || !isObject(data.users)) return [];
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const [name, u] of Object.entries(data.users)) {
    if (!isObject(u) || !Array.isArray(u.tags)) continue;
    u.tags.forEach((tag, i) => {
      const what = typeof tag === "string" ? BROAD_TAGS.get(tag) : undefined;
      if (what) out.push({ path: ["users", name, "tags", i], message: `tag ${JSON.stringify(tag)} lets user ${name} ${what}: more than the rights topo derives for it from consumes and publishes; leave it out unless that is meant` });
    });
  }
  return out;
}
