// validate reports every problem of a file in one run: interpolation, schema and cross-checks,
// with the cross-checks run on what the schema did not refuse, and nothing that only follows
// from a refused value.

import { describe, expect, it } from "vitest";
import { interpolateAll } from "../../src/config/interpolate.js";
import { loadConfig, parseConfig } from "../../src/config/load.js";
import { problemsOf } from "../helpers/problems.js";
import { ConfigError, type ConfigProblem } from "../../src/errors.js";


const CLUSTERS = `clusters:
  sync:
    url: amqp://guest:guest@127.0.0.1:1/s
  async:
    url: amqp://guest:guest@127.0.0.1:1/a
`;

describe("interpolateAll", () => {
  it("reports every unset variable and bad reference of a value, once each", () => {
    const r = interpolateAll("${A}:${B}@${A}/${C:-c}${bad name}", {});
    expect(r).toEqual({
      errors: [
        expect.stringMatching(/^environment variable A is not set/),
        expect.stringMatching(/^environment variable B is not set/),
        expect.stringMatching(/^"\$\{bad\.\.\." is not a variable reference/),
      ],
    });
    expect(interpolateAll("${A}/${C:-c}", { A: "a" })).toEqual({ value: "a/c" });
  });

  it("reads only the environment's own variables: ${constructor} or ${toString} unset is unset", () => {
    // process.env inherits Object's members: ${constructor} read as "function () { [native code] }",
    // a password nobody chose.
    for (const env of [process.env, {}]) {
      expect(interpolateAll("${constructor}", env)).toEqual({ errors: [expect.stringMatching(/^environment variable constructor is not set/)] });
      expect(interpolateAll("${toString:-t}/${valueOf:-v}", env)).toEqual({ value: "t/v" });
    }
    expect(interpolateAll("${constructor}", { constructor: "c" })).toEqual({ value: "c" });
  });
});

describe("every problem at once", () => {
  it("version, a bad URL, a duplicate service and an unset variable, sorted by line", () => {
    const text = `version: 2
clusters:
  sync:
    url: amqp://u:Xy7/kP9+qR==@127.0.0.1/s
  async:
    url: amqp://guest:\${TOPO_UNSET_PW}@127.0.0.1/a
services: [mplogin, mplogin]
`;
    const ps = problemsOf(text);
    expect(ps).toHaveLength(4);
    expect(ps[0]).toBe("1:10: version: must be 1");
    expect(ps[1]).toMatch(/^4:10: clusters\.sync\.url: not a valid URL: the password holds/);
    expect(ps[2]).toMatch(/^6:23: environment variable TOPO_UNSET_PW is not set/);
    expect(ps[3]).toBe('7:21: services[1]: duplicate service "mplogin" (also services[0])');
  });

  it("a broken cluster still counts as a known cluster name", () => {
    const ps = problemsOf(`version: 1
clusters:
  sync: { url: 5 }
  async: { url: "amqp://h/a", port: 1 }
services:
  - { name: mplogin, async: { cluster: sync } }
`);
    expect(ps).toEqual([
      "3:16: clusters.sync.url: must be a string, not number 5",
      '4:31: clusters.async: unknown key "port" (allowed: url, management, tls)',
    ]);
  });

  it("a broken service entry is checked by its name only; the others fully", () => {
    const ps = problemsOf(`version: 1
${CLUSTERS}services:
  - { name: mplogin, sync: { cluster: nowhere, durable: maybe } }
  - { name: mplogin, async: { cluster: elsewhere } }
  - { name: MpBad, sync: { mirrored: 1 } }
`);
    expect(ps).toEqual([
      '8:57: services[0].sync.durable: must be a boolean, not string "maybe"',
      '9:13: services[1].name: duplicate service "mplogin" (also services[0])',
      '10:13: services[2].name: service name "MpBad" must match ^mp[a-z_]+$ (the prefix "mp" then lowercase letters and underscores)',
      "10:38: services[2].sync.mirrored: must be a boolean, not number 1",
    ]);
  });

  it("a service name longer than 200 characters says its length, the limit and what to do, in both forms", () => {
    const long = `mp${"a".repeat(199)}`;
    const ps = problemsOf(`version: 1
${CLUSTERS}services:
  - ${long}
  - { name: ${long}x }
`);
    const shown = `"${long.slice(0, 40)}..."`;
    expect(ps).toEqual([
      `8:5: services[0]: service name ${shown} is 201 characters long; a service name has at most 200 characters (it names the service's exchange and queues, and its task names): shorten it`,
      `9:13: services[1].name: service name ${shown} is 202 characters long; a service name has at most 200 characters (it names the service's exchange and queues, and its task names): shorten it`,
    ]);
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - mp${"a".repeat(198)}\n`)).toEqual([]);
  });

  it("a user's publishes: or consumes: written as one service, not a list, says to write a list, not 'must be \"all\"'", () => {
    // 'must be "all"' sent a user who meant one service to grant every service's tasks.
    const ps = problemsOf(`version: 1
${CLUSTERS}services: [mplogin, mpwallet]
users:
  edge:
    password: pw-1x
    publishes: mplogin
  worker:
    password: pw-2x
    consumes: mplogin
`);
    expect(ps).toEqual([
      "11:16: users.edge.publishes: must be all or a list of services, not other text; write publishes: [<service>, ...] (one service is a list of one: publishes: [<service>]), or publishes: all for every service's tasks",
      "14:15: users.worker.consumes: must be a list of services, not a string; write consumes: [<service>, ...] (one service is a list of one: consumes: [<service>])",
    ]);
  });

  it("argument against queue type and unknown cluster appear beside schema problems", () => {
    const ps = problemsOf(`version: 1
${CLUSTERS}defaults:
  async: { type: quorum, arguments: { x-max-priority: 5 } }
services:
  - name: mplogin
    sync: { cluster: nowhere }
  - name: mpwallet
    sync: { durable: maybe }
`);
    expect(ps).toEqual([
      "8:39: defaults.async.arguments.x-max-priority: argument x-max-priority does not apply to quorum queues",
      '11:22: services[0].sync.cluster: unknown cluster "nowhere" (clusters: sync, async)',
      '13:22: services[1].sync.durable: must be a boolean, not string "maybe"',
    ]);
  });

  it("a default argument a service's own queue type refuses names that service and the way out", () => {
    const ps = problemsOf(`version: 1
${CLUSTERS}defaults:
  async: { arguments: { x-message-ttl: 1000 } }
services:
  - mplogin
  - name: mpevents
    async: { type: stream }
`);
    expect(ps).toEqual([
      "8:25: defaults.async.arguments.x-message-ttl: argument x-message-ttl does not apply to stream queues, and the async queue of services[1] (mpevents) is a stream queue: a service cannot take a default argument away, so set x-message-ttl on the services that take it instead of in defaults.async",
    ]);
  });

  it("reports nothing that only follows from a refused value", () => {
    // A refused type would make x-delivery-limit look like a classic queue's; a refused cluster
    // would make the built-in one look missing; a refused prefix would fail every name; an
    // uninterpolated number is not "a string".
    const ps = problemsOf(`version: 1
prefix: MP
clusters:
  main:
    url: amqp://guest:guest@127.0.0.1:1/m
defaults:
  sync: { cluster: 7, type: quorum }
  async: { cluster: main, type: lazy, arguments: { x-delivery-limit: 3 } }
services:
  - name: mplogin
    async: { arguments: { x-max-length: "\${TOPO_UNSET_N}" } }
`);
    expect(ps).toEqual([
      '2:9: prefix: "MP" must match ^[a-z][a-z_]*$ (lowercase letters and _, starting with a letter)',
      "7:20: defaults.sync.cluster: must be a string, not number 7",
      '8:33: defaults.async.type: must be one of "classic", "quorum", "stream", not string "lazy"',
      expect.stringMatching(/^11:41: environment variable TOPO_UNSET_N is not set/),
    ]);
  });

  it("still loads a good file, and stops early only where nothing can be read", () => {
    expect(problemsOf(`version: 1\n${CLUSTERS}services: [mplogin]\n`)).toEqual([]);
    expect(problemsOf("version: 1\nclusters: [\n")).toEqual([expect.stringMatching(/YAML/)]);
  });
});

describe("a saved plan given as the topology file", () => {
  it("is one problem that says what it is and how it is applied, not one per key of the plan", () => {
    const plan = { format: "topo-saved-plan", formatVersion: 2, topoVersion: "0.1.0", createdAt: "2026-01-01T00:00:00.000Z", file: "topology.yaml", fileDigest: "sha256:f", prefix: "mp", clusters: [] };
    for (const text of [JSON.stringify(plan, null, 2), JSON.stringify(plan)]) {
      expect(problemsOf(text)).toEqual(["1:1: this is a plan saved by topo plan -o, not a topology file: apply it with topo apply t.yaml (no -f), or print it with topo show t.yaml"]);
    }
  });
});

describe("files people really write", () => {
  const SHARED = `version: 1
clusters:
  sync: &conn
    url: amqp://guest:guest@127.0.0.1:1/s
    tls: { insecure: true }
  async:
    <<: *conn
    url: amqp://guest:guest@127.0.0.1:1/a
`;
  const argsOf = (text: string, env: Record<string, string> = {}) =>
    parseConfig(text, "t.yaml", env).clusters.flatMap((c) => c.queues.map((q) => ({ name: q.queue.name, durable: q.queue.durable, args: q.queue.arguments })));

  it("a YAML merge key shares one cluster's settings with another", () => {
    const desired = parseConfig(`${SHARED}services: [mplogin]\n`, "t.yaml", {});
    expect(desired.clusters.map((c) => [c.target.name, c.target.amqp.vhost, c.target.tls.insecure])).toEqual([
      ["sync", "s", true],
      ["async", "a", true],
    ]);
  });

  it("a problem inside merged settings points at the line that holds it", () => {
    const ps = problemsOf(`${SHARED.replace("tls: { insecure: true }", "port: 1")}services: [mplogin]\n`);
    expect(ps).toEqual(['5:5: clusters.sync: unknown key "port" (allowed: url, management, tls)', '5:5: clusters.async: unknown key "port" (allowed: url, management, tls)']);
  });

  it("an unset variable in merged settings is one problem, not one more per place it is merged", () => {
    const ps = problemsOf(`${SHARED.replace("tls: { insecure: true }", "management: \${TOPO_UNSET_MGMT}")}services: [mplogin]\n`);
    expect(ps).toEqual([expect.stringMatching(/^5:17: environment variable TOPO_UNSET_MGMT is not set/)]);
  });

  it("a merge that aliases its way to a bomb is still refused", () => {
    const ps = problemsOf(`${SHARED}a: &a { x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
e: &e [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
d: { <<: *a, y: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e] }
services: [mplogin]
`);
    // Placed at the alias that repeats the most: the first *e of line 13 (1 + 10 × 1,311 values).
    expect(ps).toEqual([expect.stringMatching(/^13:18: cannot read YAML: its aliases \(\*name\) and merge keys \(<<\) repeat more than 10,000 values, counting those inside what they repeat \(the alias \*e here repeats 13,111 values, the most of any\)/)]);
  });

  it("a billion laughs is placed at its largest alias, its count given by its power of ten", () => {
    const levels = Array.from({ length: 30 }, (_, i) => (i === 0 ? "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]" : `l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(", ")}]`));
    const ps = problemsOf(`${SHARED}${levels.join("\n")}\nservices: [mplogin]\n`);
    expect(ps).toEqual([expect.stringMatching(/^38:12: .*\(the alias \*l28 here repeats about 5\.3 × 10\^27 values, the most of any\)/)]);
  });

  it("a file that shares settings by alias with each of 500 services reads (the guard stops only a file that grows without end)", () => {
    const services = Array.from({ length: 500 }, (_, i) => `  - { name: mpsvc${"abcdefghij"[i % 10]}${"abcdefghij"[Math.floor(i / 10) % 10]}${"abcdefghij"[Math.floor(i / 100)]}, async: *q }`).join("\n");
    const ps = problemsOf(`${SHARED}defaults: { async: &q { arguments: { x-max-length: 5 } } }\nservices:\n${services}\n`);
    expect(ps).toEqual([]);
  });

  it("two YAML documents in one file: one YAML document per file, in topo's words", () => {
    const ps = problemsOf(`${SHARED}services: [mplogin]\n---\nservices: [mpwallet]\n`);
    expect(ps).toEqual(['10:1: a second YAML document starts here ("---"); topo reads one YAML document per file: remove the "---", or split the file']);
    expect(ps.join("")).not.toMatch(/parseAllDocuments/);
  });

  const LEN = `${SHARED}services:
  - name: mplogin
    async:
      durable: \${DURABLE:-false}
      arguments:
        x-max-length: \${LEN}
        x-overflow: \${OVERFLOW:-reject-publish}
`;

  it("a value that is exactly one ${VAR} takes the type the schema wants there", () => {
    const qs = argsOf(LEN, { LEN: "100" });
    expect(qs.find((q) => q.name === "mplogin.async")).toEqual({ name: "mplogin.async", durable: false, args: { "x-max-length": 100, "x-overflow": "reject-publish" } });
    expect(parseConfig(`version: \${V}\n${SHARED.slice("version: 1\n".length)}services: [mplogin]\n`, "t.yaml", { V: "1" }).clusters).toHaveLength(2);
    // A URL stays a string, even one made of digits only.
    expect(argsOf(SHARED.replace("/a\n", "/${VH}\n") + "services: [mplogin]\n", { VH: "1" }).length).toBe(2);
  });

  it("a variable that is not what the schema wants there says so, with its name and value", () => {
    expect(problemsOf(LEN, { LEN: "abc" })).toEqual(['14:23: services[0].async.arguments.x-max-length: ${LEN} is "abc", not an integer']);
    expect(problemsOf(LEN, { LEN: "2.5" })).toEqual(["14:23: services[0].async.arguments.x-max-length: ${LEN} is number 2.5, not an integer"]);
  });

  it("an empty variable is set but empty, not unset", () => {
    expect(problemsOf(LEN, { LEN: "" })).toEqual([
      "14:23: environment variable LEN is set but empty, and has no default; give LEN a value or write ${LEN:-default}",
    ]);
    expect(problemsOf(LEN, {})).toEqual([expect.stringMatching(/^14:23: environment variable LEN is not set and has no default/)]);
  });
});

describe("an unset variable inside a longer value", () => {
  it("is placed at its ${, not at the value's start, plain or quoted", () => {
    const file = (url: string) => `version: 1\nclusters:\n  sync:\n    url: ${url}\n  async:\n    url: amqp://guest:guest@h:5672/a\nservices: [mplogin]\n`;
    // "    url: amqp://guest:" is 22 characters: ${PW} starts at column 23 (24 inside quotes).
    expect(problemsOf(file("amqp://guest:${PW}@h:5672/s"))).toEqual([expect.stringMatching(/^4:23: environment variable PW is not set and has no default/)]);
    expect(problemsOf(file('"amqp://guest:${PW}@h:5672/s"'))).toEqual([expect.stringMatching(/^4:24: environment variable PW is not set/)]);
    expect(problemsOf(file("amqp://guest:${PW}@h:5672/s"), { PW: "" })).toEqual([expect.stringMatching(/^4:23: environment variable PW is set but empty/)]);
  });

  it("offers a ${NAME:-default} only where a default is no password written in the file", () => {
    const file = (url: string) => `version: 1\nclusters:\n  sync:\n    url: ${url}\n  async:\n    url: amqp://guest:guest@h:5672/a\nservices: [mplogin]\n`;
    expect(problemsOf(file("amqp://guest:${PW}@h:5672/s"))).toEqual(["4:23: environment variable PW is not set and has no default; export PW"]);
    expect(problemsOf(file("amqp://guest:guest@${HOST}:5672/s"))).toEqual(["4:29: environment variable HOST is not set and has no default; export HOST or write ${HOST:-default}"]);
  });
});

describe("a misspelt key whose value is an unset variable", () => {
  it("is said with the variable, in the same run, not only once the variable is exported", () => {
    const text = [
      "version: 1",
      "clusters:",
      "  sync:",
      "    url: amqp://guest:guest@h:5672/s",
      "    managment: ${MGMT}",
      "  async:",
      "    url: amqp://guest:guest@h:5672/a",
      "users:",
      "  mplogin:",
      "    pasword: ${LOGIN_PW}",
      "    consumes: [mplogin]",
      "services:",
      "  - name: mplogin",
      '    async: { argumnets: { x-max-length: "${LEN}" } }',
      "",
    ].join("\n");
    expect(problemsOf(text)).toEqual([
      '5:5: clusters.sync: unknown key "managment"; did you mean "management"? (allowed: url, management, tls)',
      expect.stringMatching(/^5:16: environment variable MGMT is not set/),
      '10:5: users.mplogin: unknown key "pasword"; did you mean "password"? (allowed: password, password_hash, consumes, publishes, tags, adopt)',
      expect.stringMatching(/^10:14: environment variable LOGIN_PW is not set/),
      '14:14: services[0].async: unknown key "argumnets"; did you mean "arguments"? (allowed: cluster, durable, mirrored, type, arguments)',
      expect.stringMatching(/^14:41: environment variable LEN is not set/),
    ]);
  });
});

describe("passwords for the commands that do not need them", () => {
  const problems = (load: () => unknown): string[] => {
    try {
      load();
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
      throw e;
    }
    return [];
  };
  const text = (ext = "") => `version: 1
${CLUSTERS}services: [mplogin]
users:
  login:
    password: \${TOPO_UNSET_LOGIN_PW}
    consumes: [mplogin]
  edge:
    password: "edge-\${TOPO_UNSET_EDGE}\${TOPO_SET_PART}"
    publishes: all
${ext}`;

  it("stand in for an unset variable and are listed, with passwordsOptional; refused without it", () => {
    const unset = new Set<string>();
    const desired = parseConfig(text(), "t.yaml", { TOPO_SET_PART: "x" }, undefined, unset);
    expect(desired.clusters.map((c) => c.target.name)).toEqual(["sync", "async"]);
    expect([...unset]).toEqual(["users.login.password: ${TOPO_UNSET_LOGIN_PW} is not set", "users.edge.password: ${TOPO_UNSET_EDGE} is not set"]);
    expect(problems(() => parseConfig(text(), "t.yaml", { TOPO_SET_PART: "x" }))).toEqual([
      expect.stringMatching(/^10:15: environment variable TOPO_UNSET_LOGIN_PW is not set/),
      expect.stringMatching(/^13:21: environment variable TOPO_UNSET_EDGE is not set/),
    ]);
  });

  it("the same from a JSON file, whose fast path reads it", () => {
    const json = JSON.stringify({
      version: 1,
      clusters: { sync: { url: "amqp://guest:guest@127.0.0.1:1/s" }, async: { url: "amqp://guest:guest@127.0.0.1:1/a" } },
      services: ["mplogin"],
      users: { login: { password: "${TOPO_UNSET_LOGIN_PW}", consumes: ["mplogin"] } },
    });
    const unset = new Set<string>();
    parseConfig(json, "t.json", {}, undefined, unset);
    expect([...unset]).toEqual(["users.login.password: ${TOPO_UNSET_LOGIN_PW} is not set"]);
  });

  it("a password hash, and a cluster URL's user name and password, stand in too: a lint job validates without secrets (docs/ci.md)", () => {
    const withUrl = text(`  hashed:\n    password_hash: \${TOPO_UNSET_HASH}\n    consumes: [mplogin]\n`).replace(
      "url: amqp://guest:guest@127.0.0.1:1/a",
      "url: amqp://${TOPO_UNSET_URL_USER:-topo}:${TOPO_UNSET_URL_PW}@127.0.0.1:1/a",
    );
    const unset = new Set<string>();
    const desired = parseConfig(withUrl, "t.yaml", { TOPO_SET_PART: "x" }, undefined, unset);
    expect([...unset]).toEqual([
      "clusters.async.url: ${TOPO_UNSET_URL_PW} is not set",
      "users.login.password: ${TOPO_UNSET_LOGIN_PW} is not set",
      "users.edge.password: ${TOPO_UNSET_EDGE} is not set",
      "users.hashed.password_hash: ${TOPO_UNSET_HASH} is not set",
    ]);
    expect(desired.clusters.find((c) => c.target.name === "async")?.target.amqp).toMatchObject({ username: "topo", hostname: "127.0.0.1", vhost: "a" });
  });

  it("only there: an unset variable anywhere else, or a bad reference in a password, is still a problem", () => {
    const elsewhere = text().replace("url: amqp://guest:guest@127.0.0.1:1/a", "url: amqp://guest:${TOPO_UNSET_URL_PW}@${TOPO_UNSET_HOST}:1/a");
    expect(problems(() => parseConfig(elsewhere, "t.yaml", { TOPO_SET_PART: "x" }, undefined, new Set()))).toEqual([
      expect.stringMatching(/environment variable TOPO_UNSET_URL_PW is not set/),
      expect.stringMatching(/environment variable TOPO_UNSET_HOST is not set/),
    ]);
    const bad = text().replace("${TOPO_UNSET_LOGIN_PW}", "${TOPO_UNSET_LOGIN_PW");
    expect(problems(() => parseConfig(bad, "t.yaml", { TOPO_SET_PART: "x" }, undefined, new Set()))).toEqual([expect.stringMatching(/unterminated "\$\{"/)]);
  });
});

describe("schema problems in words that lead to the fix", () => {
  it("a service's sync: or async: written as text says true, false or a mapping, with what to write; a duplicate list item is named at itself", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mpa\n    sync: "false"\n  - name: mpb\n    sync: yes\nusers:\n  u1:\n    password: \${X:-pw}\n    consumes: [mpa, mpb, mpa]\n`);
    expect(ps).toEqual([
      '9:11: services[0].sync: must be true, false or a mapping of settings, not string "false"; write false without quotes',
      '11:11: services[1].sync: must be true, false or a mapping of settings, not string "yes" (YAML 1.2 reads yes, no, on and off as text); write true or false',
      "15:26: users.u1.consumes: item 3 is the same as item 1; list each once",
    ]);
  });
});

describe("a file that is not UTF-8, and variables in keys", () => {
  it("a Latin-1 byte is placed at its character and named as not UTF-8; a NUL says UTF-16 may be why", () => {
    const latin1 = Buffer.concat([Buffer.from(`version: 1\n${CLUSTERS}services:\n  - name: mpa # caf`), Buffer.from([0xe9]), Buffer.from("\n")]).toString("utf8");
    expect(problemsOf(latin1)).toEqual(["8:20: file contains bytes that are not UTF-8 text (binary data, or a file saved as Latin-1 or UTF-16?) here; a topology is UTF-8 YAML text: save it as UTF-8"]);
    expect(problemsOf(`v\u0000e`)).toEqual(["1:2: file contains the control character U+0000 (binary data, or a file saved as UTF-16?) here; a topology is UTF-8 YAML text: save it as UTF-8"]);
  });

  it("a ${VAR} in a key is refused at it, saying variables are read in values only", () => {
    expect(problemsOf(`version: 1\nclusters:\n  \${CLUSTER}:\n    url: amqp://guest:guest@127.0.0.1:1/s\nservices: [mpa]\n`)).toContainEqual(
      "3:3: clusters: ${...} is read in values only, not in keys: write the name itself",
    );
  });
});

describe("values that do not say what they seem to", () => {
  it("a $NAME without braces is a warning at the $, never quoting the value (it may be a password)", () => {
    const warnings: ConfigProblem[] = [];
    parseConfig(`version: 1\n${CLUSTERS.replace("guest:guest@127.0.0.1:1/s", "guest:$RABBITMQ_PASSWORD@127.0.0.1:1/s")}services: [mplogin]\nusers:\n  dv:\n    password: "x$$y$MPLOGIN_PW\${TOPO_SET}"\n    consumes: [mplogin]\n`, "t.yaml", { TOPO_SET: "z" }, undefined, undefined, warnings);
    const bare = warnings.filter((w) => /followed by a name/.test(w.message)).map((w) => `${w.line}:${w.col}: ${w.message}`);
    const tail = "a $ followed by a name is not read as a variable: topo reads ${NAME} (and ${NAME:-default}); if the $ is part of the value, write it $$, which reads as one $";
    expect(bare).toEqual([`4:23: clusters.sync.url: ${tail}`, `10:20: users.dv.password: ${tail}`]);
    expect(bare.join("\n")).not.toMatch(/RABBITMQ_PASSWORD|MPLOGIN_PW/);
  });

  it("a password or URL written as a block scalar that keeps its last line break is refused at it; |- and >- are read", () => {
    const file = (indicator: string) => `version: 1\n${CLUSTERS}services: [mplogin]\nusers:\n  bs:\n    password: ${indicator}\n      Zq7folded!pw\n    consumes: [mplogin]\n`;
    for (const indicator of ["|", ">", "|+"]) {
      expect(problemsOf(file(indicator))).toEqual([
        "10:15: users.bs.password: a block scalar (| or >) keeps its last line break, which would be part of the value: write |- or >- to leave it out, or put the value on the line of its key",
      ]);
    }
    for (const indicator of ["|-", ">-"]) expect(problemsOf(file(indicator))).toEqual([]);
  });

  it("a password or URL whose ${VAR} ends with a line break (echo, a CRLF .env file) is refused at the reference, naming the variable, never its value", () => {
    const file = `version: 1\nclusters:\n  sync:\n    url: amqp://guest:\${TOPO_URL_PW}@\${TOPO_HOST}:1/s\n  async:\n    url: amqp://guest:guest@127.0.0.1:1/a\nservices: [mplogin]\nusers:\n  lb:\n    password: \${TOPO_USER_PW}\n    consumes: [mplogin]\n`;
    const fine = { TOPO_URL_PW: "Zq7", TOPO_HOST: "127.0.0.1", TOPO_USER_PW: "Zq7userpw" };
    expect(problemsOf(file, fine)).toEqual([]);
    const tail = (name: string) =>
      `ends with a line break (a line feed or a carriage return), which would be sent as part of the value: set ${name} without the line break (printf '%s' rather than echo; echo -n before base64 for a Kubernetes secret; a .env file saved with LF line ends, not CRLF)`;
    for (const end of ["\n", "\r", "\r\n"]) {
      const ps = problemsOf(file, { TOPO_URL_PW: `Zq7pw${end}`, TOPO_HOST: `127.0.0.1${end}`, TOPO_USER_PW: `Zq7userpw${end}` });
      expect(ps).toEqual([
        `4:23: clusters.sync.url: environment variable TOPO_URL_PW ${tail("TOPO_URL_PW")}`,
        `4:38: clusters.sync.url: environment variable TOPO_HOST ${tail("TOPO_HOST")}`,
        `10:15: users.lb.password: environment variable TOPO_USER_PW ${tail("TOPO_USER_PW")}`,
      ]);
      expect(ps.join("\n")).not.toMatch(/Zq7/);
    }
    // Elsewhere a number's variable is read trimmed, as before.
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async: { arguments: { x-max-length: \"\${LEN}\" } }\n`, { LEN: "100\n" })).toEqual([]);
  });

  // A .env line "PW=secret " or a CI secret pasted with its trailing space: a user's password was
  // set with the space (apply exited 0, the workers' logins were refused), a URL's password was
  // sent with it (%20) and refused as a wrong password, a tab was "a control character" to
  // percent-encode, and a vhost's variable named the vhost "s " silently.
  it("a password, hash or URL whose ${VAR} starts or ends with a space, a tab or other white space is refused at the reference, saying which", () => {
    const file = `version: 1\nclusters:\n  sync:\n    url: amqp://guest:\${TOPO_URL_PW}@127.0.0.1:1/\${TOPO_VHOST}\n  async:\n    url: \${TOPO_ASYNC_URL}\nservices: [mplogin]\nusers:\n  lb:\n    password: \${TOPO_USER_PW}\n    consumes: [mplogin]\n  lh:\n    password_hash: \${TOPO_HASH}\n    consumes: [mplogin]\n`;
    const hash = "bjrV6CTMCjEewTxOWMUEuYppoT0nXdz9I4C2bCOdBdBd+2hb";
    const fine = { TOPO_URL_PW: "Zq7", TOPO_VHOST: "s", TOPO_ASYNC_URL: "amqp://guest:guest@127.0.0.1:1/a", TOPO_USER_PW: "Zq7userpw", TOPO_HASH: hash };
    expect(problemsOf(file, fine)).toEqual([]);
    // The URL parser drops the spaces at the end of a whole URL: it means the same.
    expect(problemsOf(file, { ...fine, TOPO_ASYNC_URL: `${fine.TOPO_ASYNC_URL}  ` })).toEqual([]);
    const inUrl = (name: string) => `which would be sent as part of the value: set ${name} without it (a .env line, a CI secret or a pasted value often carries one); if the value does hold it, percent-encode it in the variable (a space as %20, a tab as %09)`;
    const cases: Array<[string, string, string]> = [
      [" ", "", "ends with a space"],
      ["\t", "", "ends with a tab"],
      ["", " ", "starts with a space"],
      ["\u00a0", "", "ends with a no-break space (U+00A0)"],
      ["", "\ufeff", "starts with a byte order mark (U+FEFF, from a file saved as \"UTF-8 with BOM\")"],
    ];
    for (const [after, before, edge] of cases) {
      const at = (v: string) => `${before}${v}${after}`;
      const ps = problemsOf(file, { TOPO_URL_PW: at("Zq7pw"), TOPO_VHOST: at("s"), TOPO_ASYNC_URL: at(fine.TOPO_ASYNC_URL), TOPO_USER_PW: at("Zq7userpw"), TOPO_HASH: at(hash) });
      expect(ps, JSON.stringify(edge)).toEqual([
        `4:23: clusters.sync.url: environment variable TOPO_URL_PW ${edge}, ${inUrl("TOPO_URL_PW")}`,
        `4:50: clusters.sync.url: environment variable TOPO_VHOST ${edge}, ${inUrl("TOPO_VHOST")}`,
        ...(after === " "
          ? []
          : [`6:10: clusters.async.url: environment variable TOPO_ASYNC_URL ${edge}, ${inUrl("TOPO_ASYNC_URL")}`]),
        `10:15: users.lb.password: environment variable TOPO_USER_PW ${edge}, which would be sent as part of the value: set TOPO_USER_PW without it (a .env line, a CI secret or a pasted value often carries one); if the password does hold it, give the user's password_hash instead (RabbitMQ's salted hash of it)`,
        `13:20: users.lh.password_hash: environment variable TOPO_HASH ${edge}, which would be sent as part of the value: set TOPO_HASH without it (a .env line, a CI secret or a pasted value often carries one)`,
      ]);
      expect(ps.join("\n")).not.toMatch(/Zq7|bjrV/);
    }
  });
});

describe("a management user whose name holds a colon", () => {
  it("is refused where the name is written: HTTP Basic authentication reads the name up to the colon", () => {
    const tail = `the management API's user name holds a ":" (%3A), which its login (HTTP Basic authentication) cannot carry: the broker reads the name up to the ":" and refuses it; give the cluster a management URL with a user whose name has no ":" (management: http://USER:<password>@HOST:15672, its password from a variable)`;
    const env = { PW: "Zq7pw" };
    const file = (sync: string) => `version: 1\nclusters:\n  sync:\n${sync}  async:\n    url: amqp://svc%3Aro:\${PW}@127.0.0.1:1/a\n    management: http://guest:\${PW}@127.0.0.1:15672\nservices: [mplogin]\n`;
    expect(problemsOf(file("    url: amqp://svc%3Aro:${PW}@127.0.0.1:1/s\n"), env)).toEqual([`4:10: clusters.sync.url: ${tail}, since without one the management API is logged in to as the url's user`]);
    expect(problemsOf(file("    url: amqp://guest:${PW}@127.0.0.1:1/s\n    management: http://svc%3Aro:${PW}@127.0.0.1:15672\n"), env)).toEqual([`5:17: clusters.sync.management: ${tail}`]);
    expect(problemsOf(file("    url: amqp://guest:${PW}@127.0.0.1:1/s\n"), env)).toEqual([]);
  });
});

describe("YAML syntax problems, in words that lead to the fix", () => {
  it("a key given twice names the key and the line of the first", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}services: [mplogin]\nversion: 1\n`);
    expect(ps).toEqual(['8:1: the key "version" is given twice in this mapping (first on line 1); remove one']);
    const nested = problemsOf(`version: 1\nclusters:\n  sync:\n    url: amqp://h/s\n    url: amqp://h/t\n  async: { url: amqp://h/a }\nservices: [mplogin]\n`);
    expect(nested).toEqual(['5:5: the key "url" is given twice in this mapping (first on line 4); remove one']);
  });

  it("a key given twice is said with every other problem of the file, in one run (the later key counts)", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async: { arguments: { x-max-length: 1.5 } }\n  - name: mpwallet\n    name: mpwallet\n`);
    expect(ps).toEqual([
      "9:41: services[0].async.arguments.x-max-length: must be an integer, not number 1.5",
      '11:5: the key "name" is given twice in this mapping (first on line 10); remove one',
    ]);
    // A problem of the value read ("20", the later one) is placed at it and says what it is: it
    // was placed at 10 and said "not number 10", then left out.
    const shadowed = problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async:\n      arguments:\n        x-max-length: 10\n        x-max-length: "20"\n`);
    expect(shadowed).toEqual([
      '12:9: the key "x-max-length" is given twice in this mapping (first on line 11); remove one',
      '12:23: services[0].async.arguments.x-max-length: must be an integer, not string "20"; write it without quotes (x-max-length: 20)',
    ]);
    // So a user given twice: what is wrong with the entry read is said at it, not at the first.
    const users = problemsOf(`version: 1\n${CLUSTERS}services: [mplogin]\nusers:\n  mpbob:\n    password: pw\n    publishes: all\n  "mpbob":\n    password: pw\n`);
    expect(users).toEqual([
      '12:3: the key "mpbob" is given twice in this mapping (first on line 9); remove one',
      "12:3: users.mpbob: user mpbob neither consumes nor publishes anything: give it consumes: [<service>] or publishes: [<service>] (or all)",
    ]);
  });

  it("a key that looks like a URL is not shown", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}services: [mplogin]\nx:\n  amqp://u:Zq8kP4@h/v: 1\n  amqp://u:Zq8kP4@h/v: 2\n`);
    // With the unknown key x, said in the same run.
    expect(ps.find((p) => p.startsWith("10:3:"))).toMatch(/^10:3: a key is given twice in this mapping \(first on line 9\)/);
    expect(ps.join("\n")).not.toContain("Zq8kP4");
  });

  it("under users and clusters, a key that a slip made of a password is not shown; a slip of a key's name is", () => {
    const users = (entry: string) => problemsOf(`version: 1\n${CLUSTERS}services: [mplogin]\nusers:\n  mp-x: ${entry}\n`);
    // No space after "password:" in flow style: the whole "password:Hunt3rS3cret" is a key.
    const glued = users("{password:Hunt3rS3cret, consumes: [mplogin]}");
    // A password holding ", " unquoted in flow style: its tail is a key.
    const split = users("{password: Hunt3r, S3cret, consumes: [mplogin]}");
    for (const ps of [glued, split]) {
      expect(ps.join("\n")).not.toMatch(/Hunt3r|S3cret/);
      expect(ps.join("\n")).toMatch(/^9:\d+: users\.mp-x: unknown key \(a key not shown: here a key can be a piece of a password\)/m);
    }
    expect(users("{pasword: Hunt3rS3cret, consumes: [mplogin]}")).toEqual([expect.stringMatching(/^9:10: users\.mp-x: unknown key "pasword"; did you mean "password"\?/)]);
    const cluster = problemsOf(`version: 1\nclusters:\n  sync: {url: amqp://u:Hunt3r, S3cret@h/s}\n  async: {url: amqp://h/a}\nservices: [mplogin]\n`);
    expect(cluster.join("\n")).not.toMatch(/S3cret/);
    // Given twice, the same rule.
    const twice = users("{password: Hunt3r, S3cret, S3cret, consumes: [mplogin]}");
    expect(twice.join("\n")).not.toMatch(/S3cret/);
    expect(twice.join("\n")).toMatch(/a key is given twice/);
  });

  it("${VAR} unquoted in a flow mapping is one problem that says to quote it or use block style", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async: { arguments: { x-max-length: \${LEN} } }\n`, { LEN: "5" });
    expect(ps).toEqual([
      '9:41: ${...} inside { } or [ ] must be quoted: write "${LEN}" (or use block style, one key per line), since there YAML reads { and } as a mapping\'s start and end',
    ]);
    // The variable's name as written, never its default, which may be a password.
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async: { arguments: { x-max-length: \${LEN:-s3cret} } }\n`, {})[0]).toContain('write "${LEN:-...}"');
    // In a flow sequence too.
    expect(problemsOf(`version: 1\n${CLUSTERS}services: [mplogin, \${SVC}]\n`, { SVC: "mpwallet" })).toEqual([
      expect.stringMatching(/^7:21: \$\{\.\.\.\} inside \{ \} or \[ \] must be quoted/),
    ]);
    // Quoted, or in block style, it is read.
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async: { arguments: { x-max-length: "\${LEN}" } }\n`, { LEN: "5" })).toEqual([]);
  });
});

describe("a user whose password is refused", () => {
  // A refused password says nothing about the user's rights: they are checked in the same run, so
  // that plan (which needs the password) and validate (which does not) report the same problems.
  const text = (password: string) =>
    `version: 1\n${CLUSTERS}services: [mplogin]\nusers:\n  mpbob:\n    password: ${password}\n    consumes: [nosuch]\n    tags: [topo.other]\n`;
  it("still has its rights and tags checked, each at its place", () => {
    expect(problemsOf(text("${BOB_PW}"))).toEqual([
      expect.stringMatching(/^10:15: environment variable BOB_PW is not set and has no default/),
      '11:16: users.mpbob.consumes[0]: no service named "nosuch" in the file (services: mplogin)',
      expect.stringMatching(/^12:12: users\.mpbob\.tags\[0\]: "topo\.other" is in topo's namespace/),
    ]);
    expect(problemsOf(text("[not, a, string]"))).toEqual([
      expect.stringMatching(/^10:15: users\.mpbob\.password: /),
      '11:16: users.mpbob.consumes[0]: no service named "nosuch" in the file (services: mplogin)',
      expect.stringMatching(/^12:12: users\.mpbob\.tags\[0\]: "topo\.other" is in topo's namespace/),
    ]);
  });
});

describe("a quote left open, and the YAML sentences people meet most", () => {
  // The parser places an unclosed quote at the end of the file, and its sentences said what was
  // wrong but not what to do.
  it("places the quote where it opens, and says what to do next", () => {
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - "mplogin\n  - mpwallet\n`)).toEqual([
      '8:5: YAML: Missing closing "quote; the quote opened here is never closed, so the value runs to the end of the file: close it where the value ends',
    ]);
    // An escaped quote inside is no opening; nor is one of a doubled '' pair.
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - "mp\\"login\n`)[0]).toMatch(/^8:5: YAML: Missing closing "quote/);
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - 'mp''login\n`)[0]).toMatch(/^8:5: YAML: Missing closing 'quote/);
    expect(problemsOf(`version: 1\n${CLUSTERS}services:\n  - a: b: c\n`)).toEqual([
      '8:8: YAML: Nested mappings are not allowed in compact mappings; a value that holds ": " is read as another key: put the value in quotes, or put the inner key on a line of its own',
    ]);
  });
});

describe("a user entry the schema refuses", () => {
  // A service listed twice (the schema's problem) hid an unknown service and a tag in topo's
  // namespace in the same entry until it was fixed.
  it("still has the services and tags it names checked, each at its place", () => {
    const text = `version: 1\n${CLUSTERS}services: [mplogin]\nusers:\n  mpbob:\n    password: pw\n    publishes: [nosuch]\n    consumes: [mplogin, mplogin]\n    tags: [topo.other, 5]\n`;
    expect(problemsOf(text)).toEqual([
      '11:17: users.mpbob.publishes[0]: no service named "nosuch" in the file (services: mplogin)',
      "12:25: users.mpbob.consumes: item 2 is the same as item 1; list each once",
      expect.stringMatching(/^13:12: users\.mpbob\.tags\[0\]: "topo\.other" is in topo's namespace/),
      expect.stringMatching(/^13:24: users\.mpbob\.tags\[1\]: must be a string/),
    ]);
  });
});

describe("a problem of a value an alias gives", () => {
  it("is placed where the alias stands, not at its anchor", () => {
    const ps = problemsOf(`version: 1
prefix: mp
clusters:
  sync: { url: "amqp://u:p@h/s" }
  async: { url: "amqp://u:p@h/a" }
services:
  - &s mplogin
  - *s
`);
    expect(ps).toEqual(['8:5: services[1]: duplicate service "mplogin" (also services[0])']);
  });
});

describe("a file whose lines end with a carriage return alone", () => {
  it("is refused at the first, saying to save it with LF line ends, not read as one line", () => {
    const ps = problemsOf("version: 1\nclusters:\r  sync: { url: amqp://guest:guest@127.0.0.1:1/s }\r\nservices: [mplogin]\n");
    expect(ps).toEqual(["2:10: a line ends here with a carriage return alone (CR, not LF or CRLF), which topo does not read as a line end; save the file with LF (or CRLF) line ends"]);
  });
});

describe("YAML errors that said nothing of what to do", () => {
  it("a comma with no value before it, a bracket never closed, and an item indented unlike its siblings (placed at the item)", () => {
    expect(problemsOf('{"version": 1,, "clusters": {}}\n')).toEqual(["1:15: YAML: Unexpected , in flow map; a comma here follows no value (two commas, or one right after { or [): remove it"]);
    const head = "version: 1\nclusters:\n  sync: {url: amqp://guest:guest@127.0.0.1:1/s}\n";
    expect(problemsOf(`${head}   async: {url: amqp://guest:guest@127.0.0.1:1/a}\nservices: [mplogin]\n`)).toEqual([
      "4:4: YAML: All mapping items must start at the same column; indent the items of one mapping or list alike",
    ]);
    expect(problemsOf(`${head}  async: {url: amqp://guest:guest@127.0.0.1:1/a}\nservices:\n  - [mplogin\n`)).toEqual([
      "6:5: YAML: this [ is never closed: the file ends first; close it with ] where the list ends",
    ]);
  });
});

describe("a [ or { never closed", () => {
  // The library says where it stopped: the next line of the block, or the end of the file, lines
  // away from the bracket a user has to close. The place is the bracket itself.
  const head = "version: 1\nclusters:\n";
  it("is placed at the bracket, a mapping's or a list's, saying where YAML stopped", () => {
    expect(problemsOf(`${head}  sync: { url: "amqp://u:p@h/s"\n  async: { url: "amqp://u:p@h/a" }\nservices: [mplogin]\n`)).toEqual([
      "3:9: YAML: this { is not closed before line 4, column 3, where the mapping it opens must end: close it with } where the mapping ends, or, if it continues on that line, indent that line and every line of it further than the key above it",
    ]);
    expect(problemsOf(`${head}  sync: { url: "amqp://u:p@h/s" }\n  async: { url: "amqp://u:p@h/a" }\nservices: [mplogin, mpx\ndefaults: {}\n`)[0]).toMatch(/^5:11: YAML: this \[ is not closed before line 6, column 1, where the list it opens/);
  });

  it("is told from brackets in plain text, quotes and comments before it, and from those closed", () => {
    const before = `${head}  sync:\n    url: amqp://u:p@h:\${PORT:-1}/s # a { in a comment\n    management: "http://h:1/[x"\n  async: {url: 'amqp://u:p@h/a{', management: http://h:1}\n`;
    expect(problemsOf(`${before}services:\n  - mplogin\n  - {name: mpx, sync: {x: 1}\n  - other\n`, { PORT: "5672" })).toEqual([
      "9:5: YAML: this { is not closed before line 10, column 3, where the mapping it opens must end: close it with } where the mapping ends, or, if it continues on that line, indent that line and every line of it further than the key above it",
    ]);
  });
});

describe("a command that connects, where a cluster URL's variable is not set", () => {
  it("is refused at the URL's place in the file, as plan refuses it", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const { loadConfig, refuseUnsetUrls } = await import("../../src/config/load.js");
    const file = join(mkdtempSync(join(tmpdir(), "topo-unset-")), "t.yaml");
    writeFileSync(file, "version: 1\nclusters:\n  sync:\n    url: amqp://guest:guest@127.0.0.1:1/s\n  async:\n    url: amqp://guest:${TOPO_UNSET_P1}@127.0.0.1:1/a\nservices: [mplogin]\n");
    const { unsetUrls } = loadConfig(file, {}, undefined, { passwordsOptional: true });
    let caught: unknown;
    try {
      refuseUnsetUrls(unsetUrls, file, "topo import");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems.map((p) => `${p.line}:${p.col}: ${p.message}`)).toEqual([
      "6:5: clusters.async.url: ${TOPO_UNSET_P1} is not set, and topo import connects with it: export the variable, then run it again (a URL's user name or password, never written in the file)",
    ]);
    // A command that reads the sync cluster alone is not stopped by the async cluster's URL.
    expect(() => refuseUnsetUrls(unsetUrls, file, "topo import", ["sync"])).not.toThrow();
  });
});

describe("columns on a line with characters beyond 16 bits (emoji)", () => {
  // An editor counts 😀 as one character; a JavaScript string holds it as two UTF-16 units, and
  // a column counted in those put every problem after it one column too far right.
  it("counts each such character as one column, in a YAML problem and in a schema problem", () => {
    const yamlProblem = problemsOf('version: 1\n# 😀😀\nclusters: { sync: { url: "amqp://u:p@h/s" } }\nservices: ["😀😀", ]]\n');
    expect(yamlProblem[0]).toMatch(/^4:19: /);
    const schema = problemsOf('version: 1\nclusters:\n  sync: { url: "amqp://u:p@h/s", "😀": 1, x: 2 }\nservices: [mplogin]\n');
    expect(schema).toContain('3:42: clusters.sync: unknown key "x" (allowed: url, management, tls)');
  });

  it("places a control character and a lone carriage return after an emoji at the character", () => {
    expect(problemsOf("version: 1 # 😀\u0007\n")[0]).toMatch(/^1:15: file contains the control character U\+0007/);
    expect(problemsOf("version: 1 # 😀\rclusters: {}\n")[0]).toMatch(/^1:15: a line ends here with a carriage return alone/);
  });
});

describe("a topology file that is not there", () => {
  // In a CI job the directory topo runs in is often not the file's: "no such file; pass the file
  // with -f FILE" was said to a user who had passed -f, and never said where the name was looked up.
  const problems = (file: string): string[] => {
    try {
      loadConfig(file, {});
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map((p) => p.message);
      throw e;
    }
    return [];
  };
  it("names the directory a relative name was read from", () => {
    expect(problems("no-such-topology-file.yaml")).toEqual([
      `no such file in ${process.cwd()}, the directory topo runs in (a relative name is read from there); pass the topology file with -f FILE`,
    ]);
  });
  it("says no directory for a name that is absolute", () => {
    expect(problems("/nonexistent-dir/topology.yaml")).toEqual(["no such file; pass the topology file with -f FILE"]);
  });
});
