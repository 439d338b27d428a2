// URLs of the file that are wrong are explained by the part that is wrong, never echoed: not the
// URL, not a piece of its password, whatever the password holds.

import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { hostPort, whyNotAUrl } from "../../src/config/url.js";
import { fragments } from "../helpers/fragments.js";
import { problemsOf } from "../helpers/problems.js";


function file(sync: string, management?: string): string {
  const m = management === undefined ? "" : `\n    management: ${JSON.stringify(management)}`;
  return `version: 1\nclusters:\n  sync:\n    url: ${JSON.stringify(sync)}${m}\n  async:\n    url: amqp://guest:guest@127.0.0.1:1/a\nservices: [mplogin]\n`;
}

describe("whyNotAUrl", () => {
  it("names the part that is wrong", () => {
    expect(whyNotAUrl("")).toBe("it is empty");
    expect(whyNotAUrl("localhost:5672")).toMatch(/does not start with a scheme/);
    expect(whyNotAUrl("amqp://u:Xy7/kP9+qR==@host/vh")).toMatch(/^the password holds .* percent-encode the password \(e\.g\. \/ as %2F/);
    expect(whyNotAUrl("amqp://u:p@ss:w/rd%1@127.0.0.1/a")).toMatch(/^the password holds/);
    expect(whyNotAUrl("amqp://us/er:pw@host/vh")).toMatch(/^the user name or password holds/);
    expect(whyNotAUrl("amqp://u:pw@[::1/v")).toBe("the IPv6 address has no closing ]");
    expect(whyNotAUrl("amqp://u:pw@host:56x/v")).toBe("the port is not a number");
    expect(whyNotAUrl("amqp://u:pw@host:99999/v")).toBe("the port is more than 65535");
    expect(whyNotAUrl("amqp://user:secret")).toMatch(/^the port is not a number \(a user and password go before an @/);
    expect(whyNotAUrl("amqp://u:pw@ho^st/v")).toMatch(/host name holds characters/);
  });

  // The URL parser takes white space in the user-info and the path (as %20): a URL refused for
  // its port was said to be refused for a space in its password, with the advice to encode it.
  it("says white space is wrong only where it is, in the host or port", () => {
    expect(whyNotAUrl("amqp://guest:gu est@127.0.0.1:99999/a")).toBe("the port is more than 65535");
    expect(whyNotAUrl("amqp://guest:gu est@127.0.0.1:56x/a b")).toBe("the port is not a number");
    expect(whyNotAUrl("amqp://guest:guest@127.0.0.1 :5672/a")).toBe("the host or port holds white space, which a host name and a port cannot have; remove it");
    expect(whyNotAUrl("amqp://guest:gu est@ex ample/a")).toBe("the host or port holds white space, which a host name and a port cannot have; remove it");
    expect(whyNotAUrl("amqp://user:sec ret")).toMatch(/^the host or port holds white space \(a user and password go before an @/);
  });
});

describe("bad URLs in the file", () => {
  const passwords = ["Xy7/kP9+qR==", "p@ss:w/rd%1", "a:b@c", "s3cr#et?x", "p%zzQ7x!", "12/kP9abc"];
  it("are refused without any piece of the password, and say to percent-encode it", () => {
    for (const pw of passwords) {
      for (const text of [
        file(`amqp://user:${pw}@127.0.0.1:5672/vh`),
        file("amqp://guest:guest@127.0.0.1:5672/vh", `http://user:${pw}@127.0.0.1:15672`),
      ]) {
        const ps = problemsOf(text);
        // a:b@c is a valid password in a URL as written; the others are not.
        if (pw === "a:b@c") {
          expect(ps).toEqual([]);
          continue;
        }
        expect(ps.length, `${pw}: ${text}`).toBe(1);
        expect(ps[0]).toMatch(/^4:10: clusters\.sync\.url: |^5:17: clusters\.sync\.management: /);
        expect(ps[0]).toMatch(/percent-encode the password/);
        for (const f of fragments(pw)) expect(ps[0], f).not.toContain(f);
      }
    }
  });

  it("holding an @ and then a /, ? or # are refused, though the URL parses, showing neither the host nor the vhost read from them", () => {
    // "amqp://u:Zebra@S3cret/Pass@host" parses as password Zebra, host S3cret, vhost Pass@host:
    // plan printed "connect amqp://u:***@S3cret/Pass%40host -> getaddrinfo ENOTFOUND S3cret".
    const url = "4:10: clusters.sync.url: ";
    const management = "5:17: clusters.sync.management: ";
    // After the "?" or "#", the rest of the password is the query: "Zebra@S3cret?Pass=1&Word=2"
    // was refused naming the query parameters "Pass" and "Word", and "Zebra@S3c%2Fret#Pass" naming
    // the host "S3c%2Fret", which no host name can be.
    for (const pw of ["Zebra@S3cret/Pass", "Zebra@127.0.0.1/Pass", "Zebra@S3cret?Pass", "Zebra@S3cret#Pass", "pa:ss@w#rd", "Zebra@S3cret?Pass=1&Word=2", "Zebra@S3c%2Fret#Pass", "Zebra@S3c%20ret?Pass=1", "Zebra@S3cret:0?Pass"]) {
      const slash = pw.includes("/");
      for (const [text, at] of [
        [file(`amqp://user:${pw}@127.0.0.1:5672/vh`), url],
        [file(`amqp://user:${pw}@127.0.0.1:5672`), url],
        [file("amqp://guest:guest@127.0.0.1:5672/vh", `http://user:${pw}@127.0.0.1:15672`), management],
      ] as const) {
        const ps = problemsOf(text);
        expect(ps, `${pw}: ${text}`).toHaveLength(1);
        expect(ps[0]).toContain(at);
        // An http:// URL's parser checks the host itself: one that is no host name is no URL.
        if (at === management && /%/.test(pw)) expect(ps[0]).toMatch(/not a valid URL: the password holds/);
        else expect(ps[0]).toMatch(
          slash
            ? /an "@" follows the host: if the password holds an "@" and then a "\/", the host was read from inside the password; percent-encode the password \(e\.g\. \/ as %2F, @ as %40, % as %25\); an "@" in the vhost is written %40$/
            : /an "@" follows the host, in a query or fragment, which a URL of topo may not have: if the password holds an "@" and then a "\?" or "#", the host was read from inside the password; percent-encode the password \(e\.g\. \/ as %2F, @ as %40, % as %25\)$/,
        );
        for (const f of fragments(pw)) expect(ps[0], f).not.toContain(f);
      }
    }
    // A raw "@" in the vhost reads the same as a password's: it is refused, and %40 is accepted.
    expect(problemsOf(file("amqp://user:pw@127.0.0.1:5672/team@prod"))).toEqual([expect.stringMatching(/an "@" in the vhost is written %40$/)]);
    expect(problemsOf(file("amqp://user:pw@127.0.0.1:5672/team%40prod"))).toEqual([]);
  });

  it("are refused the same way when the password comes from ${VAR} or a ${VAR:-default}", () => {
    const pw = "Xy7/kP9+qR==";
    for (const [url, env] of [
      ["amqp://user:${PW}@127.0.0.1/vh", { PW: pw }],
      [`amqp://user:\${PW:-${pw}}@127.0.0.1/vh`, {}],
    ] as const) {
      const ps = problemsOf(file(url), env);
      expect(ps).toHaveLength(1);
      expect(ps[0]).toMatch(/percent-encode the password/);
      // The file's text shows no "/": the message names the variable, and where to encode it.
      expect(ps[0]).toMatch(/; \$\{PW\} goes in as it is set: percent-encode the password in its value \(or in a :-default\)$/);
      for (const f of fragments(pw)) expect(ps[0], f).not.toContain(f);
    }
  });

  // A tab or another control character inside a password's variable was "percent-encode the
  // password" alone, where the file shows only ${PW}.
  it("name the variable of a password that holds a control character", () => {
    const ps = problemsOf(file("amqp://user:${PW}@127.0.0.1/vh"), { PW: "Zq8k\tP4xw" });
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(/the password holds a control character .*; \$\{PW\} goes in as it is set: percent-encode the password in its value \(or in a :-default\)$/);
    expect(ps[0]).not.toMatch(/Zq8k|P4xw/);
  });

  it("name the variables of a password only, never what they hold", () => {
    const env = { USER_: "u", PW: "Zq8k/P4xw", PORT: "5672" };
    const ps = problemsOf(file("amqp://${USER_}:${PW}@127.0.0.1:${PORT}/vh"), env);
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(/; \$\{USER_\}, \$\{PW\} go in as they are set: percent-encode the password in the value \(or in a :-default\)$/);
    for (const f of fragments(env.PW)) expect(ps[0], f).not.toContain(f);
    // A password written in the file names no variable of the host part, nor does a problem the
    // message itself shows (the port); a :-default's "@" is not the URL's.
    expect(problemsOf(file("amqp://u:Xy7/kP9@${HOST:-a@b}:${PORT}/vh"), { PORT: "5672" })[0]).toMatch(/write [^;]*$/);
    expect(problemsOf(file("amqp://u:${PW:-Xy7/kP9@x}@127.0.0.1/vh"))[0]).toMatch(/; \$\{PW\} goes in as it is set/);
    expect(problemsOf(file("amqp://u:${PW}@127.0.0.1:${PORT}/vh"), { PW: "Zq8kP4xw", PORT: "56x" })[0]).toMatch(/the port is not a number; write [^;]*$/);
    expect(problemsOf(file("amqp://u:${PW}@127.0.0.1:5672/vh"), { PW: "Zq8kP4xw" })).toEqual([]);
  });

  it("show a query's parameter names only, never its values nor a fragment, nor a cluster written as a URL string", () => {
    const q = problemsOf(file("amqp://u:pw@127.0.0.1/vh?password=Zq8@kP"));
    expect(q).toEqual([
      // An "@" in the query: it may as well be the rest of a password, "pw@127.0.0.1/vh?password=Zq8".
      '4:10: clusters.sync.url: an "@" follows the host, in a query or fragment, which a URL of topo may not have: if the password holds an "@" and then a "?" or "#", the host was read from inside the password; percent-encode the password (e.g. / as %2F, @ as %40, % as %25)',
    ]);
    const plain = problemsOf(file("amqp://u:pw@127.0.0.1/vh?heartbeat=10"));
    expect(plain).toEqual(['4:10: clusters.sync.url: URL query and fragment are not supported (found the query parameter "heartbeat"); put TLS settings under tls:']);
    const secret = problemsOf(file("amqp://u:Pw@localhost:5672/v?password=Pwsecret2&x=1#frag-Pwsecret3"));
    expect(secret).toEqual(['4:10: clusters.sync.url: URL query and fragment are not supported (found the query parameters "password", "x" and a #fragment); put TLS settings under tls:']);
    const fragment = problemsOf(file("amqp://u:Pw@localhost:5672/v#Pwsecret3"));
    expect(fragment).toEqual(["4:10: clusters.sync.url: URL query and fragment are not supported (found a #fragment); put TLS settings under tls:"]);
    const asString = problemsOf("version: 1\nclusters:\n  sync: amqp://u:Xy7/kP9+qR==@h/v\nservices: []\n");
    expect(asString).toEqual(["3:9: clusters.sync: must be an object, not a string"]);
    const elsewhere = problemsOf("version: 1\nclusters:\n  sync: { url: amqp://h/s }\nservices: amqp://u:Xy7/kP9+qR==@h/v\n");
    expect(elsewhere).toEqual(["4:11: services: must be an array, not a string"]);
  });

  it("without the // after the scheme say so, and show nothing before an @ as a scheme", () => {
    expect(problemsOf(file("amqp:/hs-p1:Secret1@localhost:5672/hs-sync"))).toEqual([
      '4:10: clusters.sync.url: not a valid URL: "amqp:" is not followed by "//"; write amqp://<user>:<password>@<host>:5672/<vhost>',
    ]);
    const noScheme = [...problemsOf(file("hs-p1:Secret1@localhost:5672/hs-sync")), ...problemsOf(file("amqp://u:p@localhost/v", "hs-p1:Secret1@localhost:15672"))];
    expect(noScheme).toEqual([
      expect.stringMatching(/^4:10: clusters\.sync\.url: not a valid URL: it does not start with a scheme and :\/\//),
      expect.stringMatching(/^5:17: clusters\.sync\.management: not a valid URL: it does not start with a scheme and :\/\//),
    ]);
    expect(noScheme.join("\n")).not.toMatch(/hs-p1|Secret1/);
  });

  it("accept a percent-encoded password and keep it whole", () => {
    const pw = "p@ss:w/rd%1";
    const d = parseConfig(file(`amqp://user:${encodeURIComponent(pw)}@127.0.0.1:5672/vh`), "t.yaml", {});
    expect(d.clusters.find((c) => c.target.name === "sync")?.target.amqp.password).toBe(pw);
    expect(d.clusters.find((c) => c.target.name === "sync")?.target.amqp.display).toBe("amqp://user:***@127.0.0.1:5672/vh");
  });
});

describe("control characters in a URL", () => {
  // The URL parser drops a tab or a line break wherever it is: "Pw<TAB>secret" would be "Pwsecret".
  it.each([
    ["amqp://u:Pw\tsecret@127.0.0.1:5672/v", "4:21: clusters.sync.url: the password holds a control character"],
    ["amqp://u\tx:Pwsecret@127.0.0.1:5672/v", "4:18: clusters.sync.url: the user name holds a control character"],
    ["amqp://u:Pwsecret@127.0.0.1:5672/hs-sync\tx", "4:50: clusters.sync.url: the vhost holds a control character"],
    ["amqp://u:Pwsecret@127.0\t.0.1:5672/v", "4:33: clusters.sync.url: the host or port holds a control character"],
  ])("%j is refused at the character, naming the part, showing none of it", (url, start) => {
    const ps = problemsOf(`version: 1\nclusters:\n  sync:\n    url: ${url}\nservices: [{ name: mplogin, async: false }]\n`);
    expect(ps).toHaveLength(1);
    expect(ps[0]?.startsWith(start), ps[0]).toBe(true);
    expect(ps[0]).toMatch(/%09/);
    for (const f of fragments("Pwsecret")) expect(ps[0], f).not.toContain(f);
  });

  it("in the management URL too, and from a double-quoted escape (placed at the value)", () => {
    expect(problemsOf(file("amqp://guest:guest@127.0.0.1:5672/vh", "http://u:Pw\tsecret@127.0.0.1:15672"))).toEqual([
      expect.stringMatching(/^5:17: clusters\.sync\.management: the password holds a control character/),
    ]);
  });
});

describe("YAML errors", () => {
  it("show no token of the file, neither a URL nor a plain word", () => {
    const ps = problemsOf("- a\nb: amqp://u:Xy7/kP9+qR==@h/v\n");
    expect(ps.join("\n")).not.toMatch(/Xy7|kP9|qR==/);
    expect(ps.join("\n")).toMatch(/^2:1: YAML: Unexpected /);
  });
});

describe("display", () => {
  it("survives the redactor whole, also with an @ in the vhost", async () => {
    const { redactText } = await import("../../src/redact.js");
    const d = parseConfig(file("amqp://user:pw@127.0.0.1:5672/team%40prod"), "t.yaml", {});
    expect(d.clusters.find((c) => c.target.name === "sync")?.target.amqp.vhost).toBe("team@prod");
    const display = d.clusters.find((c) => c.target.name === "sync")?.target.amqp.display as string;
    expect(display).toBe("amqp://user:***@127.0.0.1:5672/team%40prod");
    expect(redactText(`connect ${display} -> refused`)).toBe(`connect ${display} -> refused`);
  });
});

describe("%-escapes", () => {
  it("that are not UTF-8 text are a problem, not a crash", () => {
    expect(problemsOf(file("amqp://user:pw%C3@127.0.0.1/vh"))).toEqual([
      "4:10: clusters.sync.url: URL has a malformed %-escape: the user name, password or vhost has %-escapes that are not UTF-8 text; percent-encode the password (e.g. / as %2F, @ as %40, % as %25)",
    ]);
    expect(problemsOf(file("amqp://guest:guest@127.0.0.1/vh", "http://user:pw%FF@127.0.0.1:15672"))).toHaveLength(1);
  });
});

describe("hostPort", () => {
  it("writes an IPv6 address in brackets, as a URL does, and other hosts as they are", () => {
    expect(hostPort("::1", 5672)).toBe("[::1]:5672");
    expect(hostPort("fe80::1%eth0", 15672)).toBe("[fe80::1%eth0]:15672");
    expect(hostPort("127.0.0.1", 5672)).toBe("127.0.0.1:5672");
    expect(hostPort("rabbit.example", 5671)).toBe("rabbit.example:5671");
  });

  it("refuses a management URL that ends in /api, saying what to write; a proxy's path prefix is kept", () => {
    for (const [m, base] of [["http://u:p@localhost:15672/api", "http://localhost:15672"], ["https://rmq.example/rabbitmq/api/", "https://rmq.example/rabbitmq"]] as const) {
      const ps = problemsOf(file("amqp://guest:guest@127.0.0.1:1/s", m));
      expect(ps).toEqual([expect.stringMatching(new RegExp(`^5:17: clusters\\.sync\\.management: management URL ends in /api/?: give the management plugin's base URL \\(topo adds /api/\\.\\.\\. itself\\), e\\.g\\. ${base.replace(/[./]/g, "\\$&")}$`))]);
    }
    const c = parseConfig(file("amqp://guest:guest@127.0.0.1:1/s", "https://rmq.example/rabbitmq"), "topology.yaml");
    expect(c.clusters[0]?.target.management.baseUrl).toMatch(/^https:\/\/rmq\.example\/rabbitmq\/?$/);
  });

  it("gives the default management URL of an IPv6 broker its brackets", () => {
    const c = parseConfig(`version: 1\nclusters:\n  sync:\n    url: amqp://guest:guest@[::1]:5672/v\nservices: [{ name: mplogin, async: false }]\n`, "topology.yaml");
    expect(c.clusters[0]?.target.management.baseUrl).toBe("http://[::1]:15672");
  });
});

describe("port 0", () => {
  it("is refused by validate, in the url and in the management URL, not found by plan as a refused connection", () => {
    expect(problemsOf(file("amqp://guest:guest@127.0.0.1:0/s"))).toEqual([
      "4:10: clusters.sync.url: the port is 0, which no broker listens on; write the broker's port (amqp 5672, amqps 5671), or leave it out for the default",
    ]);
    expect(problemsOf(file("amqp://guest:guest@127.0.0.1/s", "http://127.0.0.1:0"))).toEqual([
      "5:17: clusters.sync.management: the port is 0, which no broker listens on; write the management API's port (http 15672, https 15671), or leave it out for the default",
    ]);
    // A leading zero is the same port: 05672 is 5672.
    expect(problemsOf(file("amqp://guest:guest@127.0.0.1:05672/s"))).toEqual([]);
  });
});

describe("a vhost of dots", () => {
  it('"." and ".." (also %2E) are refused: URLs drop such a path, so topo would manage vhost "/" instead', () => {
    for (const [path, vhost] of [[".", "."], ["%2E", "."], ["..", ".."], [".%2e", ".."], ["%2e%2E", ".."]] as const) {
      expect(problemsOf(file(`amqp://guest:guest@127.0.0.1:5672/${path}`)), path).toEqual([
        `4:10: clusters.sync.url: the vhost "${vhost}" cannot be managed: URLs drop a path of "." or "..", so this URL names vhost "/", and the management API cannot name a vhost "${vhost}" either; rename the vhost (write %2F for vhost "/")`,
      ]);
    }
    // A name that merely holds dots is a vhost like any other.
    for (const path of [".x", "...", "a.", "%2E%2E%2E"]) expect(problemsOf(file(`amqp://guest:guest@127.0.0.1:5672/${path}`)), path).toEqual([]);
    expect(parseConfig(file("amqp://guest:guest@127.0.0.1:5672/..."), "t.yaml", {}).clusters[0]?.target.amqp.vhost).toBe("...");
  });
});

describe("a vhost name AMQP cannot carry", () => {
  it("more than 255 bytes (connection.open's short string) is a problem of the file at the URL, counted in bytes", () => {
    expect(problemsOf(file(`amqp://u:p@h/${"v".repeat(256)}`))).toEqual([
      "4:10: clusters.sync.url: the vhost name is 256 bytes long, and AMQP carries at most 255 (connection.open): no client could connect to it; use a shorter vhost name",
    ]);
    // 128 two-byte letters: 256 bytes, though 128 characters.
    expect(problemsOf(file(`amqp://u:p@h/${"%C3%A9".repeat(128)}`))[0]).toMatch(/the vhost name is 256 bytes long/);
    expect(problemsOf(file(`amqp://u:p@h/${"v".repeat(255)}`))).toEqual([]);
  });
});

describe("an amqp:// URL's host, which the URL parser leaves unchecked", () => {
  it("is refused by validate where an http:// URL's would be, not found by plan as topo's own bug", () => {
    for (const host of ["1.2.3.999", "ex%00ample", "ex%2Fample", "ex%20ample"]) {
      expect(problemsOf(file(`amqp://guest:guest@${host}/s`)), host).toEqual([
        `4:10: clusters.sync.url: the host ${JSON.stringify(host)} is no host name or IP address (an IPv4 address is four numbers of 0 to 255; a name holds no %-escaped "/", "?", "#", space or control character); write the broker's host`,
      ]);
    }
  });

  it("is looked up as an http:// URL's host is: a name not in ASCII by its punycode, a %-escaped letter as the letter", () => {
    const hostOf = (url: string) => parseConfig(file(url), "topology.yaml").clusters[0]?.target;
    expect(hostOf("amqp://guest:guest@exämple.invalid/s")?.amqp.hostname).toBe("xn--exmple-cua.invalid");
    expect(hostOf("amqp://guest:guest@ex%41mple.invalid/s")?.amqp.hostname).toBe("example.invalid");
    expect(hostOf("amqp://guest:guest@[::1]:5672/s")?.amqp.hostname).toBe("::1");
    expect(hostOf("amqp://guest:guest@Rabbit.Example/s")?.amqp.hostname).toBe("rabbit.example");
  });
});

describe("a password without a user name", () => {
  it("is refused, in the url (it logged in as guest) and in the management URL (it was ignored)", () => {
    expect(problemsOf(file("amqp://:Pq7xyz9@127.0.0.1/s"))).toEqual([
      `4:10: clusters.sync.url: the URL gives a password but no user name (amqp://:<password>@...), which would log in as guest; write the user name before the ":"`,
    ]);
    expect(problemsOf(file("amqp://guest:guest@127.0.0.1/s", "http://:Pq7xyz9@127.0.0.1:15672"))).toEqual([
      `5:17: clusters.sync.management: the management URL gives a password but no user name (http://:<password>@...), which would be ignored for the url's credentials; write the user name before the ":", or leave both out`,
    ]);
  });
});
