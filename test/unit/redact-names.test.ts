// A password that is also a name the output shows (a service, a cluster, a vhost, a user) or a
// word topo prints was masked wherever that word stood: "*** exchange ***.sync", unreadable, and
// the password showed by what had been blanked. Such a password is now masked only where it
// stands as a password (a URL's user-info), and the file is warned about it at its place.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { inSentences, MIN_FREE_TEXT_SECRET, Redactor, standingInWords } from "../../src/redact.js";

function load(text: string, env: Record<string, string>, ext = "yaml") {
  const file = join(mkdtempSync(join(tmpdir(), "topo-names-")), `t.${ext}`);
  writeFileSync(file, text);
  const redactor = new Redactor();
  const r = loadConfig(file, env, redactor);
  return { redactor, warnings: r.warnings.map((w) => w.slice(file.length + 1)) };
}

const NAME = `the URL's password is also a name in this file, so topo's output shows that name as it is (masking it would blank the name everywhere, and show the password by what was blanked); it is masked only where it stands as a password, in URLs: choose a password that is no name`;
const WORD = `the password is a word (letters only), which a sentence of topo's, the broker's or Node's may hold ("RabbitMQ", "Not management user"), so output shows it as it is there (masking it would show it by the sentence around it); it is masked only where it stands as a password, in URLs: choose a password with a digit or a sign in it`;

const topology = `version: 1
clusters:
  sync:
    url: amqp://topo:\${PW}@rabbit:5672/sync
  async:
    url: amqp://topo:\${PW2}@rabbit:5672/async
services: [mplogin]
users:
  mplogin:
    password: \${MPLOGIN_PASSWORD}
    consumes: [mplogin]
`;

describe("a password that is also a name in the output", () => {
  it("is masked only in URLs, so the names stay readable, and is warned about at its place", () => {
    const { redactor, warnings } = load(topology, { PW: "strong-Pw-1", PW2: "mplogin.sync", MPLOGIN_PASSWORD: "mplogin" });
    expect(redactor.text("+ create exchange mplogin on cluster sync: mplogin.sync")).toBe("+ create exchange mplogin on cluster sync: mplogin.sync");
    expect(redactor.text("cluster async: amqp://topo:mplogin.sync@rabbit:5672/async")).toBe("cluster async: amqp://topo:***@rabbit:5672/async");
    // The strong one is still masked wherever it shows up.
    expect(redactor.text("echo strong-Pw-1 and strong%2DPw-1")).not.toContain("strong-Pw-1");
    expect(warnings).toEqual([
      `6:10: clusters.async.url: ${NAME}`,
      `10:15: users.mplogin.password: ${WORD}`,
    ]);
    for (const w of warnings) expect(w).not.toMatch(/mplogin\.password.*mplogin[^.]|strong/);
  });

  it("a password inside a name (gin.sy in mplogin.sync) is one too", () => {
    const { redactor, warnings } = load(topology, { PW: "gin.sy", PW2: "x-Strong-2", MPLOGIN_PASSWORD: "y-Strong-3" });
    expect(redactor.text("+ create queue mplogin.sync")).toBe("+ create queue mplogin.sync");
    expect(warnings.map((w) => w.split(":").slice(0, 3).join(":"))).toEqual(["4:10: clusters.sync.url"]);
  });

  it("a password that is a word is masked only in URLs, whatever sentence holds it, and is warned about", () => {
    // Inside words topo prints (rabbitmqctl, RabbitMQ), the broker's reply (Not management user),
    // and a name (login in mplogin): blanked there, each would show the password.
    const { redactor, warnings } = load(topology, { PW: "rabbitmq", PW2: "Rabbit", MPLOGIN_PASSWORD: "login" });
    const texts = ["hint: rabbitmqctl set_user_tags topo TAGS... monitoring", "cluster sync: amqp://topo:***@rabbit:5672/sync (RabbitMQ 3.10.8)", "+ create exchange mplogin"];
    for (const t of texts) expect(redactor.text(t)).toBe(t);
    expect(redactor.text("amqp://topo:rabbitmq@h/v amqp://topo:Rabbit@h/v")).toBe("amqp://topo:***@h/v amqp://topo:***@h/v");
    expect(warnings.map((w) => w.split(":").slice(0, 3).join(":"))).toEqual(["4:10: clusters.sync.url", "6:10: clusters.async.url", "10:15: users.mplogin.password"]);
    for (const w of warnings) expect(w).toMatch(/is a word \(letters only\)/);
    const management = new Redactor();
    management.add("management");
    expect(management.text("401 not_authorised: Not management user")).toBe("401 not_authorised: Not management user");
    // With a digit or a sign, masked in free text as before.
    const strong = new Redactor();
    strong.add("rabbitmq1");
    strong.add("not-found!");
    strong.add("reader-pw");
    expect(strong.text("x rabbitmq1 y not-found! z reader-pw")).toBe("x *** y *** z ***");
  });

  it("a password that is a term topo's or RabbitMQ's sentences hold (ha-sync-mode, not_authorized) is masked only in URLs, and is warned about", () => {
    // Masked in "ha-mode=all, ***=automatic" or "401 ***: Login failed", it was shown by the words around it.
    const { redactor, warnings } = load(topology, { PW: "ha-sync-mode", PW2: "not_authorized", MPLOGIN_PASSWORD: "y-Strong-3" });
    for (const t of ["+ create policy topo.mp.mirror.sync (pattern ^mp[a-z_]+\\.sync$, ha-mode=all, ha-sync-mode=automatic, priority 0)", "GET http://h:15672/api/whoami -> 401 not_authorized: Login failed"]) {
      expect(redactor.text(t)).toBe(t);
    }
    expect(redactor.text("amqp://topo:ha-sync-mode@h/v")).toBe("amqp://topo:***@h/v");
    expect(warnings.map((w) => w.split(":").slice(0, 3).join(":"))).toEqual(["4:10: clusters.sync.url", "6:10: clusters.async.url"]);
    for (const w of warnings) expect(w).toMatch(/stands in a term that topo's or RabbitMQ's own output holds/);
  });

  it("a password that is a number (a version, an address, a date) is masked only in URLs, and is warned about", () => {
    // Masked in plan's "(RabbitMQ ***)", the broker's version, which no file writes, named it.
    const { redactor, warnings } = load(topology, { PW: "3.10.8", PW2: "127.0.0.2", MPLOGIN_PASSWORD: "2026-12-06" });
    for (const t of ["cluster sync: amqp://topo:***@rabbit:5672/sync (RabbitMQ 3.10.8)", "connect 127.0.0.2:5672 -> ECONNREFUSED", "saved 2026-12-06"]) expect(redactor.text(t)).toBe(t);
    expect(redactor.text("amqp://topo:3.10.8@h/v amqp://topo:127.0.0.2@h/v")).toBe("amqp://topo:***@h/v amqp://topo:***@h/v");
    expect(warnings.map((w) => w.split(":").slice(0, 3).join(":"))).toEqual(["4:10: clusters.sync.url", "6:10: clusters.async.url", "10:15: users.mplogin.password"]);
    for (const w of warnings) expect(w).toMatch(/is a number \(digits, with \. , : - or \/ between them\)/);
    // With a letter, or a sign numbers are not written with, masked in free text as before.
    const strong = new Redactor();
    for (const pw of ["3.10.8a", "31#08#2026", "1.2.3.4.5.6.7.8.9.10.11.12"]) strong.add(pw);
    expect(strong.text("x 3.10.8a y 31#08#2026 z 1.2.3.4.5.6.7.8.9.10.11.12")).toBe("x *** y *** z ***");
  });

  it("a JSON file is warned at the same places", () => {
    const json = JSON.stringify({ version: 1, clusters: { sync: { url: "amqp://topo:${PW}@rabbit:5672/sync" }, async: { url: "amqp://topo:${PW2}@rabbit:5672/async" } }, services: ["mplogin"] });
    expect(load(json, { PW: "strong-Pw-1", PW2: "rabbit" }, "json").warnings).toEqual([expect.stringMatching(/^1:\d+: clusters\.async\.url: the URL's password is a word/)]);
    expect(load(json, { PW: "strong-Pw-1", PW2: "gin.sy" }, "json").warnings).toEqual([expect.stringMatching(/^1:\d+: clusters\.async\.url: the URL's password is also a name/)]);
  });

  it("guest/guest, the README's local broker, is no warning, and its user name stays readable", () => {
    const { redactor, warnings } = load(topology.replace("topo:${PW}", "guest:${PW:-guest}"), { PW2: "x-Strong-2", MPLOGIN_PASSWORD: "y-Strong-3" });
    expect(warnings).toEqual([]);
    expect(redactor.text("cluster sync: amqp://guest:guest@rabbit:5672/sync")).toBe("cluster sync: amqp://guest:***@rabbit:5672/sync");
  });
});

describe("what the redactor masks follows what it has learnt, in any order", () => {
  // What is masked is worked out once and kept between calls (looking for every secret in tens of
  // thousands of names once per printed string made --json of a large plan take minutes): a
  // secret or a name learnt after output began must still count.
  it("a secret added after text() was called is masked from then on", () => {
    const r = new Redactor();
    r.spare(["mplogin", "mplogin.sync"]);
    expect(r.text("before s3cr3t-pw")).toBe("before s3cr3t-pw");
    r.add("s3cr3t-pw");
    expect(r.text("after s3cr3t-pw")).toBe("after ***");
  });

  it("a name spared after text() was called stays readable from then on", () => {
    const r = new Redactor();
    r.add("log1n");
    expect(r.text("create exchange mplog1n")).toBe("create exchange mp***");
    r.spare(["mplog1n"]);
    expect(r.text("create exchange mplog1n")).toBe("create exchange mplog1n");
    expect(r.text("amqp://topo:log1n@rabbit/sync")).toBe("amqp://topo:***@rabbit/sync");
  });
});

describe("many secrets and many names", () => {
  // Each secret used to be looked for in the whole text, and in every name, one after another:
  // validate of 10,000 users took minutes. The text and the names are now read once, and what
  // comes out must be what the one-by-one masking gave.
  function oneByOne(text: string, secrets: string[], words: string[]): string {
    const spared = (s: string) => s.length >= MIN_FREE_TEXT_SECRET && (inSentences(s) || words.some((w) => w.includes(s)));
    let out = text;
    for (const s of secrets.filter((s) => !spared(s)).sort((a, b) => b.length - a.length)) if (s.length >= MIN_FREE_TEXT_SECRET) out = out.split(s).join("***");
    return out;
  }

  it("masks what the one-by-one masking masked, for random secrets, names and texts", () => {
    // A small alphabet, so secrets overlap, contain each other and stand inside names.
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const word = (min: number, max: number) => Array.from({ length: min + random(max - min + 1) }, () => "a1*."[random(4)]).join("");
    for (let round = 0; round < 2000; round++) {
      // Up to 20: a few are looked for one by one, more through their beginnings (redact.ts Finder).
      const secrets = Array.from({ length: 1 + random(20) }, () => word(1, 7));
      const words = Array.from({ length: random(6) }, () => word(3, 12));
      const text = word(0, 60);
      const r = new Redactor();
      for (const s of secrets) r.add(s);
      r.spare(words);
      expect(r.text(text), JSON.stringify({ secrets, words, text })).toBe(oneByOne(text, [...new Set(secrets)], words));
    }
  });

  it("a secret made by masking a longer one is masked too, as before", () => {
    const r = new Redactor();
    r.add("abc1ef");
    r.add("x***y");
    expect(r.text("xabc1efy")).toBe("***");
  });

  it("finds a secret inside a name, at either end or in the middle, and never across two names", () => {
    const names = ["mplogin.sync", "topo.mp", "wallet"];
    expect(standingInWords(["mplo", "login", "sync", "o.mp", "alle", "gin.sync", "wall", "syncto", "mpwa", "abc", "xyzw"], names)).toEqual(
      new Set(["mplo", "login", "sync", "o.mp", "alle", "gin.sync", "wall"]),
    );
  });

  it("finds the one password of 10,000 that stands in one of 60,000 names", () => {
    const names = Array.from({ length: 60_000 }, (_, i) => `mpsvc_${i.toString(36)}.sync`);
    const passwords = Array.from({ length: 10_000 }, (_, i) => `pw-${i}-${(i * 7919) % 100003}`);
    passwords.push("svc_zz.sy");
    expect(standingInWords(passwords, names)).toEqual(new Set(["svc_zz.sy"]));
  });

  it("reads the words only when a secret could stand in one: none for guest/guest, or for secrets that are words or short", () => {
    let reads = 0;
    const words = { *[Symbol.iterator]() { reads++; yield "mplogin.sync"; yield "topo.mp"; } };
    expect(standingInWords(["abc", "ab"], words)).toEqual(new Set());
    expect(reads).toBe(0);
    const r = new Redactor();
    r.spare(words);
    r.add("guest");
    r.add("xyz");
    expect(r.text("guest xyz mplogin.sync")).toBe("guest xyz mplogin.sync");
    expect(reads).toBe(0);
    // A secret with a sign in it may stand in a name: the words are read, and it is spared there.
    r.add("gin.s");
    expect(r.text("mplogin.sync gin.s!")).toBe("mplogin.sync gin.s!");
    expect(reads).toBe(1);
    r.add("n0t-a-name");
    expect(r.text("n0t-a-name")).toBe("***");
  });
});

describe("a password that is a name or a term as plan composes it", () => {
  // Plan prints a policy's definition as key=value, an argument as key=JSON, a permission as
  // "of USER": a password equal to one was masked there ("(pattern ..., ***, ha-sync-mode=automatic)",
  // "+ create permission *** (...)"), and showed by what was blanked, without a warning.
  const users = (pw: string) => ({ PW: "strong-Pw-1", PW2: "x-Strong-2", MPLOGIN_PASSWORD: pw });
  for (const [pw, line] of [
    ["ha-mode=all", "+ create policy topo.mp.mirror.sync (pattern ^mp[a-z_]+\\.sync$, ha-mode=all, ha-sync-mode=automatic, priority 0)"],
    ["of mplogin", "+ create permission of mplogin (configure ^$, write ^mplogin$, read ^mplogin\\.async$)"],
    ["mplogin -> mplogin.sync", "+ create binding mplogin -> mplogin.sync [mplogin.sync.#]"],
  ]) {
    it(`${pw}: shown as the name it is, and warned about at its place`, () => {
      const { redactor, warnings } = load(topology, users(pw));
      expect(redactor.text(line)).toBe(line);
      expect(warnings.some((w) => w.startsWith("10:15: users.mplogin.password: the password is also a name"))).toBe(true);
    });
  }

  it("an argument as plan writes it (x-max-length=100) too", () => {
    const file = topology.replace("services: [mplogin]", "services: [{ name: mplogin, async: { arguments: { x-max-length: 100 } } }]");
    const { redactor, warnings } = load(file, users("x-max-length=100"));
    expect(redactor.text("+ create queue mplogin.async (classic, durable, x-max-length=100)")).toBe("+ create queue mplogin.async (classic, durable, x-max-length=100)");
    expect(warnings.some((w) => w.includes("users.mplogin.password: the password is also a name"))).toBe(true);
  });
});
