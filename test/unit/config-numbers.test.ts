// A number in the file must mean one number to every reader of it. YAML 1.2 (topo's parser) reads
// 010 as 10 where YAML 1.1 readers (PyYAML, which Celery users reach for) read the octal 8; 1e3 is
// 1000 to one and the text "1e3" to the other; 0o10, 0x10, +5 and 1.0 are read otherwise by
// YAML's JSON schema; and an integer above 2^53-1 is silently rounded (9007199254740993 became
// 9007199254740992, declared as such). Each is refused at its place, saying what to write.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { problemsOf } from "../helpers/problems.js";

const HEAD = `version: 1
clusters:
  sync:
    url: amqp://guest:guest@127.0.0.1:1/s
  async:
    url: amqp://guest:guest@127.0.0.1:1/a
services:
`;
const withArg = (name: string, written: string) => `${HEAD}  - name: mplogin\n    async:\n      arguments:\n        ${name}: ${written}\n`;
const one = (name: string, written: string) => problemsOf(withArg(name, written));
/** Where the value of argument `name` is: line 11, after "        name: ". */
const at = (name: string) => `11:${9 + name.length + 2}: services[0].async.arguments.${name}`;

describe("numbers written in forms YAML readers disagree on", () => {
  it("a leading zero: YAML 1.2 reads 010 as 10, YAML 1.1 as the octal 8", () => {
    expect(one("x-max-length", "010")).toEqual([
      `${at("x-max-length")}: YAML 1.2 (topo) reads 010 as 10, but YAML 1.1 readers (PyYAML) read it as the octal 8; write 10 (or 8) without the leading zero`,
    ]);
    expect(one("x-message-ttl", "08")).toEqual([
      `${at("x-message-ttl")}: YAML 1.2 (topo) reads 08 as 8, but YAML 1.1 readers (PyYAML) read it as text; write 8 without the leading zero`,
    ]);
  });

  it("0o10, 0x10, 1e3, 1.0, +5 and 1_000 are refused with the decimal to write", () => {
    expect(one("x-max-length", "0o10")).toEqual([`${at("x-max-length")}: 0o10 is an octal number (8), which YAML 1.1 readers (PyYAML) read as text; write it in decimal: 8`]);
    expect(one("x-max-length", "0x10")).toEqual([`${at("x-max-length")}: 0x10 is a hexadecimal number (16), which YAML's JSON schema reads as text; write it in decimal: 16`]);
    expect(one("x-message-ttl", "6e4")).toEqual([`${at("x-message-ttl")}: YAML 1.2 (topo) reads 6e4 as 60000, but YAML 1.1 readers (PyYAML) read it as text; write it in decimal: 60000`]);
    expect(one("x-max-length", "1.0")).toEqual([`${at("x-max-length")}: 1.0 is a fraction to YAML 1.1 readers (PyYAML), not a whole number; write 1`]);
    expect(one("x-max-length", "+5")).toEqual([`${at("x-max-length")}: YAML's JSON schema reads +5 as text; write 5 without the +`]);
    expect(one("x-max-length", "1_000")).toEqual([`${at("x-max-length")}: YAML 1.2 (topo) reads 1_000 as text, but YAML 1.1 readers (PyYAML) read it as 1000; write it in decimal: 1000`]);
  });

  it("1.5e3, which PyYAML reads as text (its exponent takes a sign), and under %YAML 1.1 the forms only 1.1 reads as numbers", () => {
    expect(one("x-max-length", "1.5e3")).toEqual([`${at("x-max-length")}: YAML 1.2 (topo) reads 1.5e3 as 1500, but YAML 1.1 readers (PyYAML) read it as text; write it in decimal: 1500`]);
    const yaml11 = (written: string) => problemsOf(`%YAML 1.1\n---\n${withArg("x-max-length", written)}`).map((p) => p.replace(/^\d+:\d+: /, ""));
    for (const [written, n] of [["1_000", 1000], ["0b101", 5], ["1:30", 90]] as const) {
      expect(yaml11(written)).toEqual([`services[0].async.arguments.x-max-length: ${written} is ${n} to YAML 1.1 readers, and text to YAML 1.2 ones; write it in decimal: ${n}`]);
    }
    // A leading zero under the directive is the octal to topo too, and not "YAML 1.2 (topo)".
    expect(yaml11("010")).toEqual(["services[0].async.arguments.x-max-length: 010 is the octal 8 to YAML 1.1 readers (as this file's %YAML 1.1 directive makes topo read it), but 10 to YAML 1.2 ones; write 8 without the leading zero"]);
  });

  it("every numeric field follows the same rule: x-queue-version and version", () => {
    expect(one("x-queue-version", "02")).toEqual([
      `${at("x-queue-version")}: YAML 1.2 (topo) reads 02 as 2, but YAML 1.1 readers (PyYAML) read it as the octal 2; write 2 without the leading zero`,
    ]);
    expect(problemsOf(withArg("x-max-length", "5").replace("version: 1", "version: 0x1"))).toEqual([
      `1:10: version: 0x1 is a hexadecimal number (1), which YAML's JSON schema reads as text; write it in decimal: 1`,
    ]);
  });

  it("a text field written as a number is told to quote it; a secret is not quoted back", () => {
    expect(one("x-dead-letter-exchange", "010")).toEqual([`${at("x-dead-letter-exchange")}: YAML reads 010 as the number 10, not as the text written; put it in quotes ("010") to mean the text`]);
    const ps = problemsOf(`${HEAD}  - mplogin\nusers:\n  mplogin:\n    password: 0123\n    consumes: [mplogin]\n`);
    expect(ps).toEqual([`11:15: users.mplogin.password: YAML reads this value as a number, not as the text written; put it in quotes to mean the text`]);
    expect(ps.join("\n")).not.toContain("0123");
  });

  it("plain decimal integers load as written", () => {
    expect(one("x-max-length", "10")).toEqual([]);
    expect(one("x-delivery-limit", "-1").filter((p) => !p.includes("does not apply"))).toEqual([]);
    const d = parseConfig(withArg("x-max-length", "9007199254740991"), "t.yaml", {});
    const q = d.clusters.flatMap((c) => c.queues).find((x) => x.queue.name === "mplogin.async");
    expect(q?.queue.arguments["x-max-length"]).toBe(9007199254740991);
  });
});

describe("integers larger than can be carried exactly", () => {
  it("9007199254740993 is refused, saying it would become 9007199254740992", () => {
    expect(one("x-max-length-bytes", "9007199254740993")).toEqual([
      `${at("x-max-length-bytes")}: 9007199254740993 is beyond 9007199254740991 (2^53-1), the largest whole number topo carries exactly: topo reads it as 9007199254740992, as every JavaScript or JSON reader does, and would declare that; write at most 9007199254740991`,
    ]);
  });

  it("1e400, which YAML reads as infinity, is a number beyond that too", () => {
    expect(one("x-max-length", "1e400")).toEqual([
      `${at("x-max-length")}: 1e400 is beyond 9007199254740991 (2^53-1), the largest whole number topo carries exactly: larger numbers are rounded; write at most 9007199254740991`,
    ]);
  });

  it("in a JSON file too, where 1.0 and 1e3 are refused as in YAML", () => {
    const json = (v: string) => `{"version":1,"clusters":{"sync":{"url":"amqp://guest:guest@127.0.0.1:1/s"},"async":{"url":"amqp://guest:guest@127.0.0.1:1/a"}},"services":[{"name":"mplogin","async":{"arguments":{"x-max-length":${v}}}}]}`;
    expect(problemsOf(json("9007199254740993"))[0]).toContain("9007199254740993 is beyond 9007199254740991 (2^53-1)");
    expect(problemsOf(json("1.0"))[0]).toContain("1.0 is a fraction to YAML 1.1 readers");
    expect(problemsOf(json("1e3"))[0]).toContain("reads 1e3 as 1000");
    expect(problemsOf(json("100"))).toEqual([]);
  });
});

describe("a number from a variable is judged as one written in the file", () => {
  const withVar = `${HEAD}  - name: mplogin\n    async:\n      arguments:\n        x-max-length: \${LEN}\n`;
  it("010, 1e3 and 1.0 are refused with the decimal to set; 2^53 and above with the limit", () => {
    expect(problemsOf(withVar, { LEN: "010" })).toEqual([`11:23: services[0].async.arguments.x-max-length: \${LEN} is "010": a whole number is written in plain decimal digits, so that every reader takes the same number; set it to 10`]);
    expect(problemsOf(withVar, { LEN: "1e3" })).toEqual([`11:23: services[0].async.arguments.x-max-length: \${LEN} is "1e3": a whole number is written in plain decimal digits, so that every reader takes the same number; set it to 1000`]);
    expect(problemsOf(withVar, { LEN: "9007199254740993" })).toEqual([
      `11:23: services[0].async.arguments.x-max-length: \${LEN} is 9007199254740993, beyond 9007199254740991 (2^53-1), the largest whole number topo carries exactly: larger numbers are rounded; set it to at most 9007199254740991`,
    ]);
    expect(problemsOf(withVar, { LEN: "100" })).toEqual([]);
  });
});
