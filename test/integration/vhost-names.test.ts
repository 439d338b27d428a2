// Vhost names with characters a URL escapes ("/", "%", non-ASCII): the vhost topo writes over AMQP
// is the one its file names and its management API reads, and import of it gives back a file that
// plans no changes.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { amqpUrl, api, broker, createVhost, deleteVhost, runCli, uniqueName, vh, writeFile } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

function topology(sync: string, async: string): string {
  const b = broker();
  return writeFile(
    "topology.yaml",
    [
      "version: 1",
      "clusters:",
      `  sync: { url: "${amqpUrl(sync)}", management: "${b.mgmtBase}" }`,
      `  async: { url: "${amqpUrl(async)}", management: "${b.mgmtBase}" }`,
      "services: [mplogin, { name: mpwallet, sync: { arguments: { x-max-length: 7 } } }]",
      "",
    ].join("\n"),
  );
}

describe("a vhost whose name holds %, / and non-ASCII letters", () => {
  it("is the vhost apply writes over AMQP, not the one its name reads as once more unescaped", async () => {
    const base = uniqueName("vn");
    // "%41" unescaped once more is "A": amqplib unescapes the vhost it is given, so topo wrote into
    // the vhost "<base>/éA" (another team's, here) while it created and read "<base>/é%41".
    const sync = `${base}/é%41`;
    const other = `${base}/éA`;
    const async = `${base}-async`;
    vhosts.push(sync, other, async);
    await createVhost(other);
    const file = topology(sync, async);

    const applied = await runCli(["apply", "-f", file]);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    expect((await api("GET", `/api/exchanges/${vh(sync)}/mplogin`)).status).toBe(200);
    expect((await api("GET", `/api/queues/${vh(sync)}/mpwallet.sync`)).body.arguments).toEqual({ "x-max-length": 7 });
    expect((await api("GET", `/api/exchanges/${vh(other)}/mplogin`)).status).toBe(404);
    expect((await api("GET", `/api/queues/${vh(other)}`)).body).toEqual([]);

    const planned = await runCli(["plan", "-f", file, "--detailed-exitcode"]);
    expect(planned.stdout).toContain("No changes.");
    expect(planned.code).toBe(0);

    const out = join(dirname(file), "imported.yaml");
    const imported = await runCli(["import", "-f", file, "-o", out]);
    expect(imported.stderr).toMatch(/topo plan on it shows no changes\.$/m);
    expect(imported.code).toBe(0);
    expect(readFileSync(out, "utf8")).toContain(amqpUrl(sync).replace(/^amqp:\/\/[^@]*@/, ""));
    // import writes the file's literal password as ${RABBITMQ_PASSWORD}.
    const replanned = await runCli(["plan", "-f", out, "--detailed-exitcode"], { RABBITMQ_PASSWORD: encodeURIComponent(broker().password) });
    expect(replanned.code, replanned.stdout + replanned.stderr).toBe(0);
  });
});

describe("a vhost whose name is long", () => {
  it("up to the 255 bytes a vhost name may have, apply creates it: the broker's reply that it does not exist is cut at 255 bytes too", async () => {
    // RabbitMQ's "vhost <name> not found" loses its last words past 255 bytes: apply took it for
    // another refusal and never created a vhost of 226 bytes or more.
    const base = uniqueName("long");
    const sync = `${base}-${"é".repeat(Math.floor((254 - Buffer.byteLength(base)) / 2))}`;
    const async = `${base}-async`;
    vhosts.push(sync, async);
    expect(Buffer.byteLength(sync)).toBeGreaterThan(240);
    expect(Buffer.byteLength(sync)).toBeLessThanOrEqual(255);
    const file = topology(sync, async);
    const applied = await runCli(["apply", "-f", file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect((await api("GET", `/api/vhosts/${vh(sync)}`)).status).toBe(200);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  });
});
