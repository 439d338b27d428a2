// Values as YAML 1.2 reads them, and as a ${VAR} puts them in: the message says what was read in
// the file's words, and a variable takes the type its place wants, an enum's included.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { problemsOf } from "../helpers/problems.js";

const CLUSTERS = `clusters:
  sync:
    url: amqp://guest:guest@127.0.0.1:1/s
  async:
    url: amqp://guest:guest@127.0.0.1:1/a
`;
const withArgs = (args: string) => `version: 1\n${CLUSTERS}defaults:\n  async:\n    arguments:\n${args}services: [mplogin]\n`;

describe("a ${VAR} takes the type its place wants", () => {
  it("x-queue-version: ${QV} with QV=2 is the number 2, which the enum [1, 2] wants", () => {
    const d = parseConfig(withArgs(`      x-queue-version: \${QV}\n`), "t.yaml", { QV: "2" });
    const q = d.clusters.flatMap((c) => c.queues).find((s) => s.queue.name === "mplogin.async");
    expect(q?.queue.arguments).toEqual({ "x-queue-version": 2 });
  });

  it("a value the enum does not hold is refused, naming the variable", () => {
    expect(problemsOf(withArgs(`      x-queue-version: \${QV}\n`), { QV: "3" })).toEqual(["10:24: defaults.async.arguments.x-queue-version: ${QV} is number 3, not one of 1, 2"]);
    // An enum of strings keeps the text.
    const d = parseConfig(withArgs(`      x-overflow: \${OV}\n`), "t.yaml", { OV: "reject-publish" });
    expect(d.clusters.flatMap((c) => c.queues).find((s) => s.queue.name === "mplogin.async")?.queue.arguments).toEqual({ "x-overflow": "reject-publish" });
  });
});

describe("values YAML reads otherwise than they look", () => {
  it(".inf and .nan are named as written, not as null", () => {
    expect(problemsOf(withArgs(`      x-expires: .inf\n      x-max-length: .nan\n`))).toEqual([
      `10:18: defaults.async.arguments.x-expires: must be an integer, not .inf (infinity)`,
      `11:21: defaults.async.arguments.x-max-length: must be an integer, not .nan (not a number)`,
    ]);
  });

  it("yes, no, on and off are text in YAML 1.2: a boolean place says to write true or false", () => {
    expect(problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync: { durable: yes, mirrored: Off }\nservices: [mplogin]\n`)).toEqual([
      `8:20: defaults.sync.durable: must be a boolean, not string "yes" (YAML 1.2 reads yes, no, on and off as text); write true or false`,
      `8:35: defaults.sync.mirrored: must be a boolean, not string "Off" (YAML 1.2 reads yes, no, on and off as text); write true or false`,
    ]);
  });

  it("a number in quotes is text: an integer place says to drop the quotes", () => {
    expect(problemsOf(withArgs(`      x-max-length: "10"\n`))).toEqual([
      `10:21: defaults.async.arguments.x-max-length: must be an integer, not string "10"; write it without quotes (x-max-length: 10)`,
    ]);
  });

  it("true or false in quotes, and a number or true in a block of text (| or >), which has no quotes to drop", () => {
    expect(problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync: { durable: "TRUE" }\nservices: [mplogin]\n`)).toEqual([`8:20: defaults.sync.durable: must be a boolean, not string "TRUE"; write true without quotes`]);
    expect(problemsOf(withArgs(`      x-max-length: |\n        10\n`))).toEqual([
      `10:21: defaults.async.arguments.x-max-length: must be an integer, not string "10\\n"; write it on its key's line, without the | of a block of text (x-max-length: 10)`,
    ]);
    expect(problemsOf(`version: >\n  1\n${CLUSTERS}services: [mplogin]\n`)[0]).toBe(`1:10: version: must be 1, the number, not the text "1\\n"; write it on its key's line, without the > of a block of text`);
  });
});

describe("a file that starts with a byte order mark", () => {
  it("is placed by the columns an editor shows, which do not count the mark", () => {
    const json = `{"version": 1, "clusters": {"sync": {"url": "amqp://h/s"}, "async": {"url": "amqp://h/a"}}, "services": ["Bad"]}`;
    const at = `1:${json.indexOf('"Bad"') + 1}: services[0]: service name "Bad"`;
    expect(problemsOf(json)[0]).toMatch(new RegExp(`^${at.replace(/[[\]]/g, "\\$&")}`));
    expect(problemsOf(`\ufeff${json}`)[0]).toMatch(new RegExp(`^${at.replace(/[[\]]/g, "\\$&")}`));
    expect(problemsOf(`\ufeffversion: 2\nclusters: { sync: { url: "amqp://h/s" }, async: { url: "amqp://h/a" } }\nservices: [mplogin]\n`)).toEqual(["1:10: version: must be 1"]);
  });
});

describe("a file with one kind of queue only", () => {
  // A first file of a team with an async cluster alone: defaults.sync: false was refused with a
  // bare "must be an object", and the missing sync cluster's problem named two ways out, neither
  // of which is "this service has no sync queue".
  const oneCluster = "version: 1\nclusters:\n  async:\n    url: amqp://guest:guest@127.0.0.1:1/a\n";
  it("says that defaults cannot turn a kind off, and how a service does", () => {
    expect(problemsOf(`${oneCluster}defaults:\n  sync: false\nservices: [mplogin]\n`)).toEqual([
      "6:9: defaults.sync: must be an object, not boolean false; defaults cannot turn the sync queues off: write sync: false on each service that has no sync queue ({ name: <service>, sync: false })",
    ]);
    expect(problemsOf(`${oneCluster}defaults:\n  async: true\nservices: [{ name: mplogin, sync: false }]\n`)).toEqual([
      "6:10: defaults.async: must be an object, not boolean true; defaults.async gives the settings of every service's async queue (cluster, durable, ...), and every service has one unless it says async: false: remove it, or write the settings",
    ]);
  });

  it("names sync: false among the ways out of a missing cluster, and takes it", () => {
    expect(problemsOf(`${oneCluster}services: [mplogin]\n`)).toEqual([
      '5:12: services[0]: no cluster named "sync" for mplogin.sync and the other sync queues; add clusters.sync, set defaults.sync.cluster, or write sync: false on each service that has no sync queue (clusters: async)',
    ]);
    expect(problemsOf(`${oneCluster}services: [{ name: mplogin, sync: false }]\n`)).toEqual([]);
  });
});
