// A key is a name (a user's, a cluster's, a setting's): what YAML reads it as must be the text
// written. YAML 1.2 reads a plain 0x10, 007, 1e3, True or ~ as a number, a boolean or null, and
// JavaScript then names the key by that value ("16", "7", "1000", "true", ""): a user written 007
// would be created as user 7, and two keys written 16 and "16" (or true and "true") are one key,
// the second silently replacing the first.

import { describe, expect, it } from "vitest";
import { isScalar, LineCounter, parseDocument } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { problemsOf } from "../helpers/problems.js";

const CLUSTERS = `clusters:
  sync:
    url: amqp://guest:guest@127.0.0.1:1/s
  async:
    url: amqp://guest:guest@127.0.0.1:1/a
`;
const HEAD = `version: 1\n${CLUSTERS}services: [mplogin]\n`;

describe("keys YAML reads as something other than the text written", () => {
  it("a user name YAML reads as a number is refused at its key, with the quotes to write", () => {
    const ps = problemsOf(`${HEAD}users:\n  007:\n    password: pw\n    consumes: [mplogin]\n  0x10:\n    password: pw\n    consumes: [mplogin]\n`);
    expect(ps).toEqual([
      `9:3: users: YAML reads the key 007 as the number 7, not as the text written; put it in quotes ("007") to mean the text`,
      `12:3: users: YAML reads the key 0x10 as the number 16, not as the text written; put it in quotes ("0x10") to mean the text`,
    ]);
  });

  it("quoted, the same names are the users the file names", () => {
    const d = parseConfig(`${HEAD}users:\n  "007":\n    password: pw\n    consumes: [mplogin]\n`, "t.yaml", {});
    const users = d.clusters.flatMap((c) => c.resources.filter((r) => r.kind === "user").map((r) => (r as { name: string }).name));
    expect([...new Set(users)]).toEqual(["007"]);
  });

  it("a key written as a number that reads back the same (16) is that name", () => {
    expect(problemsOf(`${HEAD}users:\n  16:\n    password: pw\n    consumes: [mplogin]\n`)).toEqual([]);
  });

  it("a problem under a key of digits is placed at that key's value and named by it, not as a list's index", () => {
    // "008" is refused as a key, then read as the text written: its password problem was placed at
    // the users mapping (line 8, another user's) and said of users[8], with the value "empty".
    const ps = problemsOf(`${HEAD}users:\n  edge:\n    password: pw\n    publishes: all\n  008:\n    password: 5\n    consumes: [mplogin]\n  16:\n    password: 6\n    consumes: [mplogin]\n`);
    expect(ps).toEqual([
      `12:3: users: YAML reads the key 008 as the number 8, not as the text written; put it in quotes ("008") to mean the text`,
      `13:15: users["008"].password: must be a string, not number; put it in quotes to mean the text: YAML reads it as a number`,
      `16:15: users["16"].password: must be a string, not number; put it in quotes to mean the text: YAML reads it as a number`,
    ]);
  });

  it("a password of digits, or true, is told to be quoted, and is not shown", () => {
    // "must be a string, not number" alone did not say what to do: quotes keep the text.
    const ps = problemsOf(`${HEAD}users:\n  edge:\n    password: 98765432\n    publishes: all\n  worker:\n    password_hash: true\n    consumes: [mplogin]\n`);
    expect(ps).toEqual([
      `10:15: users.edge.password: must be a string, not number; put it in quotes to mean the text: YAML reads it as a number`,
      `13:20: users.worker.password_hash: must be a string, not boolean; put it in quotes to mean the text: YAML reads it as true or false`,
    ]);
  });

  it("True, 1e3 and ~ as keys are refused the same way", () => {
    const ps = problemsOf(`${HEAD}users:\n  True: { password: pw, consumes: [mplogin] }\n  1e3: { password: pw, consumes: [mplogin] }\n  ~: { password: pw, consumes: [mplogin] }\n`);
    expect(ps).toEqual([
      `9:3: users: YAML reads the key True as the boolean true, not as the text written; put it in quotes ("True") to mean the text`,
      `10:3: users: YAML reads the key 1e3 as the number 1000, not as the text written; put it in quotes ("1e3") to mean the text`,
      `11:3: users: YAML reads the key ~ as null (no value), not as the text written; put it in quotes ("~") to mean the text`,
      // Quoted, "~" is still no user name: said in the words of users' names.
      `11:3: users: user name "~" must be 1 to 128 letters, digits, _ . @ and - (starting with a letter or a digit)`,
    ]);
  });

  it("a cluster written null is refused at its own line, not at the first cluster's", () => {
    const ps = problemsOf(`version: 1\nclusters:\n  sync: { url: "amqp://h/s" }\n  async: { url: "amqp://h/a" }\n  null: { url: "amqp://h/n" }\nservices: [mplogin]\n`);
    expect(ps).toEqual([`5:3: clusters: YAML reads the key null as null (no value), not as the text written; put it in quotes ("null") to mean the text`]);
  });

  it("two keys YAML reads as one name (16 and \"16\", true and \"true\") are a key given twice, not one silently replacing the other", () => {
    const users = problemsOf(`${HEAD}users:\n  16: { password: pw1, consumes: [mplogin] }\n  "16": { password: pw2, consumes: [mplogin] }\n`);
    expect(users).toEqual(['10:3: the key "16" is given twice in this mapping (first on line 9); remove one']);
    const clusters = problemsOf(`version: 1\nclusters:\n  sync: { url: "amqp://h/s" }\n  true: { url: "amqp://h/a" }\n  "true": { url: "amqp://h/b" }\ndefaults: { async: { cluster: sync } }\nservices: [mplogin]\n`);
    expect(clusters).toEqual(['5:3: the key "true" is given twice in this mapping (first on line 4); remove one']);
  });

  it("written differently, the message says how YAML read the first", () => {
    const ps = problemsOf(`${HEAD}users:\n  0x10: { password: pw1, consumes: [mplogin] }\n  "16": { password: pw2, consumes: [mplogin] }\n`);
    expect(ps).toEqual([
      '9:3: users: YAML reads the key 0x10 as the number 16, not as the text written; put it in quotes ("0x10") to mean the text',
      '10:3: the key "16" is given twice in this mapping (first on line 9, where YAML reads 0x10 as 16); remove one',
    ]);
  });

  it("a list or a mapping as a key is refused at it", () => {
    const ps = problemsOf(`${HEAD}users:\n  ? [svc, x]\n  : { password: pw, consumes: [mplogin] }\n`);
    expect(ps).toEqual([`9:5: users: a key must be a name, not a list; write the name as text`]);
  });
});

describe("names the schema refuses are described by the rule of their place", () => {
  it("a user name is told the users' rule, not the clusters'", () => {
    expect(problemsOf(`${HEAD}users:\n  "bad name": { password: pw, consumes: [mplogin] }\n`)).toEqual([
      `9:3: users: user name "bad name" must be 1 to 128 letters, digits, _ . @ and - (starting with a letter or a digit)`,
    ]);
    // Upper case is fine for a user, as the rule says.
    expect(problemsOf(`${HEAD}users:\n  Admin.Ops: { password: pw, consumes: [mplogin] }\n`)).toEqual([]);
    expect(problemsOf(`version: 1\nclusters:\n  Sync: { url: "amqp://h/s" }\nservices: []\n`)).toEqual([
      `3:3: clusters: name "Sync" must be lowercase letters, digits, - and _ (starting with a letter)`,
    ]);
  });
});

describe("aliases and merge keys YAML cannot read into data, at their place", () => {
  it("an alias inside the node it names is refused at the alias, not a crash", () => {
    expect(problemsOf(`version: 1\n${CLUSTERS}services: &s [mplogin, *s]\n`)).toEqual([
      `7:24: services[1]: this alias (*name) is inside the node its anchor names, so it would hold itself; YAML cannot read that: write the values out`,
    ]);
  });

  it("a merge key (<<) inside the mapping it merges is refused at the alias, not as an alias bomb at 1:1", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync: &d\n    durable: false\n    <<: *d\nservices: [mplogin]\n`);
    expect(ps).toEqual([
      `10:9: defaults.sync: this alias (*name) is inside the node its anchor names, so it would hold itself; YAML cannot read that: write the values out`,
    ]);
  });

  it("a merge key whose value is not a mapping is refused at the value, with what it takes", () => {
    const TAKES = "a merge key (<<) takes a mapping, an alias of one (<<: *name) or a list of them ([*a, *b])";
    expect(problemsOf(`version: 1\n${CLUSTERS}n: &n 5\ndefaults:\n  sync:\n    <<: *n\nservices: [mplogin]\n`)).toEqual([
      `7:1: (top level): unknown key "n" (allowed: $schema, version, prefix, clusters, defaults, services, users)`,
      `10:9: defaults.sync: ${TAKES}, not a single value`,
    ]);
    expect(problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync:\n    <<: [{ durable: false }, 3]\nservices: [mplogin]\n`)).toEqual([
      `9:30: defaults.sync: ${TAKES}, not a single value`,
    ]);
    expect(problemsOf(`version: 1\n${CLUSTERS}services: [mplogin]\n<<: oops\n`)).toEqual([`8:5: (top level): ${TAKES}, not a single value`]);
    // An alias with no anchor there is said as anywhere else, with every other problem of the file.
    expect(problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync:\n    <<: *nowhere\n    durable: 3\nservices: [mplogin]\n`)).toEqual([
      `9:9: defaults.sync: YAML reads this value as an alias (*name), and no anchor (&name) of that name is set before it; if it is text (a password, say), put it in quotes ('...', or "..." with \\\\ for a backslash)`,
      `10:14: defaults.sync.durable: must be a boolean, not number 3`,
    ]);
    // What it takes is read as before: own keys win over merged ones.
    expect(problemsOf(`version: 1\n${CLUSTERS}x: &m { durable: true }\ndefaults:\n  sync:\n    <<: [*m, { mirrored: false }]\n    durable: false\nservices: [mplogin]\n`)).toEqual([
      `7:1: (top level): unknown key "x" (allowed: $schema, version, prefix, clusters, defaults, services, users)`,
    ]);
  });
});

describe("tags YAML knows that make something other than a topology file's values", () => {
  it("!!omap, !!set, !!pairs, !!binary and !!timestamp are refused at the tag, so nothing under them is lost unsaid", () => {
    // The library makes a Map or a Set of !!omap and !!set: the schema took it for an empty
    // mapping, and users: !!omap [...] planned to delete the users it lists.
    const ps = problemsOf(
      `${HEAD.replace("services: [mplogin]\n", "")}services:\n  - name: mplogin\n    async: !!omap\n      - durable: false\n    sync:\n      arguments: !!set {? x-max-length}\n  - name: mpbin\n    async: { arguments: { x-dead-letter-exchange: !!binary aGVsbG8=, x-message-ttl: !!timestamp 2001-12-14 } }\nusers: !!pairs\n  - bob: { password: pw, consumes: [mplogin] }\n`,
    );
    const tail = "makes YAML read this as something other than text, a number, true/false, a mapping or a list, the only values a topology file holds, so what it holds would be lost: write it without the tag";
    expect(ps).toEqual([
      `9:12: services[0].async: the tag !!omap ${tail} (as a plain mapping: key: value lines)`,
      `12:18: services[0].sync.arguments: the tag !!set ${tail}`,
      `14:51: services[1].async.arguments.x-dead-letter-exchange: the tag !!binary ${tail}`,
      `14:85: services[1].async.arguments.x-message-ttl: the tag !!timestamp ${tail}`,
      `15:8: users: the tag !!pairs ${tail} (as a plain mapping: key: value lines)`,
    ]);
  });

  it("the core schema's own tags read as the values they name", () => {
    const d = parseConfig(`${HEAD.replace("services: [mplogin]\n", "")}services:\n  - name: mplogin\n    async: !!map { arguments: { x-dead-letter-exchange: !!str dlx, x-max-length: !!int 5 } }\n`, "t.yaml", {});
    const q = d.clusters.flatMap((c) => c.resources).find((r) => r.kind === "queue" && r.name === "mplogin.async");
    expect(q).toMatchObject({ arguments: { "x-dead-letter-exchange": "dlx", "x-max-length": 5 } });
  });
});

describe("a mistyped key is told the key it most likely means", () => {
  it("two letters swapped count as one slip, so short keys are suggested too", () => {
    const ps = problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync: { durabel: false, tpye: classic, clsuter: sync }\nservices:\n  - name: mplogin\n    snyc: false\nusers:\n  u: { tgas: [x], password: p, consumes: [mplogin] }\n`);
    expect(ps).toEqual([
      `8:11: defaults.sync: unknown key "durabel"; did you mean "durable"? (allowed: cluster, durable, mirrored, type, arguments)`,
      `8:27: defaults.sync: unknown key "tpye"; did you mean "type"? (allowed: cluster, durable, mirrored, type, arguments)`,
      `8:42: defaults.sync: unknown key "clsuter"; did you mean "cluster"? (allowed: cluster, durable, mirrored, type, arguments)`,
      `11:5: services[0]: unknown key "snyc"; did you mean "sync"? (allowed: name, sync, async)`,
      `13:8: users.u: unknown key "tgas"; did you mean "tags"? (allowed: password, password_hash, consumes, publishes, tags, adopt)`,
    ]);
  });

  it("a word far from every key gets no guess", () => {
    expect(problemsOf(`version: 1\n${CLUSTERS}defaults:\n  sync: { colour: red }\nservices: [mplogin]\n`)).toEqual([
      `8:11: defaults.sync: unknown key "colour" (allowed: cluster, durable, mirrored, type, arguments)`,
    ]);
  });
});

describe("keys given twice are found where the YAML parser's own check finds them", () => {
  // topo finds keys given twice itself: the parser's check (uniqueKeys) compares each key with
  // every key before it in its mapping, minutes for 10,000 users. The parser's check, with
  // topo's rule for one name (16 and "16"), is the measure of where each one is.
  const sameName = (a: unknown, b: unknown): boolean => {
    if (a === b) return true;
    if (!isScalar(a) || !isScalar(b)) return false;
    if (a.value === b.value) return true;
    const name = (v: unknown) => (typeof v === "symbol" ? undefined : v === null || v === undefined ? "" : String(v));
    return name(a.value) !== undefined && name(a.value) === name(b.value);
  };
  const parserPlaces = (text: string): string[] => {
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: sameName, merge: true, prettyErrors: false });
    return doc.errors.filter((e) => e.code === "DUPLICATE_KEY").map((e) => `${lc.linePos(e.pos[0]).line}:${lc.linePos(e.pos[0]).col}`);
  };
  const topoPlaces = (text: string): string[] => problemsOf(text).filter((p) => / is given twice in this mapping /.test(p)).map((p) => p.split(":").slice(0, 2).join(":"));

  it.each([
    ["a key written alike, at the top", `${HEAD}version: 1\n`],
    ["three times, each after the first", `${HEAD}x:\n  k: 1\n  k: 2\n  k: 3\n`],
    ["with anchors", `${HEAD}x:\n  &a k: 1\n  &b k: 2\n`],
    ["with a tag", `${HEAD}x:\n  !!str 16: 1\n  16: 2\n`],
    ["as explicit keys", `${HEAD}x:\n  ? k\n  : 1\n  ? k\n  : 2\n`],
    ["as block scalars", `${HEAD}x:\n  ? |\n    block\n  : 1\n  ? |\n    block\n  : 2\n`],
    ["in flow mappings", `${HEAD}x: {a: 1, a: 2, b: 3, a: 4}\ny: [ {q: 1, "q": 2} ]\n`],
    ["empty", `${HEAD}x:\n  : 1\n  : 2\n`],
    ["null in its three spellings", `${HEAD}x:\n  ~: 1\n  null: 2\n  "": 3\n`],
    ["nested, told in the order of the file", `${HEAD}x:\n  y:\n    z: 1\n    z: 2\n  w: 1\n  w: 2\nx: 3\n`],
    ["quoted and plain", `${HEAD}x:\n  'k': 1\n  "k": 2\n  k: 3\n  k : 4\n`],
    ["a number and its text", `${HEAD}x:\n  1.0: a\n  1: b\n  true: c\n  "true": d\n`],
  ])("%s", (_what, text) => {
    const places = parserPlaces(text);
    expect(places.length).toBeGreaterThan(0);
    expect(topoPlaces(text)).toEqual(places);
  });

  it("two merge keys are none: both are merged, as the parser lets them be", () => {
    const text = `${HEAD}base: &b {a: 1}\nother: &c {b: 2}\nx:\n  <<: *b\n  <<: *c\n`;
    expect(parserPlaces(text)).toEqual([]);
    expect(topoPlaces(text)).toEqual([]);
  });

  it("before an unquoted ${VAR} in a flow mapping, still said, in its own words", () => {
    const ps = problemsOf(`version: 1\nversion: 1\n${CLUSTERS}services:\n  - name: mplogin\n    async: { arguments: { x-max-length: \${LEN} } }\n`, { LEN: "5" });
    expect(ps).toEqual([
      '2:1: the key "version" is given twice in this mapping (first on line 1); remove one',
      expect.stringMatching(/^10:41: \$\{\.\.\.\} inside \{ \} or \[ \] must be quoted/),
    ]);
  });

  it("among other YAML problems, each at its place in the order of the file", () => {
    expect(problemsOf(`${HEAD}x:\n  k: 1\n  k: 2\ny:\n\tz: 1\nw: 1\nw: 2\n`)).toEqual([
      '10:3: the key "k" is given twice in this mapping (first on line 9); remove one',
      "12:1: YAML: Tabs are not allowed as indentation; indent with spaces (set the editor to insert spaces for a tab)",
      '14:1: the key "w" is given twice in this mapping (first on line 13); remove one',
    ]);
  });
});
