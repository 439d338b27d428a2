import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ManagementClient } from "../../src/broker/http.js";

// A paused broker (SIGSTOP) accepts connections and answers nothing: apply's read waited up to
// four minutes (a listing's two tries of 120 s) without a line on stderr, where AMQP's connect
// says each of its tries.
let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** An API that takes connections and never answers; close() drops them too. */
async function silentApi(): Promise<string> {
  const open = new Set<Socket>();
  const s = createServer(() => undefined);
  s.on("connection", (c) => open.add(c));
  const close = s.close.bind(s);
  s.close = ((cb?: (e?: Error) => void) => (open.forEach((c) => c.destroy()), close(cb))) as typeof s.close;
  server = s;
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** An API whose every answer `answer` writes. */
async function answeringApi(answer: (res: ServerResponse) => void): Promise<string> {
  const s = createServer((_req, res) => answer(res));
  server = s;
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe("a management API that does not answer", () => {
  it("says that the request still waits, then that it tries again, then fails", async () => {
    const baseUrl = await silentApi();
    const lines: string[] = [];
    const client = new ManagementClient("main", { baseUrl, username: "guest", password: "s3cret-pw", display: baseUrl }, {}, { timeoutMs: 600, stillWaitingMs: 250, log: (m) => lines.push(m) });
    await expect(client.request("GET", "/api/queues/v")).rejects.toThrow(/no answer within 0.6 s, on each of 2 tries$/m);
    const waiting = lines.filter((l) => /no answer yet after \d+ s; waiting up to 0.6 s/.test(l));
    expect(waiting.length).toBeGreaterThanOrEqual(2); // once per try
    expect(waiting[0]).toContain(`cluster main: GET ${baseUrl}/api/queues/v`);
    const again = lines.filter((l) => /no answer within 0.6 s; trying again in \d+\.\d s \(try 2 of 2\)$/.test(l));
    expect(again).toHaveLength(1);
    expect(lines.join("\n")).not.toContain("s3cret-pw");
  });

  it("says it once per interval however many requests wait at once, never a flood", async () => {
    const baseUrl = await silentApi();
    const lines: string[] = [];
    const client = new ManagementClient("main", { baseUrl, username: "guest", password: "guest", display: baseUrl }, {}, { timeoutMs: 600, stillWaitingMs: 250, log: (m) => lines.push(m) });
    const all = await Promise.allSettled(["a", "b", "c", "d", "e", "f"].map((q) => client.request("GET", `/api/queues/v/${q}`)));
    expect(all.every((r) => r.status === "rejected")).toBe(true);
    // Two tries of 0.6 s, a waiting line at most each 0.25 s, one line for the tries again.
    expect(lines.filter((l) => l.includes("no answer yet")).length).toBeLessThanOrEqual(5);
    expect(lines.filter((l) => l.includes("trying again"))).toHaveLength(1);
  });

  it("says of an answer that has begun and is still arriving (a large listing) that it arrives, not that there is none", async () => {
    const baseUrl = await answeringApi((res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("[");
      setTimeout(() => res.end("]"), 700);
    });
    const lines: string[] = [];
    const client = new ManagementClient("main", { baseUrl, username: "guest", password: "guest", display: baseUrl }, {}, { timeoutMs: 5000, stillWaitingMs: 250, log: (m) => lines.push(m) });
    expect((await client.request("GET", "/api/queues/v")).status).toBe(200);
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines[0]).toMatch(new RegExp(`^cluster main: GET ${baseUrl}/api/queues/v -> 200, and the answer is still arriving after \\d+ s; waiting up to 5 s$`));
    expect(lines.join("\n")).not.toContain("no answer yet");
  });

  it("says nothing without a log, or when the answer comes in time", async () => {
    const baseUrl = await answeringApi((res) => setTimeout(() => res.end("[]"), 50));
    const lines: string[] = [];
    const client = new ManagementClient("main", { baseUrl, username: "guest", password: "guest", display: baseUrl }, {}, { timeoutMs: 5000, stillWaitingMs: 1000, log: (m) => lines.push(m) });
    expect((await client.request("GET", "/api/queues/v")).status).toBe(200);
    expect(lines).toEqual([]);
  });
});
