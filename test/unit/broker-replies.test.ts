// The broker's words, read whole, and advice only where they say what caused a refusal.

import { describe, expect, it } from "vitest";
import { hintFor, limitHint, replyText } from "../../src/broker/amqp.js";

const closed = (code: number, message: string) => Object.assign(new Error(`Channel closed by server: ${code} (PRECONDITION-FAILED) with message "${message}"`), { code });

describe("broker replies", () => {
  it("keeps the whole reply, quotes and all", () => {
    const e = closed(406, `PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost 'v': {routing_key_but_no_dlx_defined,<<"k">>}`);
    expect(replyText(e).text).toBe(`406 PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost 'v': {routing_key_but_no_dlx_defined,<<"k">>}`);
  });

  it("tells the causes of a 406 apart, and gives none it cannot place", () => {
    expect(hintFor(406, "406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost 'v'")).toMatch(/exists with other properties/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue 'q' of queue type rabbit_classic_queue")).toMatch(/refuses the argument/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - invalid arg 'x-consumer-timeout'")).not.toMatch(/exists with other properties/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - queue 'q' in vhost 'v' not empty")).toMatch(/holds messages/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - queue 'q' in vhost 'v' in use")).toMatch(/consumers/);
    expect(hintFor(406, "406 PRECONDITION_FAILED - something new")).toBeUndefined();
    // A refused access: the broker does not say which permission, the operation does.
    const refused = (kind: string, name: string) => `403 ACCESS_REFUSED - access to ${kind} '${name}' in vhost 'hs sync' refused for user 'svc'`;
    expect(hintFor(403, refused("queue", "mpnew.async"), "declare queue mpnew.async")).toBe(
      "user svc's configure permission in vhost hs sync does not match queue mpnew.async: rabbitmqctl list_user_permissions svc shows its patterns, and rabbitmqctl set_permissions -p 'hs sync' svc CONFIGURE WRITE READ sets them (docs/users.md lists what topo needs)",
    );
    expect(hintFor(403, refused("queue", "mpnew.async"), "bind mpnew -> mpnew.async [mpnew.async.#]")).toMatch(/^user svc's write permission .* queue mpnew\.async/);
    expect(hintFor(403, refused("exchange", "mpnew"), "bind mpnew -> mpnew.async [mpnew.async.#]")).toMatch(/^user svc's read permission .* exchange mpnew:/);
    // A replace's steps are named after it; the step says which permission, and a publish needs write.
    expect(hintFor(403, refused("queue", "mpnew.async"), "replace queue mpnew.async: delete old mpnew.async")).toMatch(/^user svc's configure permission .* queue mpnew\.async:/);
    expect(hintFor(403, refused("exchange", "mpnew"), "replace queue mpnew.async: bind topo.hold.mpnew.async")).toMatch(/^user svc's read permission .* exchange mpnew:/);
    expect(hintFor(403, refused("queue", "topo.hold.mpnew.async"), "replace queue mpnew.async: bind topo.hold.mpnew.async")).toMatch(/^user svc's write permission .* queue topo\.hold\.mpnew\.async:/);
    expect(hintFor(403, refused("exchange", "amq.default"), "publish through exchange amq.default (the default exchange), as replace queue q does")).toMatch(/^user svc's write permission .* exchange amq\.default:/);
    expect(hintFor(403, refused("exchange", "mpdst"), "bind mpsrc -> mpdst [k]")).toMatch(/^user svc's write permission .* exchange mpdst:/);
    expect(hintFor(403, "403 ACCESS_REFUSED - something else")).toMatch(/lacks configure\/write\/read permission/);
    expect(hintFor(541, "541 INTERNAL_ERROR")).not.toMatch(/transient non-exclusive queues\) looks like: permit/);
  });

  it("names each of the broker's limits by the words of RabbitMQ 3.10, 4.0 and 4.3, and where it is set", () => {
    // The texts as rabbit_reader, rabbit_channel and rabbit_queue_type word them (3.10: ~s; 4.x: ~ts;
    // 4.3 drops the parentheses around a channel limit).
    const vhostConns = limitHint("530 NOT_ALLOWED - access to vhost 'sync' refused for user 'svc': connection limit (5) is reached");
    expect(vhostConns?.hint).toContain(`vhost "sync" has reached its limit of 5 connections (max-connections; rabbitmqctl list_vhost_limits -p sync shows it)`);
    expect(vhostConns?.hint).toContain(`rabbitmqctl set_vhost_limits -p sync '{"max-connections": 6}'`);
    expect(vhostConns?.transient).toBeUndefined();
    expect(limitHint("530 NOT_ALLOWED - access to vhost 'a b' refused for user 'svc': connection limit (0) is reached")?.hint).toContain(
      `0 means the vhost accepts none); topo needs one connection per cluster (plan to check its login, apply to write): raise the limit with rabbitmqctl set_vhost_limits -p 'a b'`,
    );
    expect(limitHint("530 NOT_ALLOWED - access to vhost 'sync' refused for user 'svc': connection limit cannot be queried, timeout")?.transient).toBe(true);
    expect(limitHint("530 NOT_ALLOWED - connection refused for user 'svc': user connection limit (1) is reached")?.hint).toContain(
      `user "svc" has reached its limit of 1 open connection (max-connections; rabbitmqctl list_user_limits --user svc shows it)`,
    );
    expect(limitHint("530 NOT_ALLOWED - connection refused: node connection limit (100) is reached")?.hint).toContain("connection_max in rabbitmq.conf");
    for (const text of [
      "530 NOT_ALLOWED - number of channels opened for user 'svc' has reached the maximum allowed user limit of (8)",
      "530 NOT_ALLOWED - number of channels opened for user 'svc' has reached the maximum allowed user limit of 8",
    ]) {
      expect(limitHint(text)?.hint).toContain(`user "svc" may have at most 8 channels open`);
      expect(hintFor(530, text)).toContain(`rabbitmqctl set_user_limits svc '{"max-channels": 73}'`);
      expect(limitHint(text)?.hint).toContain("apply with --parallelism 7 or fewer");
    }
    expect(limitHint("530 NOT_ALLOWED - number of channels opened for user 'svc' has reached the maximum allowed user limit of (1)")?.hint).toContain("--parallelism 1 or fewer");
    // topo's own words when a connection's channel_max is used up (amqplib's would be "No channels left to allocate").
    expect(limitHint("no channel left: the broker lets one connection open 1 (its channel_max), and topo uses them all")?.hint).toContain(
      "the broker's channel_max (in rabbitmq.conf) lets a connection open 1 channel;",
    );
    expect(hintFor(530, "530 NOT_ALLOWED - number of channels opened on node 'rabbit@a' has reached the maximum allowed limit of 2048")).toContain("channel_max_per_node");
    expect(hintFor(406, "406 PRECONDITION_FAILED - cannot declare queue 'mpa.async': queue limit in vhost 'async' (1) is reached")).toContain(
      `vhost "async" may hold at most 1 queue (max-queues; rabbitmqctl list_vhost_limits -p async shows it)`,
    );
    expect(hintFor(406, "406 PRECONDITION_FAILED - cannot declare queue 'topo.mp.lock': queue limit in vhost 'async' (3) is reached")).toContain(
      "topo needs room for its own queue topo.mp.lock beside the file's while apply runs",
    );
    expect(hintFor(406, "406 PRECONDITION_FAILED - cannot declare queue 'q': queue limit in cluster (10) is reached")).toContain("cluster_queue_limit");
    // Not a limit: a user without rights on the vhost, a vhost that is down.
    expect(limitHint("530 NOT_ALLOWED - access to vhost 'sync' refused for user 'svc'")).toBeUndefined();
    expect(limitHint("541 INTERNAL_ERROR - access to vhost 'sync' refused for user 'svc': vhost 'sync' is down")).toBeUndefined();
    // A 530 that is not a limit keeps the general advice.
    expect(hintFor(530, "530 NOT_ALLOWED - vhost x not found")).toMatch(/does not exist/);
  });
});

describe("an exclusive queue's refusal (405)", () => {
  it("says how to find its owner in the queue's own vhost: rabbitmqctl lists vhost / unless told another", () => {
    const text = "405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mpjay.sync' in vhost 'advE sync'. It could be originally declared on another connection";
    expect(hintFor(405, text)).toContain("rabbitmqctl list_queues -p 'advE sync' name owner_pid");
    // A reply cut before the vhost: the general advice.
    expect(hintFor(405, "405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'x'")).toContain("rabbitmqctl list_queues name owner_pid");
  });
});
