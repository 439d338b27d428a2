// topo import --url / --management: a mistake in a URL typed on the command line is named by its
// option and the part that is wrong, with the URL shown masked: never its password, query or
// fragment, whether the URL parses or not. These all fail before any broker is asked.

import { describe, expect, it } from "vitest";
import { importTopology } from "../../src/commands/import.js";
import { TopoError } from "../../src/errors.js";
import { Redactor } from "../../src/redact.js";
import { fragments } from "../helpers/fragments.js";

async function failure(urls: string[], managements: string[] = []): Promise<TopoError> {
  const redactor = new Redactor();
  try {
    await importTopology({ file: "topology.yaml", urls, managements, env: { RABBITMQ_PASSWORD: "x" }, redactor });
  } catch (e) {
    expect(e).toBeInstanceOf(TopoError);
    // What the CLI prints goes through its redactor too; the text must be safe before that.
    const err = e as TopoError;
    expect(redactor.text(err.message)).toBe(err.message);
    return err;
  }
  throw new Error("import did not fail");
}

const said = (e: TopoError) => [e.message, ...e.hints].join("\n");

describe("a --url that is wrong", () => {
  it("is shown masked when it lacks its // or its scheme, and the message says so", async () => {
    const cases: [string, RegExp][] = [
      ["amqp:/hs-p1:Secret1@localhost:5672/hs-sync", /^--url amqp:\/hs-p1:\*\*\*@localhost:5672\/hs-sync: not a URL: "amqp:" is not followed by "\/\/"$/],
      ["amqp:hs-p1:Secret1@localhost:5672/hs-sync", /^--url amqp:hs-p1:\*\*\*@localhost:5672\/hs-sync: not a URL: "amqp:" is not followed by "\/\/"$/],
      ["hs-p1:Secret1@localhost:5672/hs-sync", /^--url hs-p1:\*\*\*@localhost:5672\/hs-sync: not a URL: it does not start with a scheme and :\/\//],
      ["sync=hs-p1:Secret1@localhost:5672/hs-sync", /^--url sync=hs-p1:\*\*\*@localhost:5672\/hs-sync: not a URL: it does not start with a scheme/],
      ["amqp://hs-p1:Sec/ret1@localhost:5672/hs-sync", /^--url amqp:\/\/hs-p1:\*\*\*@localhost:5672\/hs-sync: not a URL: the password holds "\/"/],
    ];
    for (const [url, message] of cases) {
      const e = await failure([url]);
      expect(e.message, url).toMatch(message);
      expect(said(e)).not.toMatch(/Secret1|Sec\/ret1|ret1/);
      expect(e.hints).toEqual([expect.stringMatching(/^write amqp:\/\/USER@HOST:5672\/VHOST/)]);
    }
  });

  it("never shows a query's or a fragment's values", async () => {
    for (const [url, found] of [
      ["amqp://hs-p1:Secret1@localhost:5672/hs-sync?x=Secret4", 'the query parameter "x"'],
      ["amqp://hs-p1:Secret1@localhost:5672/hs-sync#Pwsecret", "a #fragment"],
    ]) {
      const e = await failure([url as string]);
      expect(e.message).toContain(`(found ${found})`);
      expect(said(e)).not.toMatch(/Secret|Pwsecret/);
    }
  });

  it("holding a password of any form is masked in every message", async () => {
    const pw = "p@ss:w/rd%1";
    for (const url of [`amqp://user:${pw}@localhost:5672/v`, `amqp:/user:${pw}@localhost/v`, `user:${pw}@localhost/v`]) {
      const e = await failure([url]);
      for (const f of fragments(pw, 4)) expect(said(e), `${url}: ${f}`).not.toContain(f);
    }
  });
});

describe("a --management that is wrong", () => {
  const url = "amqp://u:Secret1@localhost:5672/v";
  it("is blamed on --management, with its own hint", async () => {
    const e = await failure([url], ["http://localhost:15672/?pw=x"]);
    expect(e.message).toBe("--management http://localhost:15672/?…: management URL may not have a query or fragment: give the management plugin's base URL, e.g. http://localhost:15672 (the web UI's address without its #/...)");
    expect(e.hints).toEqual(["write http://HOST:15672 (https:// for TLS)"]);
    const named = await failure([`sync=${url}`], ["sync=http://localhost:15672/#Secret5"]);
    expect(named.message).toBe("--management sync=http://localhost:15672/#…: management URL may not have a query or fragment: give the management plugin's base URL, e.g. http://localhost:15672 (the web UI's address without its #/...)");
  });

  it("with credentials or without its // is refused without showing them", async () => {
    for (const m of ["http://u:Secret5@localhost:15672", "http:/u:Secret5@localhost:15672", "u:Secret5@localhost:15672"]) {
      const e = await failure([url], [m]);
      expect(e.message, m).toMatch(/^--management (http:\/\/?)?u:\*\*\*@localhost:15672(: not a URL| holds credentials)/);
      expect(said(e)).not.toMatch(/Secret/);
    }
  });
});
