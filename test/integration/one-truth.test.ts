// Issue #11, against the real broker: plan, route and import say the same thing about the same
// broker, and the files people really write (merge keys, typed ${VAR}) load and apply.

import { readFileSync } from "node:fs";
import amqplib from "amqplib";
import { describe, expect, it } from "vitest";
import { amqpUrl, api, broker, getQueue, messageCount, publish, runCli, uniqueName, vh, withChannel, writeFile, writeTopology, testVhosts } from "../helpers/broker.js";

const { vhosts, fresh } = testVhosts();

describe("one truth about mirroring", () => {
  it("a user policy with ha-mode all mirrors the queue: plan does not call it unmirrored, and import agrees", async () => {
    const { file, sync } = fresh(["mpha"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // Without "ha-sync-mode": "automatic" (RabbitMQ's default is manual) a mirror added later holds
    // none of what was queued before it: mirrored, but not as mirrored: true means.
    const manual = await api("PUT", `/api/policies/${vh(sync)}/team-ha`, { pattern: "^mpha\\.sync$", definition: { "ha-mode": "all" }, "apply-to": "queues", priority: 10 });
    expect([201, 204]).toContain(manual.status);
    const drift = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(drift.code).toBe(2);
    expect(drift.stdout).toContain(`! degraded: 1 queue is mirrored by policy "team-ha" without "ha-sync-mode": "automatic" (it has none, and RabbitMQ's default is manual): mpha.sync;`);

    const put = await api("PUT", `/api/policies/${vh(sync)}/team-ha`, { pattern: "^mpha\\.sync$", definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, "apply-to": "queues", priority: 10 });
    expect([201, 204]).toContain(put.status);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/! warning: policy "team-ha" \(priority 10\) shadows topo's mirroring policy \(priority 0\) on 1 queue \(mpha\.sync\): it has "ha-mode": "all", so they are mirrored/);
    expect(plan.stdout).not.toMatch(/not mirrored|add "ha-mode"|degraded/);
    expect(plan.stdout).toMatch(/No changes\./);

    const imported = await runCli(["import", "-f", file, "--cluster", "sync"]);
    expect(imported.code).toBe(0);
    const said = imported.stdout.replace(/\n#\s+/g, " ");
    expect(said).toMatch(/policy team-ha \(pattern .*, priority 10, ha-mode="all", ha-sync-mode="automatic"\): a user's policy; it mirrors mpha\.sync, which the file marks mirrored: true/);
    expect(imported.stdout).toMatch(/sync: \{ cluster: sync, durable: false, mirrored: true \}/);
  });

  // Only monitoring users may list nodes; without them a missing mirror or a node that is down
  // cannot be seen, and plan said "No changes." as if it had looked.
  it("a management user that may not list the nodes: plan says mirroring was not verified", async () => {
    const { sync, async } = fresh(["mpnv"]);
    const user = uniqueName("policymaker");
    // A tag of its own besides policymaker, which the advice to add monitoring must keep.
    expect((await api("PUT", `/api/users/${user}`, { password: "pm-pw-1", tags: "policymaker,deployer" })).status).toBeLessThan(300);
    try {
      for (const v of [sync, async]) {
        expect((await api("PUT", `/api/vhosts/${vh(v)}`, {})).status).toBeLessThan(300);
        expect((await api("PUT", `/api/permissions/${vh(v)}/${user}`, { configure: ".*", write: ".*", read: ".*" })).status).toBeLessThan(300);
      }
      const file = writeTopology({ sync, async, services: ["mpnv"], credentials: { user, password: "pm-pw-1" } });
      const applied = await runCli(["apply", "-f", file]);
      expect(applied.code, applied.stderr).toBe(0);
      // Nor does apply say the broker matches the file where it could not read it back.
      expect(applied.stdout + applied.stderr).toMatch(/cluster sync: \d+ changes applied; the broker matches the file in what topo could read \(not compared: mirroring\)/);
      expect(applied.stdout).toMatch(/^Apply complete: \d+ changes made; every cluster matches the file in what topo could read \(not compared: mirroring; see "! warning" above\)\.$/m);
      const plan = await runCli(["plan", "-f", file]);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toContain(
        `! warning: mirroring not verified: the management user ${user} may not list the cluster's nodes (it needs the monitoring tag), so topo cannot tell whether 1 queue the file mirrors (mpnv.sync) has a mirror on every running node, nor whether a node is down`,
      );
      // set_user_tags replaces a user's tags: the command keeps the ones it has.
      expect(plan.stdout).toContain(`give ${user} the monitoring tag besides its others: rabbitmqctl set_user_tags ${user} deployer policymaker monitoring (set_user_tags replaces the user's tags`);
      // Nor does its last line say "No changes." of what it did not look at.
      expect(plan.stdout).toMatch(/^No changes in what plan compared; not compared: mirroring \(see "! warning" above\)\.$/m);
      expect(plan.stdout).not.toMatch(/^No changes\.$/m);
    } finally {
      await api("DELETE", `/api/users/${user}`);
    }
  });

  // A queue the file marks mirrored: true that another policy keeps unmirrored is drift topo
  // cannot repair: apply still succeeds (the queues work), but it said "every cluster matches the
  // file", which was untrue.
  it("apply with a degraded cluster does not say that every cluster matches the file, and its --json names what is degraded", async () => {
    const { file, sync } = fresh(["mpdg", "mpdh"]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/policies/${vh(sync)}/team-limits`, { pattern: "^mpdg\\.sync$", definition: { "max-length": 1000 }, "apply-to": "queues", priority: 10 });
    expect([201, 204]).toContain(put.status);
    const unbind = async () => {
      const del = await api("DELETE", `/api/bindings/${vh(sync)}/e/mpdh/q/mpdh.sync/mpdh.sync.%23`);
      expect(del.status).toBe(204);
    };

    await unbind();
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/! degraded: 1 queue is not mirrored because another policy applies to it: mpdg\.sync/);
    expect(applied.stdout).not.toMatch(/matches the file/);
    expect(applied.stderr).not.toMatch(/matches the file/);
    // The policy's max-length is drift of its own: the file gives mpdg.sync no limit.
    expect(applied.stdout).toMatch(/! degraded: policy "team-limits" sets max-length 1000 on 1 queue \(mpdg\.sync\)/);
    expect(applied.stdout).toMatch(/Apply complete: 1 change made; 2 degraded \(topo cannot repair them: see "! degraded" above\)\./);

    await unbind();
    const json = await runCli(["apply", "-f", file, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const j = JSON.parse(json.stdout);
    expect(j.applied).toContainEqual({
      name: "sync",
      status: "applied",
      changes: 1,
      degraded: [expect.stringMatching(/not mirrored because another policy applies to it: mpdg\.sync/), expect.stringMatching(/^policy "team-limits" sets max-length 1000 on 1 queue \(mpdg\.sync\)/)],
      notCompared: [],
    });
    expect(j.applied).toContainEqual({ name: "async", status: "unchanged", changes: 0, degraded: [], notCompared: [] });

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code).toBe(2);
  });
});

describe("policies that limit the file's queues", () => {
  // RabbitMQ applies the lowest of a queue's argument, its policy's and its operator policy's
  // length, bytes, TTL and expiry. The arguments stay the file's, so a plan that compared only
  // them said "No changes." (exit 0) for a queue that dropped what the file says it keeps.
  it("an operator policy or a user's policy that limits a queue the file leaves unlimited is degraded, and the broker does drop what the file says it keeps", async () => {
    const { file, sync, async } = fresh([
      { name: "mpcap", sync: false },
      { name: "mpttl", sync: false },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const cap = await api("PUT", `/api/operator-policies/${vh(async)}/cap`, { pattern: "^mpcap\\.async$", definition: { "max-length": 2 }, "apply-to": "queues", priority: 0 });
    expect(cap.status).toBeLessThan(300);
    const short = await api("PUT", `/api/policies/${vh(async)}/short`, { pattern: "^mpttl\\.async$", definition: { "message-ttl": 60000 }, "apply-to": "queues", priority: 0 });
    expect(short.status).toBeLessThan(300);
    // The broker applies a policy to its queues a moment after the PUT answers: publish until
    // the cap shows, then the queue holds 2 of the 5 messages the file says it keeps.
    for (let i = 0; i < 50; i++) {
      await publish(async, "mpcap", "mpcap.async.x", ["1", "2", "3", "4", "5"]);
      if ((await messageCount(async, "mpcap.async")) === 2) break;
      await withChannel(async, (ch) => ch.purgeQueue("mpcap.async"));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await messageCount(async, "mpcap.async")).toBe(2);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(
      `! degraded: operator policy "cap" sets max-length 2 on 1 queue (mpcap.async) and the file gives it no x-max-length: the queue keeps at most 2 messages, not as the file says; change operator policy "cap" (rabbitmqctl list_operator_policies -p ${async}), or write x-max-length: 2 for it in the file, so that it says what the broker does`,
    );
    expect(plan.stdout).toContain(`! degraded: policy "short" sets message-ttl 60000 on 1 queue (mpttl.async) and the file gives it no x-message-ttl: the queue expires messages after 60 s, not as the file says`);
    expect(plan.stdout).toMatch(/^No changes\. 2 degraded \(topo cannot repair them: see "! degraded" above\)\.$/m);
    const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
    expect(json.summary.degraded).toBe(2);
    expect(json.clusters.find((c: { name: string }) => c.name === "async").degraded).toEqual([expect.stringMatching(/^operator policy "cap" sets max-length 2/), expect.stringMatching(/^policy "short" sets message-ttl 60000/)]);

    // Apply writes what differs and then says the broker differs from the file, never that it matches.
    await api("DELETE", `/api/bindings/${vh(async)}/e/mpttl/q/mpttl.async/mpttl.async.%23`);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(`${applied.stdout}${applied.stderr}`).not.toMatch(/matches the file/);
    expect(applied.stdout).toMatch(/Apply complete: 1 change made; 2 degraded/);

    // A file that says what the broker does is no drift: the cap at the file's own limit.
    await api("DELETE", `/api/policies/${vh(async)}/short`);
    await api("PUT", `/api/operator-policies/${vh(async)}/cap`, { pattern: "^mpcap\\.async$", definition: { "max-length": 2000 }, "apply-to": "queues", priority: 0 });
    const capped = writeTopology({ sync, async, services: [{ name: "mpcap", sync: false, async: { arguments: { "x-max-length": 2000 } } }, { name: "mpttl", sync: false }] });
    await withChannel(async, (ch) => ch.deleteQueue("mpcap.async"));
    expect((await runCli(["apply", "-f", capped])).code).toBe(0);
    const clean = await runCli(["plan", "-f", capped, "--detailed-exitcode"]);
    expect(clean.stdout).toMatch(/No changes\.$/m);
    expect(clean.code).toBe(0);
  });

  // RabbitMQ reads a pattern as PCRE: a POSIX class such as [[:punct:]] is one JavaScript cannot
  // read. Where the pattern left it unsure, plan only warned "if it applies" and said "No
  // changes." (exit 0) of a queue the operator policy capped at 2; the broker's statistics name it.
  // [^][] JavaScript reads without a word, as another pattern: "any character", then a class that
  // matches nothing, where PCRE reads "neither [ nor ]". topo took its own reading for the
  // broker's, found the policy applied to no queue, and said "No changes." (exit 0).
  for (const [how, pattern] of [
    ["a POSIX class", "^mpposix[[:punct:]]async$"],
    ["a class that starts with ]", "^mpposix[^][]async$"],
  ]) it(`an operator policy whose pattern topo cannot read (${how}), and that caps a queue, is degraded once the broker's statistics name it`, async () => {
    const { file, async } = fresh([
      { name: "mpposix", sync: false },
      { name: "mpother", sync: false },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const cap = await api("PUT", `/api/operator-policies/${vh(async)}/posix`, { pattern, definition: { "max-length": 2 }, "apply-to": "queues", priority: 0 });
    expect(cap.status).toBeLessThan(300);
    // The queue's statistics name its operator policy some seconds after the PUT (they are emitted every 5 s).
    const named = async () => ((await api("GET", `/api/queues/${vh(async)}/mpposix.async?columns=operator_policy`)).body as { operator_policy?: string }).operator_policy === "posix";
    for (let i = 0; i < 60 && !(await named()); i++) await new Promise((r) => setTimeout(r, 500));
    expect(await named()).toBe(true);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`! degraded: operator policy "posix" sets max-length 2 on 1 queue (mpposix.async) and the file gives it no x-max-length: the queue keeps at most 2 messages, not as the file says`);
    // The queue it does not apply to, which statistics name no operator policy for, is still only "may".
    expect(plan.stdout).toMatch(/! warning: operator policy "posix" sets max-length 2 on 1 queue \(mpother\.async\) .*: if it applies, .*topo cannot read its pattern/);
    expect(plan.stdout).not.toContain("rabbitmqctl list_queues");

    // Apply, whose read back reads the queue it wrote to anew, says the same: degraded, never that the broker matches the file.
    await api("DELETE", `/api/bindings/${vh(async)}/e/mpposix/q/mpposix.async/mpposix.async.%23`);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(`${applied.stdout}${applied.stderr}`).not.toMatch(/matches the file/);
    expect(applied.stdout).toMatch(/Apply complete: 1 change made; 1 degraded/);
  });
});

describe("a policy's overflow on the file's queues", () => {
  // A full queue drops its oldest message or refuses new ones by its x-overflow, or, where the
  // file gives a classic queue none, by a policy's: plan compared arguments only and said "No
  // changes." while the queue refused every new task (a publisher without confirms never knows).
  it("a user's policy overflow reject-publish on a capped queue without x-overflow is degraded, and the broker does refuse what the file says it keeps", async () => {
    const { file, sync, async } = fresh([{ name: "mppay", sync: false, async: { arguments: { "x-max-length": 5 } } }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/policies/${vh(async)}/cap`, { pattern: "^mppay\\.async$", definition: { overflow: "reject-publish" }, "apply-to": "queues", priority: 1 });
    expect(put.status).toBeLessThan(300);
    // The broker applies it a moment after the PUT answers: the queue then keeps the first five
    // of ten messages, where the file has it keep the last five.
    let first = "";
    for (let i = 0; i < 50 && first !== "m0"; i++) {
      await withChannel(async, (ch) => ch.purgeQueue("mppay.async"));
      // Without confirms, as Celery publishes: the refused ones are gone without a word.
      await withChannel(async, async (ch) => {
        for (let k = 0; k < 10; k++) ch.publish("mppay", "mppay.async.x", Buffer.from(`m${k}`));
        await ch.checkQueue("mppay.async");
      });
      first = await withChannel(async, async (ch) => {
        const m = await ch.get("mppay.async", { noAck: false });
        ch.nackAll(true);
        return m ? m.content.toString() : "";
      });
      if (first !== "m0") await new Promise((r) => setTimeout(r, 100));
    }
    expect(first).toBe("m0");

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(
      `! degraded: policy "cap" sets overflow reject-publish on 1 queue (mppay.async) and the file gives it no x-overflow (drop-head): a full queue refuses new messages (a publisher without confirms loses them without knowing), instead of dropping its oldest message as the file says; change policy "cap" (rabbitmqctl list_policies -p ${async}), or write x-overflow: reject-publish for it in the file, so that it says what the broker does`,
    );
    expect(plan.stdout).toMatch(/^No changes\. 1 degraded/m);

    // A file that says what the broker does is no drift.
    const says = writeTopology({ sync, async, services: [{ name: "mppay", sync: false, async: { arguments: { "x-max-length": 5, "x-overflow": "reject-publish" } } }] });
    await withChannel(async, (ch) => ch.deleteQueue("mppay.async"));
    expect((await runCli(["apply", "-f", says])).code).toBe(0);
    const clean = await runCli(["plan", "-f", says, "--detailed-exitcode"]);
    expect(clean.stdout).toMatch(/No changes\.$/m);
    expect(clean.code).toBe(0);
  });
});

describe("a policy that routes the file's messages elsewhere", () => {
  // A queue's dead-letter exchange and routing key, and an exchange's alternate exchange, are the
  // policy's where the object has none: plan compared arguments only and said "No changes." while a
  // user's policy dead-lettered one service's rejected tasks into another service's queue.
  it("a user's policy dead-letter exchange on a queue the file leaves without one is degraded, and the broker does send a rejected task there; an alternate exchange is a warning", async () => {
    const { file, async } = fresh([{ name: "mplogin", sync: false }, { name: "mpwallet", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const dlx = { pattern: "^mplogin\\.async$", definition: { "dead-letter-exchange": "mpwallet", "dead-letter-routing-key": "mpwallet.async.hijack" }, "apply-to": "queues", priority: 1 };
    expect((await api("PUT", `/api/policies/${vh(async)}/moved`, dlx)).status).toBeLessThan(300);
    const ae = { pattern: "^mpwallet$", definition: { "alternate-exchange": "amq.fanout" }, "apply-to": "exchanges", priority: 1 };
    expect((await api("PUT", `/api/policies/${vh(async)}/unrouted`, ae)).status).toBeLessThan(300);
    // The broker applies it a moment after the PUT answers: a task rejected without requeue (as
    // Celery rejects one it does not know) then lands in mpwallet.async.
    let moved = false;
    for (let i = 0; i < 50 && !moved; i++) {
      await withChannel(async, async (ch) => {
        ch.publish("mplogin", "mplogin.async.register", Buffer.from("t"));
        await ch.checkQueue("mplogin.async");
        const m = await ch.get("mplogin.async", { noAck: false });
        if (m) ch.nack(m, false, false);
        await ch.checkQueue("mplogin.async");
      });
      moved = (await messageCount(async, "mpwallet.async")) > 0;
      if (!moved) await new Promise((r) => setTimeout(r, 100));
    }
    expect(moved).toBe(true);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(
      `! degraded: policy "moved" sets dead-letter-exchange "mpwallet" and dead-letter-routing-key "mpwallet.async.hijack" on 1 queue (mplogin.async) and the file gives it no x-dead-letter-exchange: the broker dead-letters what the queue drops (a message rejected without requeue, one that expires or that a length limit pushes out) to exchange "mpwallet" with routing key "mpwallet.async.hijack", where the file says it drops them; change policy "moved" (rabbitmqctl list_policies -p ${async}), or write x-dead-letter-exchange: mpwallet and x-dead-letter-routing-key: mpwallet.async.hijack for it in the file, so that it says what the broker does`,
    );
    expect(plan.stdout).toMatch(/warning: .*policy "unrouted" sets alternate-exchange "amq\.fanout" on 1 exchange of the file \(mpwallet\)/);

    // Without the dead-letter policy, the alternate exchange alone is a warning: no drift.
    expect((await api("DELETE", `/api/policies/${vh(async)}/moved`)).status).toBeLessThan(300);
    const warned = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(warned.stdout).toMatch(/policy "unrouted" sets alternate-exchange/);
    expect(warned.stdout).toMatch(/No changes\.$/m);
    expect(warned.code).toBe(0);
  });
});

describe("policies that set a stream's retention", () => {
  // For a stream, a policy's max-age, max-length-bytes and stream-max-segment-size-bytes take the
  // place of the queue's arguments, lower or higher (measured on 3.10.8: a stream declared with
  // x-max-length-bytes 1000000000 under a policy's 1000 kept 1 of 60 messages of 500 bytes; one
  // declared with 1000 under a policy's 1000000000 kept all 60). The arguments stay the file's, so
  // plan compared them and said "No changes." while the stream kept 1 h, not the file's 7 days.
  it("a policy whose retention differs from the file's is degraded on each stream it sets, and a file that says what the policy does is clean", async () => {
    const { file, sync, async } = fresh([
      { name: "mpst", sync: false, async: { type: "stream", arguments: { "x-max-age": "7D", "x-max-length-bytes": 1000000000 } } },
      { name: "mpsu", sync: false, async: { type: "stream" } },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/policies/${vh(async)}/retain`, {
      pattern: "^mps[tu]\\.async$",
      definition: { "max-age": "1h", "max-length-bytes": 1000000000, "stream-max-segment-size-bytes": 1000000 },
      "apply-to": "queues",
      priority: 0,
    });
    expect(put.status).toBeLessThan(300);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(
      `! degraded: policy "retain" sets max-age 1h on 1 queue (mpst.async) and the file gives x-max-age 7D: the stream keeps messages for 1h, not as the file says; change policy "retain" (rabbitmqctl list_policies -p ${async}), or write x-max-age: 1h for it in the file, so that it says what the broker does`,
    );
    expect(plan.stdout).toContain(`! degraded: policy "retain" sets max-age 1h on 1 queue (mpsu.async) and the file gives it no x-max-age: the stream keeps messages for 1h`);
    expect(plan.stdout).toContain(`! degraded: policy "retain" sets max-length-bytes 1000000000 on 1 queue (mpsu.async) and the file gives it no x-max-length-bytes: the stream keeps at most 1000000000 bytes of messages`);
    expect(plan.stdout).toContain(`! degraded: policy "retain" sets stream-max-segment-size-bytes 1000000 on 2 queues (mpst.async, mpsu.async)`);
    // mpst's own x-max-length-bytes is the policy's: no drift there.
    expect(plan.stdout).not.toMatch(/sets max-length-bytes 1000000000 on 1 queue \(mpst\.async\)/);

    // The file that says what the policy does ("60m" is the policy's "1h") is no drift.
    const same = writeTopology({
      sync,
      async,
      services: [
        { name: "mpst", sync: false, async: { type: "stream", arguments: { "x-max-age": "60m", "x-max-length-bytes": 1000000000, "x-stream-max-segment-size-bytes": 1000000 } } },
        { name: "mpsu", sync: false, async: { type: "stream", arguments: { "x-max-age": "1h", "x-max-length-bytes": 1000000000, "x-stream-max-segment-size-bytes": 1000000 } } },
      ],
    });
    await withChannel(async, async (ch) => {
      await ch.deleteQueue("mpst.async");
      await ch.deleteQueue("mpsu.async");
    });
    expect((await runCli(["apply", "-f", same])).code).toBe(0);
    const clean = await runCli(["plan", "-f", same, "--detailed-exitcode"]);
    expect(clean.stdout).toMatch(/No changes\.$/m);
    expect(clean.code).toBe(0);
  });
});

describe("operator policies that set a stream's retention", () => {
  // An operator policy's max-length-bytes sets a stream's retention as a user's policy does; plan
  // took operator policies for no part of it and said "No changes." while the stream below kept 4
  // of 60 messages (3.10.8), not the file's 1 GB.
  it("an operator policy whose max-length-bytes differs from the file's is degraded, and the broker keeps what it says", async () => {
    const { file, async } = fresh([{ name: "mpst", sync: false, async: { type: "stream", arguments: { "x-max-length-bytes": 1000000000, "x-stream-max-segment-size-bytes": 1000 } } }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/operator-policies/${vh(async)}/cap`, { pattern: "^mpst\\.async$", definition: { "max-length-bytes": 1000 }, "apply-to": "queues", priority: 0 });
    expect(put.status).toBeLessThan(300);

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.stdout).toContain(
      `! degraded: operator policy "cap" sets max-length-bytes 1000 on 1 queue (mpst.async) and the file gives x-max-length-bytes 1000000000: the stream keeps at most 1000 bytes of messages, not as the file says; change operator policy "cap" (rabbitmqctl list_operator_policies -p ${async})`,
    );
    expect(plan.code).toBe(2);

    // What plan says is what the broker does: 60 messages of 200 bytes, and the stream keeps a few.
    await publish(async, "mpst", "mpst.async.t", Array.from({ length: 60 }, (_, i) => `${i}`.padEnd(200, "x")));
    let messages: number | undefined;
    for (let i = 0; i < 40; i++) {
      messages = (await getQueue(async, "mpst.async"))?.messages;
      if (typeof messages === "number" && messages > 0 && messages < 60) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(messages).toBeGreaterThan(0);
    expect(messages).toBeLessThan(60);
  });
});

describe("bindings topo does not manage", () => {
  it("plan names a user's binding from a service exchange, and route --live points to it in the same words", async () => {
    const { file, async } = fresh([{ name: "mppayment", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    await withChannel(async, async (ch) => {
      await ch.assertQueue("audit", { durable: true });
      await ch.bindQueue("audit", "mppayment", "*.async.charge");
    });

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(
      /cluster async: .*\n {2}! warning: 1 binding from service exchanges that topo does not manage: mppayment -> audit \[\*\.async\.charge\]; the broker routes the tasks it matches there too/,
    );
    expect(plan.stdout).toMatch(/No changes\./);
    const json = JSON.parse((await runCli(["plan", "-f", file, "--json"])).stdout);
    expect(json.clusters.find((c: { name: string }) => c.name === "async").warnings).toEqual([expect.stringContaining("mppayment -> audit [*.async.charge]")]);

    const route = await runCli(["route", "mppayment.async.charge", "-f", file, "--live"]);
    expect(route.code).toBe(0);
    expect(route.stdout).toMatch(
      /live: {8}the broker routes it to audit, mppayment\.async, not as the file says \(mppayment -> audit \[\*\.async\.charge\] is a binding topo does not manage: topo plan lists it and leaves it alone\)/,
    );
    expect(route.stdout).not.toMatch(/shows the drift/);

    // A task the user's binding does not take: the broker agrees with the file.
    const other = await runCli(["route", "mppayment.async.refund", "-f", file, "--live"]);
    expect(other.stdout).toMatch(/live: {8}the broker's bindings agree/);
  });
});

describe("a replace under Celery workers", () => {
  it("plan says, beside the replace, that workers on the old module stop with PRECONDITION_FAILED, and the broker agrees", async () => {
    const { file, sync, async } = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    // A worker consuming the queue, as kombu declared it from the old module.
    const conn = await amqplib.connect(amqpUrl(async));
    try {
      const ch = await conn.createChannel();
      await ch.assertQueue("mplogin.async", { durable: true, arguments: {} });
      await ch.consume("mplogin.async", () => undefined);
      const changed = writeTopology({ sync, async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-priority": 5 } } }] });

      // The broker's statistics count a new consumer within about 5 s.
      let plan = await runCli(["plan", "-f", changed, "--cluster", "async", "--detailed-exitcode"]);
      for (let i = 0; i < 20 && !/consumer is attached/.test(plan.stdout); i++) {
        await new Promise((r) => setTimeout(r, 500));
        plan = await runCli(["plan", "-f", changed, "--cluster", "async", "--detailed-exitcode"]);
      }
      expect(plan.code).toBe(2);
      expect(plan.stdout).toContain(
        [
          "  -/+ replace queue mplogin.async",
          "      because arguments.x-max-priority: (none) -> 5",
          "      ! messages at risk: 1 consumer is attached: a consumer takes messages while they are moved, and what it has not acknowledged is lost with the old queue",
          "      then re-creates its 1 binding",
          "      ! the consumers may be Celery workers: stop them (apply refuses while they are attached, unless given --allow-data-loss, which deletes the queue with what it holds and re-creates it), apply, then start them on the module topo export celery writes now; a worker on a module from before topo wrote no_declare re-declares the old arguments and stops with PRECONDITION_FAILED (docs/safety.md, replacing a queue)",
        ].join("\n"),
      );

      // What the note warns of: after the replace, the old module's declare is refused.
      const applied = await runCli(["apply", "-f", changed, "--cluster", "async", "--allow-destructive", "--allow-data-loss"]);
      expect(applied.code).toBe(0);
    } finally {
      await conn.close().catch(() => undefined);
    }
    const refused = await withChannel(async, (ch) => ch.assertQueue("mplogin.async", { durable: true, arguments: {} }).then(() => "declared", (e: Error) => e.message));
    expect(refused).toMatch(/PRECONDITION_FAILED - inequivalent arg 'x-max-priority'/);
  });
});

describe("files people really write, through the CLI", () => {
  it("a merge key and a typed ${VAR} apply, and the broker gets a number", async () => {
    const sync = uniqueName("sync");
    const async = uniqueName("async");
    vhosts.push(sync, async);
    const file = writeFile(
      "topology.yaml",
      `version: 1
clusters:
  sync: &conn
    url: ${amqpUrl(sync)}
    management: \${MGMT}
  async:
    <<: *conn
    url: ${amqpUrl(async)}
services:
  - name: mplogin
    sync: false
    async:
      arguments:
        x-max-length: \${LEN}
`,
    );
    const mgmt = broker().mgmtBase;
    const bad = await runCli(["validate", "-f", file], { MGMT: mgmt, LEN: "abc" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/topology\.yaml:14:23: services\[0\]\.async\.arguments\.x-max-length: \$\{LEN\} is "abc", not an integer/);
    const empty = await runCli(["validate", "-f", file], { MGMT: mgmt, LEN: "" });
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/14:23: environment variable LEN is set but empty/);

    const applied = await runCli(["apply", "-f", file], { MGMT: mgmt, LEN: "100" });
    expect(applied.stderr).not.toMatch(/Error|problem/);
    expect(applied.code).toBe(0);
    expect((await getQueue(async, "mplogin.async")).arguments).toEqual({ "x-max-length": 100 });
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"], { MGMT: mgmt, LEN: "100" })).code).toBe(0);
  });

  it("two YAML documents: exit 1, one YAML document per file", async () => {
    const file = writeFile("topology.yaml", "version: 1\nclusters: { sync: { url: amqp://h/s } }\nservices: [mplogin]\n---\nservices: [mpwallet]\n");
    const r = await runCli(["validate", "-f", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/topology\.yaml:4:1: a second YAML document starts here \("---"\); topo reads one YAML document per file/);
    expect(r.stderr).not.toMatch(/parseAllDocuments/);
  });
});

describe("where and how RabbitMQ dead-letters the file's queues", () => {
  // RabbitMQ accepts x-dead-letter-strategy: at-least-once with anything, and only logs that it
  // falls back to at-most-once without overflow reject-publish, or does no dead-lettering at all
  // without a dead-letter exchange; a policy's overflow wins over the queue's own. Plan said "No
  // changes." for queues that drop the messages the file says are dead-lettered at least once.
  it("plan warns at the argument of a strategy the broker does not honour, calls a policy's overflow degraded, and the broker does drop what the file says it keeps", async () => {
    const quorum = (args: Record<string, unknown>) => ({ sync: false, async: { type: "quorum", arguments: args } });
    const dlx = { "x-dead-letter-exchange": "amq.fanout", "x-dead-letter-strategy": "at-least-once" };
    const { file, async } = fresh([
      { name: "mpdrop", ...quorum(dlx) },
      { name: "mpkeep", ...quorum({ ...dlx, "x-overflow": "reject-publish" }) },
      { name: "mppol", ...quorum({ ...dlx, "x-overflow": "reject-publish" }) },
      { name: "mpoff", ...quorum({ "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" }) },
    ]);
    const first = await runCli(["plan", "-f", file]);
    expect(first.code, first.stderr).toBe(0);
    const at = (service: string) => {
      const lines = readFileSync(file, "utf8").split("\n");
      const from = lines.findIndex((l) => l.includes(`"${service}"`));
      const line = lines.findIndex((l, i) => i > from && l.includes('"x-dead-letter-strategy"'));
      return `${file}:${line + 1}:${(lines[line] as string).indexOf('"') + 1}`;
    };
    expect(first.stdout).toContain(
      `! warning: ${at("mpdrop")}: x-dead-letter-strategy: "at-least-once" (queue mpdrop.async): the file gives no x-overflow, and quorum queues default to drop-head, so the queue dead-letters at most once:`,
    );
    expect(first.stdout).toContain(`! warning: ${at("mpoff")}: x-dead-letter-strategy: "at-least-once" (queue mpoff.async): the file gives no x-dead-letter-exchange, so the queue does not dead-letter at all:`);
    expect(first.stdout).not.toMatch(/mpkeep\.async\)|mppol\.async\)/);

    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const put = await api("PUT", `/api/policies/${vh(async)}/ops`, { pattern: "^mppol\\.async$", definition: { overflow: "drop-head" }, "apply-to": "queues", priority: 0 });
    expect(put.status).toBeLessThan(300);
    for (let i = 0; i < 100 && (await getQueue(async, "mppol.async"))?.policy !== "ops"; i++) await new Promise((r) => setTimeout(r, 100));

    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(
      `! degraded: ${at("mppol")}: x-dead-letter-strategy: "at-least-once" (queue mppol.async): policy "ops" sets overflow "drop-head", which RabbitMQ applies over the queue's own x-overflow, so the queue dead-letters at most once:`,
    );
    expect(plan.stdout).toMatch(/fix: change policy "ops" \(rabbitmqctl list_policies -p /);
    expect(plan.stdout).toMatch(/^No changes\. 1 degraded/m);
    // Apply's read back says it too, at the same place.
    await api("DELETE", `/api/bindings/${vh(async)}/e/mppol/q/mppol.async/mppol.async.%23`);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(`${applied.stdout}${applied.stderr}`).toContain(`cluster async: warning: degraded: ${at("mppol")}: x-dead-letter-strategy: "at-least-once" (queue mppol.async): policy "ops" sets overflow`);
    expect(applied.stdout).toMatch(/Apply complete: 1 change made; 1 degraded/);

    // What the broker does: five messages rejected from each, with nothing bound to amq.fanout.
    for (const s of ["mpdrop", "mpkeep", "mppol"]) await publish(async, s, `${s}.async.x`, ["1", "2", "3", "4", "5"]);
    await withChannel(async, async (ch) => {
      for (const s of ["mpdrop", "mpkeep", "mppol"]) {
        for (let i = 0; i < 5; i++) {
          const m = await ch.get(`${s}.async`, { noAck: false });
          expect(m).not.toBe(false);
          if (m) ch.nack(m, false, false);
        }
      }
      await ch.checkQueue("mpkeep.async");
    });
    // Each queue's statistics lag by up to 5 s, on its own clock: read all three until they agree
    // with what the broker was said to do, or give up and show what they say.
    const want = [
      ["mpkeep", 5, 5],
      ["mpdrop", 0, 0],
      ["mppol", 0, 0],
    ];
    let seen: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      seen = await Promise.all(want.map(async ([s]) => getQueue(async, `${s}.async`).then((q) => [s, q?.messages, q?.messages_dlx])));
      if (JSON.stringify(seen) === JSON.stringify(want)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toEqual(want);
  });

  it("plan warns where the file's dead letters go to an exchange or queue that does not exist, until it does", async () => {
    const { file, async } = fresh([
      { name: "mplost", sync: false, async: { arguments: { "x-dead-letter-exchange": "mplost_dead" } } },
      { name: "mpgone", sync: false, async: { arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mpgone.parked" } } },
    ]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(
      new RegExp(`! warning: ${file.replace(/[.*+?^$()|[\]\\]/g, "\\$&")}:\\d+:\\d+: x-dead-letter-exchange: "mplost_dead" \\(queue mplost\\.async\\): it dead-letters to exchange "mplost_dead", which neither vhost "${async}" nor the file has, so RabbitMQ drops every message it dead-letters, without a word`),
    );
    expect(plan.stdout).toMatch(/x-dead-letter-routing-key: "mpgone\.parked" \(queue mpgone\.async\): it dead-letters through the default exchange to queue "mpgone\.parked"/);
    await withChannel(async, async (ch) => {
      await ch.assertExchange("mplost_dead", "fanout", { durable: true });
      await ch.assertQueue("mpgone.parked", { durable: true });
    });
    // The exchange there, bound to nothing: it routes none of them either, and the broker drops a
    // rejected task (nothing holds it afterwards).
    const unbound = await runCli(["plan", "-f", file]);
    expect(unbound.stdout).toMatch(/x-dead-letter-exchange: "mplost_dead" \(queue mplost\.async\): it dead-letters to exchange "mplost_dead" \(fanout\), bound to nothing, which routes none of the messages' own routing keys/);
    const reject = (id: string) => rejectAndCount(async, "mplost", id, "mpgone.parked", 10);
    expect(await reject("1")).toEqual([0, 0]);
    // Bound on to another exchange, with nothing bound to that: still routed to no queue, and the
    // broker drops it all the same (plan counted a binding to an exchange as a route).
    await withChannel(async, async (ch) => {
      await ch.assertExchange("mplost_next", "fanout", { durable: true });
      await ch.bindExchange("mplost_next", "mplost_dead", "");
    });
    const onward = await runCli(["plan", "-f", file]);
    expect(onward.stdout.replace(/\s*\n\s*/g, " ")).toMatch(/x-dead-letter-exchange: "mplost_dead" \(queue mplost\.async\): it dead-letters to exchange "mplost_dead" \(fanout\), bound only with mplost_next, which passes the messages' own routing keys \(<service>\.async\.<task>\) on only to exchange "mplost_next", from which none reaches a queue, so RabbitMQ drops every message it dead-letters/);
    expect(await reject("1b")).toEqual([0, 0]);
    await withChannel(async, (ch) => ch.bindQueue("mpgone.parked", "mplost_next", ""));
    const clean = await runCli(["plan", "-f", file]);
    expect(clean.stdout).not.toMatch(/dead-letters/);
    expect(clean.stdout).toMatch(/No changes\.$/m);
    expect(await reject("2")).toEqual([0, 1]);
  });

  it("plan warns where dead letters go through the default exchange without a routing key, and a task rejected from there is gone", async () => {
    const { file, async } = fresh([{ name: "mpself", sync: false, async: { arguments: { "x-dead-letter-exchange": "" } } }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const plan = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(
      new RegExp(`! warning: ${file.replace(/[.*+?^$()|[\]\\]/g, "\\$&")}:\\d+:\\d+: x-dead-letter-exchange: "" \\(queue mpself\\.async\\): it dead-letters through the default exchange with each message's own routing key, .*every task \\(a key such as mpself\\.async\\.<task>\\)`),
    );
    // What the broker does: a task rejected from the queue goes nowhere; nothing holds it.
    await publish(async, "mpself", "mpself.async.run", ["1"]);
    await withChannel(async, async (ch) => {
      const m = await ch.get("mpself.async", { noAck: false });
      expect(m).not.toBe(false);
      if (m) ch.nack(m, false, false);
      await new Promise((r) => setTimeout(r, 500));
      expect((await ch.checkQueue("mpself.async")).messageCount).toBe(0);
      await ch.assertQueue("mpself.parked", { durable: true });
    });
    // A policy's dead-letter-routing-key fills in the missing key: the warning goes, and the next
    // rejected task is kept.
    const put = await api("PUT", `/api/policies/${vh(async)}/park`, { pattern: "^mpself\\.async$", definition: { "dead-letter-routing-key": "mpself.parked" }, "apply-to": "queues", priority: 0 });
    expect(put.status).toBeLessThan(300);
    const clean = await runCli(["plan", "-f", file]);
    expect(clean.stdout).not.toMatch(/dead-letters/);
    expect(await rejectAndCount(async, "mpself", "2", "mpself.parked")).toEqual([0, 1]);
  });
});

/**
 * Publish one task (id `id`) to service `service`'s exchange, reject it from its async queue
 * without requeue, and count what `parkedIn` then holds (read until it shows, up to `polls` times:
 * dead-lettering is asynchronous) and what the queue still holds: [in the queue, parked].
 */
async function rejectAndCount(v: string, service: string, id: string, parkedIn: string, polls = 50): Promise<[number, number]> {
  const queue = `${service}.async`;
  await publish(v, service, `${queue}.run`, [id]);
  await withChannel(v, async (ch) => {
    const m = await ch.get(queue, { noAck: false });
    expect(m).not.toBe(false);
    if (m) ch.nack(m, false, false);
    // A call on the same channel after the nack: the connection closes only once it is handled.
    await ch.checkQueue(queue);
  });
  let parked = 0;
  for (let i = 0; i < polls && parked === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    parked = await messageCount(v, parkedIn);
  }
  return [await messageCount(v, queue), parked];
}

describe("plan counts what it deletes and replaces as the broker does now", () => {
  // The statistics plan read lag a few seconds: 100 messages published just before showed as 0
  // (no "messages at risk"), and a worker on a queue to delete showed only when apply refused it.
  it("messages just published and a consumer just attached are in the plan, without waiting for the statistics", async () => {
    const { file, async } = fresh(["mpkeep", { name: "mpgo", sync: false }]);
    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const after = writeFile("after.yaml", JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), services: [{ name: "mpkeep", async: { arguments: { "x-max-length": 10 } } }] }));
    const conn = await amqplib.connect(amqpUrl(async));
    try {
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < 40; i++) ch.publish("mpkeep", "mpkeep.async.x", Buffer.from(`m${i}`), { persistent: true });
      await ch.waitForConfirms();
      const worker = await conn.createChannel();
      await worker.consume("mpgo.async", () => undefined);
      const plan = await runCli(["plan", "-f", after]);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toContain("-/+ replace queue mpkeep.async [holds 40 messages]");
      expect(plan.stdout).toContain("! messages at risk: x-max-length 10 is below the 40 messages it holds");
      expect(plan.stdout).toContain("- delete queue mpgo.async [1 consumer]\n      ! 1 consumer is attached: apply refuses to delete it while any is");
      const json = JSON.parse((await runCli(["plan", "-f", after, "--json"])).stdout) as { clusters: { actions: { op: string; name: string; consumers?: number }[] }[] };
      expect(json.clusters.flatMap((c) => c.actions).find((a) => a.op === "delete" && a.name === "mpgo.async")?.consumers).toBe(1);
      // Apply shows the plan it refuses as plan did: it showed the delete without the consumer,
      // then named the consumer in its refusal (advp).
      const refused = await runCli(["apply", "-f", after, "--allow-destructive"]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toContain("- delete queue mpgo.async [1 consumer]\n      ! 1 consumer is attached: apply refuses to delete it while any is");
      expect(refused.stderr).toMatch(/refusing to drop messages/);
    } finally {
      await conn.close().catch(() => undefined);
    }
  });
});
