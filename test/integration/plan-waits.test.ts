// Commands that read a management API that is slow or fails for a moment: apply said every try
// again and every request still unanswered after 15 s on stderr; plan, route --live and import said
// nothing, and a drift check against a paused broker kept a CI job silent for minutes before its error.

import { describe, expect, it, onTestFinished } from "vitest";
import type { IncomingMessage, ServerResponse } from "node:http";
import { runCli, testVhosts } from "../helpers/broker.js";
import { managementProxy } from "../helpers/proxy.js";

const { fresh } = testVhosts();

/** A topology whose async cluster's management API answers its first listing of bindings with a gateway's 503, as a load balancer does while the node restarts. */
async function flaky(armed = true): Promise<{ file: string; failed: () => number; arm: () => void }> {
  let failed = 0;
  const answer = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!armed || failed > 0 || !(req.url ?? "").startsWith("/api/bindings/")) return false;
    failed++;
    res.writeHead(503, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "service_unavailable", reason: "node restarting" }));
    return true;
  };
  const proxy = await managementProxy({ answer });
  onTestFinished(() => proxy.close());
  const t = fresh([{ name: "mplogin", sync: false }], { clusterExtra: { async: { management: proxy.url } } });
  return { file: t.file, failed: () => failed, arm: () => (armed = true) };
}

const TRIED_AGAIN = /^cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/bindings\/\S+ -> 503 .*; trying again in \d+\.\d s \(try 2 of 5\)$/m;

describe("a management API that fails for a moment", () => {
  it("plan says each try again on stderr, as apply does, and still plans", async () => {
    const t = await flaky();
    const plan = await runCli(["plan", "-f", t.file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(t.failed()).toBe(1);
    expect(plan.stderr).toMatch(TRIED_AGAIN);
    expect(plan.stdout).toContain("+ create queue mplogin.async");
  });

  it("route --live and import say it too", async () => {
    const t = await flaky();
    const route = await runCli(["route", "mplogin.async.x", "-f", t.file, "--live"]);
    expect(t.failed()).toBe(1);
    expect(route.stderr).toMatch(TRIED_AGAIN);
    // import reads what exists: the vhosts are made first, through the proxy before it fails.
    const u = await flaky(false);
    expect((await runCli(["apply", "-f", u.file])).code).toBe(0);
    u.arm();
    const imported = await runCli(["import", "-f", u.file]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(u.failed()).toBe(1);
    expect(imported.stderr).toMatch(TRIED_AGAIN);
  });
});
