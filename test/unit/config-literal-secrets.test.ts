// A password written in the topology file is in git, for every reader of the repository and its
// history: loading it worked without a word. Now each is a warning at its place (FILE:LINE:COL),
// saying to use ${VAR}; the password itself is never in the warning. RabbitMQ's guest/guest (the
// README's local broker) is no secret, and stays without a warning.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../../src/config/load.js";
import { ConfigError, errorJson } from "../../src/errors.js";

function warningsOf(text: string, env: Record<string, string> = {}, ext = "yaml"): string[] {
  const file = join(mkdtempSync(join(tmpdir(), "topo-literal-")), `t.${ext}`);
  writeFileSync(file, text);
  return loadConfig(file, env, undefined, { passwordsOptional: true }).warnings.map((w) => w.slice(file.length + 1));
}

const file = (sync: string, users = "") => `version: 1
clusters:
  sync:
    url: ${sync}
  async:
    url: amqp://guest:guest@127.0.0.1:1/a
services: [mplogin]
${users}`;

const USER_WARNING = (at: string) =>
  `${at}: users.mplogin.password: the password is written in the file: anyone who can read the file, or its history in git, has it; put it in an environment variable and write password: \${MPLOGIN_PASSWORD} (that variable's name, or another)`;

describe("passwords written in the file", () => {
  it("a user's literal password is a warning at its place, without the password", () => {
    const w = warningsOf(file("amqp://guest:guest@127.0.0.1:1/s", "users:\n  mplogin:\n    password: S3cretPw\n    consumes: [mplogin]\n"));
    expect(w).toEqual([USER_WARNING("10:15")]);
    expect(w.join("\n")).not.toContain("S3cretPw");
  });

  it("a cluster URL's literal password too, and a :-default used because its variable is unset", () => {
    expect(warningsOf(file("amqp://topo:S3cret@rabbit:5672/s"))).toEqual([
      `4:10: clusters.sync.url: the URL's password is written in the file: anyone who can read the file, or its history in git, has it; put it in an environment variable and write \${RABBITMQ_PASSWORD} (that variable's name, or another) in its place in the URL`,
    ]);
    expect(warningsOf(file("amqp://topo:${PW:-S3cret}@rabbit:5672/s"))).toEqual([
      `4:10: clusters.sync.url: the URL's password is the :-default written in the file, since PW is not set: anyone who can read the file, or its history in git, has it; put it in an environment variable and write \${RABBITMQ_PASSWORD} (that variable's name, or another) in its place in the URL`,
    ]);
    expect(warningsOf(file("amqp://topo:${PW}x@rabbit:5672/s"), { PW: "a" })[0]).toContain("the URL's password is written in the file");
    // A variable named as an object's member is unset like any other (it read as set: Object's own constructor).
    expect(warningsOf(file("amqp://topo:${constructor:-S3cret}@rabbit:5672/s"))).toEqual([
      `4:10: clusters.sync.url: the URL's password is the :-default written in the file, since constructor is not set: anyone who can read the file, or its history in git, has it; put it in an environment variable and write \${RABBITMQ_PASSWORD} (that variable's name, or another) in its place in the URL`,
    ]);
  });

  it("a password from the environment, guest/guest, a URL without a password and a hash are no warning", () => {
    expect(warningsOf(file("amqp://topo:${PW}@rabbit:5672/s"), { PW: "S3cret" })).toEqual([]);
    expect(warningsOf(file("amqp://topo:${PW:-S3cret}@rabbit:5672/s"), { PW: "S3cret2" })).toEqual([]);
    expect(warningsOf(file("amqp://guest:${RABBITMQ_PASSWORD:-guest}@localhost:5672/s"))).toEqual([]);
    expect(warningsOf(file("amqp://rabbit:5672/s"))).toEqual([]);
    expect(warningsOf(file("amqp://topo@rabbit:5672/s"))).toEqual([]);
    expect(warningsOf(file("amqp://guest:guest@127.0.0.1:1/s", "users:\n  mplogin:\n    password: ${MPLOGIN_PASSWORD}\n    consumes: [mplogin]\n  mpwallet:\n    password_hash: bjrV6CTMCjEewTxOWMUEuYppoT0nXdz9I4C2bCOdBdBd+2hb\n    consumes: [mplogin]\n"), { MPLOGIN_PASSWORD: "x" })).toEqual([]);
  });

  it("a JSON file is warned at the same place", () => {
    const json = `{"version":1,"clusters":{"sync":{"url":"amqp://topo:S3cret@rabbit:5672/s"},"async":{"url":"amqp://guest:guest@127.0.0.1:1/a"}},"services":["mplogin"]}`;
    expect(warningsOf(json, {}, "json")).toEqual([expect.stringMatching(/^1:40: clusters\.sync\.url: the URL's password is written in the file/)]);
  });

  it("the README's topology.yaml has none", () => {
    expect(loadConfig(join(import.meta.dirname, "../../topology.yaml"), {}).warnings).toEqual([]);
  });
});

describe("a key given twice, with a user's password variable unset (validate)", () => {
  it("says the key, not the unset password that validate allows", () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-literal-"));
    const f = join(dir, "t.yaml");
    writeFileSync(f, `${file("amqp://guest:guest@127.0.0.1:1/s", "users:\n  mpu:\n    password: ${MPU_PW_UNSET}\n    consumes: [mplogin]\n")}prefix: mp\nprefix: mp\n`);
    expect(() => loadConfig(f, {}, undefined, { passwordsOptional: true })).toThrow(
      expect.objectContaining({ problems: [expect.objectContaining({ message: 'the key "prefix" is given twice in this mapping (first on line 12); remove one' })] }),
    );
  });
});

describe("a user's tags that reach past the rights topo derives", () => {
  it("warns at administrator, policymaker and impersonator, by both paths, and not at management or monitoring", () => {
    const users = "users:\n  audit:\n    password: ${A_PW}\n    consumes: [mplogin]\n    tags: [management, policymaker]\n  ops:\n    password: ${A_PW}\n    publishes: all\n    tags: [monitoring, administrator, impersonator]\n";
    const text = file("amqp://guest:guest@127.0.0.1:1/s", users);
    const yaml = warningsOf(text, { A_PW: "x-1" });
    expect(yaml).toEqual([
      expect.stringMatching(/^\d+:\d+: users\.audit\.tags\[1\]: tag "policymaker" lets user audit set policies/),
      expect.stringMatching(/^\d+:\d+: users\.ops\.tags\[1\]: tag "administrator" lets user ops manage every vhost/),
      expect.stringMatching(/^\d+:\d+: users\.ops\.tags\[2\]: tag "impersonator" lets user ops publish messages that carry another user's user_id/),
    ]);
    expect(warningsOf(text.replace(", policymaker", "").replace(", administrator, impersonator", ""), { A_PW: "x-1" })).toEqual([]);
    // The JSON path gives the file to the YAML path, which places each warning.
    const json = JSON.stringify(parse(text), null, 2);
    expect(warningsOf(json, { A_PW: "x-1" }, "json").map((w) => w.replace(/^\d+:\d+: /, ""))).toEqual(yaml.map((w) => w.replace(/^\d+:\d+: /, "")));

  });

  it("warns at a tag one slip from one RabbitMQ knows, which it stores but grants nothing for, and leaves a custom tag be", () => {
    // Measured on 3.10.8: a user tagged "Monitoring" is refused by the management API, "Not management user".
    const users = "users:\n  ops:\n    password: ${A_PW}\n    publishes: all\n    tags: [managment, Monitoring, policy-maker, billing, mgmt, management, monitoring_ro, management-ui, ops.monitoring]\n";
    const text = file("amqp://guest:guest@127.0.0.1:1/s", users);
    const yaml = warningsOf(text, { A_PW: "x-1" });
    const known = "(RabbitMQ's tags: administrator, monitoring, policymaker, management, impersonator)";
    expect(yaml).toEqual([
      `12:12: users.ops.tags[0]: tag "managment" is no tag RabbitMQ knows (it compares tags exactly), so it gives user ops nothing; did you mean "management"? ${known}`,
      `12:23: users.ops.tags[1]: tag "Monitoring" is no tag RabbitMQ knows (it compares tags exactly), so it gives user ops nothing; did you mean "monitoring"? ${known}`,
      `12:35: users.ops.tags[2]: tag "policy-maker" is no tag RabbitMQ knows (it compares tags exactly), so it gives user ops nothing; did you mean "policymaker"? ${known}`,
    ]);
    const json = JSON.stringify(parse(text), null, 2);
    expect(warningsOf(json, { A_PW: "x-1" }, "json").map((w) => w.replace(/^\d+:\d+: /, ""))).toEqual(yaml.map((w) => w.replace(/^\d+:\d+: /, "")));
  });

  it("are said with the problems of a file that is not valid, not one run later once they are fixed", () => {
    const users = "users:\n  ops:\n    password: ${A_PW}\n    consumes: [nosuch]\n    tags: [administrator]\n";
    const f = join(mkdtempSync(join(tmpdir(), "topo-literal-")), "t.yaml");
    writeFileSync(f, file("amqp://guest:guest@127.0.0.1:1/s", users));
    let caught: unknown;
    try {
      loadConfig(f, { A_PW: "x-1" });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`)).toEqual([expect.stringMatching(/^11:16: users\.ops\.consumes\[0\]: no service named "nosuch"/)]);
    expect(e.warnings.map((p) => `${p.line}:${p.col}: ${p.message}`)).toEqual([expect.stringMatching(/^12:12: users\.ops\.tags\[0\]: tag "administrator" lets user ops manage every vhost/)]);
    expect(errorJson(e, (s) => s).error.warnings).toHaveLength(1);
  });
});

describe("a URL whose user-info is a variable with no password", () => {
  // amqp://${RABBITMQ_PASSWORD}@host (the user name forgotten) read the password as the user name:
  // plan's 401 hint then printed it ('the credentials (user name or password) of "<password>"').
  // No login without a password succeeds, so it is refused at its place, never showing the value.
  function problemsOf(text: string, env: Record<string, string>, ext = "yaml"): string[] {
    const f = join(mkdtempSync(join(tmpdir(), "topo-lone-")), `t.${ext}`);
    writeFileSync(f, text);
    try {
      loadConfig(f, env);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
      throw e;
    }
    return [];
  }
  const said = (at: string, key: string) =>
    `${at}: clusters.sync.${key}: the URL's user-info holds no ":" once \${PW} is put in, so its value (not shown) is taken as the user name, with no password, and RabbitMQ refuses a login without one; write <user>:\${PW}@ where \${PW} holds the password`;
  const PW = "Xk9-Secret-Pw77";

  it("is refused in the url and the management URL, in YAML and JSON, without the value", () => {
    expect(problemsOf(file('"amqp://${PW}@rabbit:5672/s"'), { PW })).toEqual([said("4:10", "url")]);
    expect(problemsOf(file('"amqp://${PW:-Def-Secret1}@rabbit:5672/s"'), {})).toEqual([said("4:10", "url")]);
    expect(problemsOf(file('"amqp://guest:guest@rabbit:5672/s"\n    management: "http://x${PW}@rabbit:15672"'), { PW })).toEqual([said("5:17", "management")]);
    const json = `{"version":1,"clusters":{"sync":{"url":"amqp://\${PW}@rabbit:5672/s"},"async":{"url":"amqp://guest:guest@127.0.0.1:1/a"}},"services":["mplogin"]}`;
    expect(problemsOf(json, { PW }, "json")).toEqual([said("1:40", "url")]);
  });

  it("is taken as it is when the variable gives user and password, or the file gives the password", () => {
    expect(problemsOf(file('"amqp://${CREDS}@rabbit:5672/s"'), { CREDS: "topo:S3cret-9" })).toEqual([]);
    expect(problemsOf(file('"amqp://${USER_NAME}:${PW}@rabbit:5672/s"'), { USER_NAME: "topo", PW })).toEqual([]);
    // Names that only hold the letters of one: PASSENGER_USER, SPW_USER.
    expect(problemsOf(file('"amqp://${PASSENGER_USER}:${RABBITMQ_PASSWORD}@rabbit:5672/s"'), { PASSENGER_USER: "topo", RABBITMQ_PASSWORD: PW })).toEqual([]);
  });

  // The variables swapped (`${RABBITMQ_PASSWORD}:${RABBITMQ_USER}@`), or the password's before an
  // empty one: validate passed, and plan printed the password as the user name, in the 401's hint
  // and in the URL ("amqp://<password>:***@"); route printed it with no broker at all.
  it("is refused where a variable named as a password stands in the user name's place, without the value", () => {
    const swapped = (at: string, key: string, name: string) =>
      `${at}: clusters.sync.${key}: the URL's user name is read from \${${name}}, a variable named as a password: its value (not shown) would be taken as the user name, and output shows a URL's user name; write <user>:\${${name}}@ (are the user's and the password's variables swapped?)`;
    const env = { RABBITMQ_PASSWORD: PW, RABBITMQ_USER: "topo", MGMT_TOKEN: PW };
    expect(problemsOf(file('"amqp://${RABBITMQ_PASSWORD}:${RABBITMQ_USER}@rabbit:5672/s"'), env)).toEqual([swapped("4:10", "url", "RABBITMQ_PASSWORD")]);
    expect(problemsOf(file('"amqp://${RABBITMQ_PASSWORD}:@rabbit:5672/s"'), env)).toEqual([swapped("4:10", "url", "RABBITMQ_PASSWORD")]);
    expect(problemsOf(file('"amqp://guest:guest@rabbit:5672/s"\n    management: "http://${MGMT_TOKEN}:x@rabbit:15672"'), env)).toEqual([swapped("5:17", "management", "MGMT_TOKEN")]);
    for (const problems of [problemsOf(file('"amqp://${RABBITMQ_PASSWORD}:${RABBITMQ_USER}@rabbit:5672/s"'), env)]) expect(problems.join("\n")).not.toContain(PW);
  });
});
