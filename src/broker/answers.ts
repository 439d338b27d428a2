// What an answer of the management API must look like to be taken for the broker's word on a
// vhost. A cache or proxy in between can answer one request with another's listing (the queues'
// for the bindings'), another vhost's, or an error object with status 200: taken as it came, a
// plan crashed on it, or planned to create what exists, or said "No changes." of a vhost it never
// saw (measured through such proxies). Each listing item names its vhost (the `vhost` column), and
// has the fields of its kind.

type Item = Record<string, unknown>;

/** Is this item one of `vhost`'s objects of the kind `check` describes? */
export type ItemCheck = (item: unknown) => boolean;

const isItem = (v: unknown): v is Item => typeof v === "object" && v !== null && !Array.isArray(v);
const text = (v: unknown): v is string => typeof v === "string";

export const exchangeItem = (vhost: string): ItemCheck => (e) => isItem(e) && e.vhost === vhost && text(e.name) && text(e.type);
// No queue is named "" (the exchange listing's first item is): an exchange listing is no queue listing.
export const queueItem = (vhost: string): ItemCheck => (q) => isItem(q) && q.vhost === vhost && text(q.name) && q.name !== "";
export const bindingItem = (vhost: string): ItemCheck => (b) =>
  isItem(b) && b.vhost === vhost && text(b.source) && text(b.destination) && text(b.routing_key) && (b.destination_type === "queue" || b.destination_type === "exchange");
export const policyItem = (vhost: string): ItemCheck => (p) => isItem(p) && p.vhost === vhost && text(p.name) && text(p.pattern) && isItem(p.definition);
export const topicPermissionItem = (vhost: string): ItemCheck => (t) => isItem(t) && t.vhost === vhost && text(t.user) && text(t.exchange) && text(t.write) && text(t.read);
export const nodeItem: ItemCheck = (n) => isItem(n) && text(n.name) && typeof n.running === "boolean";
/** One object of the vhost, by name, as a GET of it answers. */
export const namedItem = (vhost: string, name: string): ItemCheck => (o) => isItem(o) && o.vhost === vhost && o.name === name;
