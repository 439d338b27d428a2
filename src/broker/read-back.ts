// Read again, one GET each, the objects an apply wrote (plan/read-back.ts decides which), with
// the same columns as the whole read and normalised by the same functions; then the source
// exchanges of created bindings that were not found.

import type { ClusterTarget } from "../model.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";
import { BINDING_COLUMNS, EXCHANGE_COLUMNS, QUEUE_COLUMNS } from "./read.js";
import { bindingItem, exchangeItem, namedItem, queueItem } from "./answers.js";
import type { ApiBinding, ApiExchange, ApiQueue } from "./state.js";
import { bindingFrom, exchangeFrom, factsFrom, queueFrom } from "./state.js";
import { isBrokersOwn } from "../core/naming.js";
import { addressable } from "./remove-binding.js";
import type { ReadBackFound, ReadBackScope } from "../plan/read-back.js";
import { sourcesToRead } from "../plan/read-back.js";

export async function readBack(client: ManagementClient, target: ClusterTarget, scope: ReadBackScope): Promise<ReadBackFound> {
  const v = vh(target.amqp.vhost);
  const q = (name: string) => `/api/queues/${v}/${encodeURIComponent(name)}`;
  const x = (name: string) => `/api/exchanges/${v}/${encodeURIComponent(name)}`;
  // A 404 is an object that is not there (any more): its bindings are none.
  // Each answer must be the object asked for (broker/answers.ts): an error with status 200 or
  // another request's answer was taken for a read back that found the object gone, or crashed.
  const of = `bindings of vhost ${target.amqp.vhost}`;
  const bindings = (path: string) => client.list<ApiBinding>(`${path}?columns=${BINDING_COLUMNS}`, [404], {}, { check: bindingItem(target.amqp.vhost), of }).then((b) => b ?? []);
  const exchange = (name: string) => client.one<ApiExchange>(`${x(name)}?disable_stats=true&columns=${EXCHANGE_COLUMNS}`, namedItem(target.amqp.vhost, name, exchangeItem(target.amqp.vhost)), `exchange ${name} of vhost ${target.amqp.vhost}`);
  const queue = (name: string) => client.one<ApiQueue>(`${q(name)}?disable_stats=true&columns=${QUEUE_COLUMNS}`, namedItem(target.amqp.vhost, name, queueItem(target.amqp.vhost)), `queue ${name} of vhost ${target.amqp.vhost}`);
  // An exchange named "." or ".." (another program's, bound to the file's queues) has no path of
  // its own (remove-binding.ts addressable): it is found in the vhost's list (read once for both),
  // and a pair of ends with such a name by the bindings of its other end, or of the vhost.
  let vhostExchanges: Promise<ApiExchange[] | undefined> | undefined;
  const exchangesOfVhost = () => (vhostExchanges ??= client.list<ApiExchange>(`/api/exchanges/${v}?disable_stats=true&columns=${EXCHANGE_COLUMNS}`, [404], {}, { check: exchangeItem(target.amqp.vhost), of: `exchanges of vhost ${target.amqp.vhost}` }));
  const sourceNamed = async (name: string) => (addressable(name) ? exchange(name) : ((await exchangesOfVhost()) ?? []).find((e) => e.name === name));
  const pair = async (p: ReadBackScope["pairs"][number]): Promise<ApiBinding[]> => {
    const dest = p.destinationType === "queue" ? "q" : "e";
    const path = addressable(p.source)
      ? addressable(p.destination)
        ? `/api/bindings/${v}/e/${encodeURIComponent(p.source)}/${dest}/${encodeURIComponent(p.destination)}`
        : `${x(p.source)}/bindings/source`
      : addressable(p.destination)
        ? p.destinationType === "queue"
          ? `${q(p.destination)}/bindings`
          : `${x(p.destination)}/bindings/destination`
        : `/api/bindings/${v}`;
    return (await bindings(path)).filter((b) => b.source === p.source && b.destination === p.destination && b.destination_type === p.destinationType);
  };
  const [queues, exchanges, sources, lists] = await Promise.all([
    Promise.all(scope.queues.map(queue)),
    Promise.all(scope.exchanges.map(exchange)),
    Promise.all(scope.sources.filter((name) => !isBrokersOwn(name)).map(sourceNamed)),
    Promise.all([
      ...scope.queues.map((name) => bindings(`${q(name)}/bindings`)),
      ...scope.exchanges.flatMap((name) => [bindings(`${x(name)}/bindings/source`), bindings(`${x(name)}/bindings/destination`)]),
      ...scope.pairs.map(pair),
    ]),
  ]);
  const present = <T>(xs: (T | undefined)[]): T[] => xs.filter((e): e is T => e !== undefined);
  const bindingsFound = lists.flat().flatMap((b) => (b.source === "" ? [] : [bindingFrom(b)]));
  // The source of a binding apply created is read only where no binding from it was found.
  const sourcesRead = sourcesToRead(scope, bindingsFound).filter((name) => !isBrokersOwn(name));
  const lateSources = await Promise.all(sourcesRead.map(sourceNamed));
  return {
    queues: present(queues).map((a) => ({ queue: queueFrom(a), facts: factsFrom(a) })),
    exchanges: present([...exchanges, ...sources, ...lateSources]).map(exchangeFrom),
    bindings: bindingsFound,
    sourcesRead,
  };
}
