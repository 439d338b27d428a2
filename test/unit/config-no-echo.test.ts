// Any value of the file may be a password, so what the loader says about the file's text never
// quotes it: not the YAML library's words (anchor, alias and tag names, scalar text), not a
// "${" the interpolation cannot read, not a URL's query. Each problem is placed at its line and
// column and says what to write instead.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { fragments } from "../helpers/fragments.js";
import { problemsOf } from "../helpers/problems.js";

const SECRET = "Secret123";

/** A file whose user hs-x has `password: <value>` on line 9, the value at column 15. */
function withPassword(value: string): string {
  return `version: 1
clusters:
  sync:
    url: amqp://u:p@127.0.0.1:1/s
  async:
    url: amqp://u:p@127.0.0.1:1/a
services: [mplogin]
users:
  mp-x:
    password: ${value}
    consumes: [mplogin]
`;
}

function expectNoSecret(ps: string[], secret = SECRET): void {
  for (const f of fragments(secret)) expect(ps.join("\n"), f).not.toContain(f);
}

describe("a password that starts with a YAML indicator", () => {
  it.each([`*${SECRET}`, `|${SECRET}`, `>${SECRET}`, `&${SECRET} rest`, `!${SECRET}`, `!!str ${SECRET}`, `@${SECRET}`, `%${SECRET}`, `\`${SECRET}`, `&${SECRET}`])(
    "%s is one problem at its line:col, quoting nothing of it, saying to quote the value",
    (value) => {
      const ps = problemsOf(withPassword(value));
      expect(ps, value).toHaveLength(1);
      expect(ps[0]).toMatch(/^10:15: /);
      expect(ps[0]).toMatch(/quotes/);
      expectNoSecret(ps);
    },
  );

  it("quoted, it is the password", () => {
    const d = parseConfig(withPassword(`"*${SECRET}"`), "t.yaml", {});
    const { hashFor, matches } = d.clusters[0]!.users!.credentials;
    const stored = hashFor("mp-x");
    expect(matches("mp-x", { hash: stored.password_hash, algorithm: stored.hashing_algorithm })).toBe(true);
    const other = parseConfig(withPassword(`"${SECRET}"`), "t.yaml", {}).clusters[0]!.users!.credentials;
    expect(other.matches("mp-x", { hash: stored.password_hash, algorithm: stored.hashing_algorithm })).toBe(false);
  });

  it("an alias with no anchor anywhere is placed where it is, and not named", () => {
    const ps = problemsOf(`version: 1\nclusters: { sync: { url: "amqp://h/s" } }\nservices: [*${SECRET}]\n`);
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(/^3:12: /);
    expectNoSecret(ps);
  });

  it("an anchor or alias elsewhere still works (merge keys share a cluster's settings)", () => {
    const d = parseConfig(
      `version: 1\nclusters:\n  sync: &c\n    url: amqp://u:p@127.0.0.1:1/s\n  async:\n    <<: *c\n    url: amqp://u:p@127.0.0.1:1/a\nservices: [&s mplogin]\n`,
      "t.yaml",
      {},
    );
    expect(d.clusters).toHaveLength(2);
  });

  it("an unknown tag anywhere is a problem, not a silently changed value", () => {
    const ps = problemsOf(`version: 1\nclusters: { sync: { url: "amqp://h/s" } }\nservices: [{ name: !${SECRET} mplogin, async: false }]\n`);
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(/^3:20: /);
    expectNoSecret(ps);
  });
});

describe("no YAML message quotes the file", () => {
  it.each([
    `"${SECRET}\\q"`,
    `'${SECRET}`,
    `"${SECRET}`,
    `[${SECRET}`,
    `{${SECRET}`,
    `- ${SECRET}`,
    `? ${SECRET}`,
    `${SECRET}\n      ${SECRET}: x`,
    `${SECRET}\n  ${SECRET}\n ${SECRET}: }`,
  ])("%j", (value) => {
    const ps = problemsOf(withPassword(value));
    expect(ps.length).toBeGreaterThan(0);
    expectNoSecret(ps);
  });

  it("an unexpected token in the stream is described, not quoted", () => {
    const ps = problemsOf(`version: 1\nclusters:\n  sync: { url: "amqp://h/s" }\n  }\n${SECRET}: x\n`);
    expect(ps.length).toBeGreaterThan(0);
    expectNoSecret(ps);
  });
});

describe("a \"${\" that is no variable reference, in a password or a URL", () => {
  const url = (u: string) => `version: 1\nclusters:\n  sync:\n    url: ${u}\nservices: [{ name: mplogin, async: false }]\n`;

  it.each([
    ["amqp://u:Pa${9secretpart}ss@127.0.0.1:5672/v", "9secretpart", "4:21: "],
    ["amqp://u:Pa${secret-part}ss@127.0.0.1:5672/v", "secret-part", "4:21: "],
    ["amqp://u:Pa${}ss@127.0.0.1:5672/v", "Pa${}ss", "4:21: "],
  ])("%s: placed at the ${, not quoted, says $$", (u, secret, at) => {
    const ps = problemsOf(url(u));
    expect(ps).toHaveLength(1);
    expect(ps[0]?.startsWith(at), ps[0]).toBe(true);
    expect(ps[0]).toMatch(/\$\$/);
    expectNoSecret(ps, secret);
    expect(ps[0]).not.toContain("secret");
  });

  it("in users.NAME.password, also with --json's data", () => {
    const ps = problemsOf(withPassword("Pa${9SecretF}x"));
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(/^10:17: users\.mp-x\.password: /);
    expect(ps[0]).toMatch(/\$\$/);
    expectNoSecret(ps, "9SecretF");
  });

  it("elsewhere a mistyped name is still shown", () => {
    expect(problemsOf(`version: 1\nclusters: { sync: { url: "amqp://h/s" } }\nservices: [{ name: "\${1BAD}", async: false }]\n`)).toEqual([
      '3:21: "${1BAD}" is not a variable reference; write ${NAME} or ${NAME:-default}',
    ]);
  });
});
