// The names the broker gets are the names the file writes. YAML 1.2 reads a plain key such as
// 0123 as the number 123: topo apply created the user "123" for a file that says "0123". Now the
// file is refused before anything is written, with the key's place and the quotes to write, and
// quoted, the user is the one written.

import { afterEach, describe, expect, it } from "vitest";
import { amqpUrl, api, broker, deleteVhost, runCli, uniqueName, writeFile } from "../helpers/broker.js";

const vhosts: string[] = [];
const users: string[] = [];
afterEach(async () => {
  await Promise.all([...vhosts.splice(0).map(deleteVhost), ...users.splice(0).map((u) => api("DELETE", `/api/users/${encodeURIComponent(u)}`))]);
});

function topology(user: string): { file: string; sync: string } {
  const sync = uniqueName("ynsync");
  const async = uniqueName("ynasync");
  vhosts.push(sync, async);
  const b = broker();
  const file = writeFile(
    "topology.yaml",
    [
      "version: 1",
      "prefix: yn",
      "clusters:",
      `  sync: { url: "${amqpUrl(sync)}", management: "${b.mgmtBase}" }`,
      `  async: { url: "${amqpUrl(async)}", management: "${b.mgmtBase}" }`,
      "services: [ynlogin]",
      "users:",
      `  ${user}:`,
      "    password: ${YN_PASSWORD}",
      "    consumes: [ynlogin]",
      "",
    ].join("\n"),
  );
  return { file, sync };
}

describe("a user name YAML reads as a number", () => {
  it("is refused by apply before it writes anything, at its key; quoted, it is the user written", async () => {
    // Unique digits with a leading zero: YAML reads them as the number without it.
    const digits = `0${Date.now() % 1e9}${process.pid % 1000}`;
    const read = String(Number(digits));
    users.push(digits, read);
    const { file, sync } = topology(digits);
    const r = await runCli(["apply", "-f", file, "--json"], { YN_PASSWORD: "yn-secret-pw" });
    expect(r.code).toBe(1);
    const error = JSON.parse(r.stdout).error;
    expect(error.code).toBe("config_invalid");
    expect(error.problems).toEqual([
      { file, line: 8, col: 3, message: `users: YAML reads the key ${digits} as the number ${read}, not as the text written; put it in quotes ("${digits}") to mean the text` },
    ]);
    expect((await api("GET", `/api/users/${read}`)).status).toBe(404);
    expect((await api("GET", `/api/vhosts/${encodeURIComponent(sync)}`)).status).toBe(404);

    const quoted = topology(`"${digits}"`);
    const ok = await runCli(["apply", "-f", quoted.file], { YN_PASSWORD: "yn-secret-pw" });
    expect(ok.code, ok.stderr).toBe(0);
    expect((await api("GET", `/api/users/${digits}`)).status).toBe(200);
    expect((await api("GET", `/api/users/${read}`)).status).toBe(404);
  });
});
