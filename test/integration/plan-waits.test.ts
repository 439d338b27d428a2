// A drift check (topo plan) against a management API that is slow or fails for a moment: apply
// said every try again and every request still unanswered after 15 s on stderr, plan said nothing,
// and a paused broker kept a CI job silent for minutes before its error.

import { describe, expect, it, onTestFinished } from "vitest";
import type { IncomingMessage, ServerResponse } from "node:http";
import { runCli, testVhosts } from "../helpers/broker.js";
import { managementProxy } from "../helpers/proxy.js";

const { fresh } = testVhosts();

describe("plan against a management API that fails for a moment", () => {
  it("says each try again on stderr, as apply does, and still plans", async () => {
    let failed = 0;
    // The first listing of bindings is a gateway's 503, as a load balancer gives while the node restarts.
    const answer = (req: IncomingMessage, res: ServerResponse): boolean => {
      if (failed > 0 || !(req.url ?? "").startsWith("/api/bindings/")) return false;
      failed++;
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "service_unavailable", reason: "node restarting" }));
      return true;
    };
    const proxy = await managementProxy({ answer });
    onTestFinished(() => proxy.close());
    const t = fresh([{ name: "mplogin", sync: false }], { clusterExtra: { async: { management: proxy.url } } });
    const plan = await runCli(["plan", "-f", t.file]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(failed).toBe(1);
    expect(plan.stderr).toMatch(/^cluster async: GET http:\/\/127\.0\.0\.1:\d+\/api\/bindings\/\S+ -> 503 .*; trying again in \d+\.\d s \(try 2 of 5\)$/m);
    expect(plan.stdout).toContain("+ create queue mplogin.async");
    // The proxy's URL holds the broker's credentials: masked in the line as everywhere.
    expect(plan.stderr).not.toContain(`${new URL(proxy.url).password}@`);
  });
});
