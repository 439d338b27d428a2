import { afterEach, describe, expect, it, vi } from "vitest";
import type { ManagementClient } from "../../src/broker/http.js";
import { unackedCounter } from "../../src/broker/read.js";
import type { ClusterTarget } from "../../src/model.js";

/**
 * A management API whose n-th listing of queue totals counts n unacknowledged messages of queue
 * "q", and answers when the test says so.
 */
function fakeListing() {
  const started: { answer: () => void }[] = [];
  const client = {
    list: (path: string) => {
      expect(path).toMatch(/^\/api\/queues\/v\?disable_stats=true&enable_queue_totals=true&/);
      const n = started.length + 1;
      return new Promise((resolve) => {
        started.push({ answer: () => resolve([{ name: "q", vhost: "v", messages: n, messages_unacknowledged: n }]) });
      });
    },
  } as unknown as ManagementClient;
  return { client, started };
}

const target = { name: "async", amqp: { vhost: "v" } } as unknown as ClusterTarget;
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("counting what deletes and replaces would take unacknowledged", () => {
  it("callers that ask together share one listing", async () => {
    const { client, started } = fakeListing();
    const count = unackedCounter(client, target);
    const asked = [count("q"), count("q"), count("other")];
    await tick();
    expect(started).toHaveLength(1);
    started[0]!.answer();
    expect(await Promise.all(asked)).toEqual([{ listed: true, unacked: 1 }, { listed: true, unacked: 1 }, { listed: false, unacked: undefined }]);
  });

  it("a caller that asks while a listing is under way gets one begun after it asked, shared with the others that ask meanwhile", async () => {
    const { client, started } = fakeListing();
    const count = unackedCounter(client, target);
    const first = count("q");
    await tick();
    expect(started).toHaveLength(1);
    // Under way: it may have asked the queue before this caller's fetch, so it is no count for it.
    const later = [count("q"), count("q")];
    await tick();
    expect(started).toHaveLength(1);
    started[0]!.answer();
    expect(await first).toEqual({ listed: true, unacked: 1 });
    await tick();
    expect(started).toHaveLength(2);
    started[1]!.answer();
    expect(await Promise.all(later)).toEqual([{ listed: true, unacked: 2 }, { listed: true, unacked: 2 }]);
  });

  it("tells a queue listed without counts (its process did not answer) from one not listed (gone)", async () => {
    const client = { list: async () => [{ name: "q", vhost: "v" }] } as unknown as ManagementClient;
    const count = unackedCounter(client, target);
    expect(await count("q")).toEqual({ listed: true, unacked: undefined });
    expect(await count("gone")).toEqual({ listed: false, unacked: undefined });
  });

  describe("deletes, which may go by a listing begun a moment before", () => {
    afterEach(() => vi.useRealTimers());

    // A listing that took `took` ms is taken by a delete that asks at `reused`, and not at `renewed`.
    it.each([
      { why: "at most reuseMs (1 s) after it began", took: 0, reused: 900, renewed: 1100 },
      { why: "four times as long as it took, on a vhost slow to list (3 s)", took: 3000, reused: 11_900, renewed: 12_100 },
    ])("take the last listing $why, then a new one", async ({ took, reused, renewed }) => {
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(0);
      const { client, started } = fakeListing();
      const count = unackedCounter(client, target, 1000);
      const first = count("q");
      await tick();
      vi.setSystemTime(took);
      started[0]!.answer();
      expect(await first).toEqual({ listed: true, unacked: 1 });
      vi.setSystemTime(reused);
      expect(await count("q")).toEqual({ listed: true, unacked: 1 });
      expect(started).toHaveLength(1);
      vi.setSystemTime(renewed);
      const later = count("q");
      await tick();
      expect(started).toHaveLength(2);
      started[1]!.answer();
      expect(await later).toEqual({ listed: true, unacked: 2 });
    });
  });

  // A reuse of a minute (deletes) must not hand the failure on either.
  it.each([0, 60_000])("a listing that fails fails its callers only: the next caller gets a listing of its own (reuse %i ms)", async (reuseMs) => {
    let calls = 0;
    const client = {
      list: async () => {
        calls++;
        if (calls === 1) throw new Error("broker unreachable");
        return [{ name: "q", vhost: "v", messages: 3, messages_unacknowledged: 3 }];
      },
    } as unknown as ManagementClient;
    const count = unackedCounter(client, target, reuseMs);
    await expect(count("q")).rejects.toThrow("broker unreachable");
    expect(await count("q")).toEqual({ listed: true, unacked: 3 });
    expect(calls).toBe(2);
  });
});
