// Pure: tags in the file's users section that give a user more than the rights topo derives for it.
// topo's users are least-privilege by design (docs/users.md); these tags reach past permissions,
// so the file may set them, but validate, plan and apply warn at each one.

import { isObject } from "./places.js";
import { closest } from "../core/spelling.js";

/** Tags that let a user do what no permission topo writes allows, and what each lets it do. */
const BROAD_TAGS: ReadonlyMap<string, string> = new Map([
  ["administrator", "manage every vhost, user, permission and policy of the broker through the management API"],
  ["policymaker", "set policies on the vhosts it has rights on, which can cap, expire or dead-letter any service's queue there"],
  ["impersonator", "publish messages that carry another user's user_id"],
]);

/**
 * The tags RabbitMQ itself gives meaning to. It stores any other tag as it is written (an
 * authentication backend may read one), and grants nothing for it: "managment" or "Monitoring"
 * (tags are compared exactly) leaves the user without the management API, and no one says so
 * until its first login.
 */
const RABBITMQ_TAGS = ["administrator", "monitoring", "policymaker", "management", "impersonator"];

/**
 * A warning at each tag of users.<name>.tags that reaches past the user's permissions, and at
 * each that is one slip from a tag RabbitMQ knows (a custom tag far from all of them is left be).
 */
export function tagWarnings(data: unknown): { path: (string | number)[]; message: string }[] {
  if (!isObject(data) || !isObject(data.users)) return [];
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const [name, u] of Object.entries(data.users)) {
    if (!isObject(u) || !Array.isArray(u.tags)) continue;
    u.tags.forEach((tag, i) => {
      const what = typeof tag === "string" ? BROAD_TAGS.get(tag) : undefined;
      if (what) out.push({ path: ["users", name, "tags", i], message: `tag ${JSON.stringify(tag)} lets user ${name} ${what}: more than the rights topo derives for it from consumes and publishes; leave it out unless that is meant` });
      const meant = typeof tag === "string" && !RABBITMQ_TAGS.includes(tag) && !namespaced(tag) ? closest(tag, RABBITMQ_TAGS) : undefined;
      if (meant) {
        out.push({
          path: ["users", name, "tags", i],
          message: `tag ${JSON.stringify(tag)} is no tag RabbitMQ knows (it compares tags exactly), so it gives user ${name} nothing; did you mean "${meant}"? (RabbitMQ's tags: ${RABBITMQ_TAGS.join(", ")})`,
        });
      }
    });
  }
  return out;
}

/**
 * A custom tag made of a RabbitMQ tag and a part of its own, joined by "-", "_" or "." (the schema
 * allows no other): "monitoring_ro", "management-ui", "ops.monitoring" are written so on purpose,
 * not slips, though within a few edits of the tag they hold.
 */
function namespaced(tag: string): boolean {
  return tag.split(/[-_.]/).some((part, _i, parts) => parts.length > 1 && RABBITMQ_TAGS.includes(part));
}
