import { describe, expect, it } from "vitest";
import { listingPaths } from "../../src/broker/read.js";

describe("the listings a plan reads", () => {
  const paths = listingPaths("team/a b");

  it("ask the broker not to sort the object listings (topo sorts what it reads itself)", () => {
    for (const p of [paths.exchanges, paths.queues, paths.bindings]) {
      const q = new URL(p, "http://broker").searchParams;
      // An empty sort, not a missing one: only an empty value turns the broker's sort off.
      expect(q.get("sort"), p).toBe("");
      expect(q.get("columns"), p).toBeTruthy();
    }
  });

  it("name the vhost encoded, and read queues and exchanges without statistics", () => {
    expect(paths.queues.startsWith("/api/queues/team%2Fa%20b?")).toBe(true);
    expect(paths.bindings.startsWith("/api/bindings/team%2Fa%20b?")).toBe(true);
    for (const p of [paths.exchanges, paths.queues]) expect(new URL(p, "http://broker").searchParams.get("disable_stats"), p).toBe("true");
  });
});
