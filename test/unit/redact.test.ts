// The redactor: user-info in URLs is masked up to the last "@" before the host, whatever the
// password holds, and registered secrets are masked in every form they can take in output.

import { describe, expect, it } from "vitest";
import { maskEcho, Redactor, redactText, redactUrl } from "../../src/redact.js";
import { fragments } from "../helpers/fragments.js";

// White space ends a URL in free text, so a password with a space is masked only once registered.
const PASSWORDS = ["Xy7/kP9+qR==", "p@ss:w/rd%1", "a:b@c", "q#u?e\\s!t"];

describe("redactText", () => {
  it("masks user-info up to the last @, for passwords holding @, /, :, % and the like", () => {
    for (const pw of PASSWORDS) {
      for (const url of [`amqp://u:${pw}@127.0.0.1:5672/vh`, `http://u:${pw}@h:15672`, `amqps://u:${pw}@[::1]/v`]) {
        const out = redactText(`cannot connect to ${url} (refused)`);
        expect(out, url).toMatch(/^cannot connect to [a-z]+:\/\/u:\*\*\*@/);
        for (const f of fragments(pw)) expect(out, `${url}: ${f}`).not.toContain(f);
      }
    }
  });

  it("masks the whole user-info when the user name part is not a plain name", () => {
    expect(redactText("amqp://Xy7/kP9@host/v")).toBe("amqp://***@host/v");
    expect(redactText("amqp://us/er:pw@host/v")).toBe("amqp://***@host/v");
  });

  it("leaves URLs without user-info, plain user names and advice placeholders alone", () => {
    expect(redactText("http://127.0.0.1:15672/api/queues/v")).toBe("http://127.0.0.1:15672/api/queues/v");
    expect(redactText("write amqp://USER@HOST:5672/VHOST")).toBe("write amqp://USER@HOST:5672/VHOST");
    expect(redactText("write amqp://<user>:<password>@<host>:5672/<vhost>")).toBe("write amqp://<user>:<password>@<host>:5672/<vhost>");
    expect(redactText("connect amqp://guest:***@h/v")).toBe("connect amqp://guest:***@h/v");
  });

  it("stops at a JSON string's end, so JSON output stays JSON", () => {
    const json = JSON.stringify({ a: "amqp://u:p@ss@h/v", b: "me@example.com" });
    const out = redactText(json);
    expect(JSON.parse(out)).toEqual({ a: "amqp://u:***@h/v", b: "me@example.com" });
  });

  it("masks a registered secret raw, percent-encoded both ways, and JSON-escaped", () => {
    const pw = 'Zq"8/k\\P+w=';
    const secrets = new Redactor();
    secrets.add(pw);
    const u = new URL("amqp://h");
    u.password = pw;
    for (const form of [pw, encodeURIComponent(pw), u.password, JSON.stringify(pw).slice(1, -1)]) {
      expect(secrets.text(`x ${form} y`), form).toBe("x *** y");
    }
    expect(secrets.text(JSON.stringify({ error: `bad ${pw}` }))).toBe('{"error":"bad ***"}');
    // Each Redactor knows only its own secrets: nothing is kept between runs or users.
    expect(new Redactor().text(`x ${pw} y`)).toBe(`x ${pw} y`);
  });

  it("masks a registered secret holding @ where it stands in a URL after the host, before the user-info's masking can cut it", () => {
    // RabbitMQ's UI logs in by a link that carries the password after the host (a comment import
    // copies), and a redirect may carry it in its query: the user-info's masking took everything to
    // the "@" for user-info, and printed the rest of the password ("***@ss:w0rd").
    const pw = "Tr1cky/p@ss:w0rd";
    const secrets = new Redactor();
    secrets.add(pw);
    for (const text of [
      `# UI: http://127.0.0.1:15672/#/login/probe/${pw}`,
      `it redirects (302) to http://127.0.0.1:1/login?user=probe&pass=${pw}`,
      `it redirects (302) to http://127.0.0.1:1/login?user=probe&pass=${encodeURIComponent(pw)}`,
      `amqp://probe:${pw}@127.0.0.1:5672/v and http://127.0.0.1:15672/#/login/probe/${pw}`,
    ]) {
      const out = secrets.text(text);
      for (const f of fragments(pw)) expect(out, `${text}: ${f}`).not.toContain(f);
      expect(out, text).toContain("127.0.0.1");
    }
    expect(secrets.text(`amqp://probe:${pw}@127.0.0.1:5672/v`)).toBe("amqp://probe:***@127.0.0.1:5672/v");
  });

  it("masks the strings of a value and leaves its numbers, booleans and null alone, so JSON output stays JSON", () => {
    const secrets = new Redactor();
    for (const pw of ["true", "false", "null", "1234", "S3cret"]) secrets.add(pw);
    const plan = { durable: true, autoDelete: false, dlx: null, max: 1234, url: "amqp://u:x@h/v", note: "pw S3cret and null", [`S3cret`]: [true, "S3cret"] };
    const out = JSON.parse(JSON.stringify(secrets.value(plan)));
    // "null" is a word: masked in a sentence it would show itself ("and ***"), so only in URLs.
    expect(out).toEqual({ durable: true, autoDelete: false, dlx: null, max: 1234, url: "amqp://u:***@h/v", note: "pw *** and null", "***": [true, "***"] });
  });

  it("masks a secret shorter than four characters only where it stands as a password, in a URL", () => {
    const secrets = new Redactor();
    for (const pw of [".", ":", "ab1", "a"]) secrets.add(pw);
    expect(secrets.text("RabbitMQ 3.10.8 at http://127.0.0.1:15672 (ab1)")).toBe("RabbitMQ 3.10.8 at http://127.0.0.1:15672 (ab1)");
    expect(secrets.text("amqp://u:ab1@h/v")).toBe("amqp://u:***@h/v");
  });

  it("masks the user-info of a URL typed without its //", () => {
    expect(redactText("was amqp:/hs-p4:S3cr3t@old-host/v")).toBe("was amqp:/hs-p4:***@old-host/v");
    expect(redactText("was amqp:hs-p4:S3cr3t@old-host/v")).toBe("was amqp:hs-p4:***@old-host/v");
    expect(redactText("see http:/u:p@ss@h:15672")).toBe("see http:/u:***@h:15672");
    // Words that only look like a scheme are no URL.
    expect(redactText("note: mail me@example.com; https: is the default")).toBe("note: mail me@example.com; https: is the default");
  });

  it("masks a registered secret whose %-escapes are written in lower case", () => {
    const secrets = new Redactor();
    secrets.add("S3cr3t+Pass=word");
    expect(secrets.text("# S3cr3t%2bPass%3dword")).toBe("# ***");
  });

  it("redactUrl masks a URL that parses and one that does not", () => {
    expect(redactUrl("amqp://u:s3cr3t-Zebra@h/v")).toBe("amqp://u:***@h/v");
    expect(redactUrl("amqp://u:p@ss:w/rd%1@127.0.0.1/a")).toBe("amqp://u:***@127.0.0.1/a");
  });
});

describe("maskEcho", () => {
  // A server that echoes the request quotes the Authorization header: base64 of "user:password".
  const decodesToNoPiece = (out: string, credentials: string) => {
    for (const run of out.match(/[A-Za-z0-9+/]{4,}={0,2}/g) ?? []) {
      const decoded = Buffer.from(run, "base64").toString("latin1");
      for (const f of fragments(credentials.slice(credentials.indexOf(":") + 1))) expect(decoded, `${run} in ${out}`).not.toContain(f);
    }
  };

  it("masks the credentials as sent, percent-encoded, JSON- and HTML-escaped, and cut short anywhere", () => {
    for (const password of [...PASSWORDS, "Secret-Password-4711", "\u00e9t\u00e9 \u2603 ~?>?"]) {
      const credentials = `svc:${password}`;
      const b64 = Buffer.from(credentials).toString("base64");
      const encodings = [
        b64,
        encodeURIComponent(b64),
        encodeURIComponent(b64).toLowerCase(),
        b64.replace(/\//g, "\\/"),
        b64.replace(/\//g, "&#x2F;").replace(/\+/g, "&#43;").replace(/=/g, "&#61;"),
      ];
      for (const e of encodings) {
        for (let cut = 0; cut <= e.length; cut++) {
          const text = `<pre>GET /api/vhosts HTTP/1.1\nAuthorization: Basic ${e.slice(0, cut)}\nAccept: */*</pre>`;
          const out = maskEcho(text, b64);
          expect(out).toMatch(/^<pre>GET \/api\/vhosts HTTP\/1\.1\nAuthorization: Basic /);
          decodesToNoPiece(out.slice(out.indexOf("Basic ") + 6), credentials);
        }
      }
    }
  });

  it("masks the credentials in another case (a server that lower-cases the header it echoes)", () => {
    const b64 = Buffer.from("svc:Zx9@/:%2F #?&=+'\"").toString("base64");
    for (const e of [b64.toLowerCase(), b64.toUpperCase()]) {
      const out = maskEcho(`headers: {"authorization": "basic ${e}"}`, b64);
      expect(out).toBe(`headers: {"authorization": "basic ***"}`);
    }
  });

  it("leaves text that holds no piece of the credentials as it is", () => {
    const b64 = Buffer.from("svc:Secret-Password-4711").toString("base64");
    const text = "500 Internal Server Error: upstream mgmt-01 timed out after 30000 ms (request id 7f3a9c2e)";
    expect(maskEcho(text, b64)).toBe(text);
  });
});

describe("a password in the forms other encoders and error pages give it", () => {
  it("masks RFC 3986's strict escapes (Python's quote), a form body's, and HTML-escaped forms", () => {
    const pw = "Kx8'Lm3(Qp7)!*~ &<>\"";
    const r = new Redactor();
    r.add(pw);
    const shown = [
      "Kx8%27Lm3%28Qp7%29%21%2A~%20%26%3C%3E%22", // urllib.parse.quote(pw, safe="")
      "Kx8%27lm3%28qp7%29%21%2a~%20%26%3c%3e%22".replace("lm3", "Lm3").replace("qp7", "Qp7"), // lower-case escapes
      "Kx8%27Lm3%28Qp7%29%21*%7E+%26%3C%3E%22", // a form body (URLSearchParams)
      "Kx8&#39;Lm3(Qp7)!*~ &amp;&lt;&gt;&quot;", // HTML-escaped
      "Kx8&#x27;Lm3(Qp7)!*~ &amp;&lt;&gt;&quot;",
    ];
    for (const form of shown) expect(r.text(`Login failed for deploy:${form} (page)`), form).toBe("Login failed for deploy:*** (page)");
  });
});


describe("a password written with escapes of any kind, mixed as they come", () => {
  const r = new Redactor();
  for (const pw of ["O'Brien-2024", "S3cr/t@pw:x%y", "q\"7 #?ü'\\x"]) r.add(pw);
  it.each([
    ["PHP's htmlspecialchars (' as &#039;)", "Login failed for password O&#039;Brien-2024</p>", "Login failed for password ***</p>"],
    ["every character as a decimal reference", "&#79;&#39;&#66;&#114;&#105;&#101;&#110;&#45;&#50;&#48;&#50;&#52;.", "***."],
    ["hexadecimal references in either case", "pw &#x4F;&#x27;Brien-2024 &#X4f;&#X27;Brien-2024", "pw *** ***"],
    ["JSON's \\u escapes", String.raw`"\u004f\u0027Brien-2024"`, '"***"'],
    ["some characters %-escaped and others not (a URL means the same)", "# same as S3cr%2Ft%40pw:x%25y", "# same as ***"],
    ["%-escapes in mixed case", "# also S3cr%2ft%40pw%3Ax%25y", "# also ***"],
    ["UTF-8 %-escaped in mixed case, beside other escapes", "q%227%20%23%3f%C3%Bc'%5cx!", "***!"],
  ])("%s", (_, text, masked) => {
    expect(r.text(text)).toBe(masked);
  });

  it("leaves escapes that spell no secret as they are", () => {
    for (const t of ["a%2Fb &amp; &#39;x&#39; \\u0041 \\\"q\\\"", "O&#039;Brien-2023", "S3cr%2Ft%40pw"]) expect(r.text(t)).toBe(t);
  });

  it("masks only the escaped span, on every line that holds one", () => {
    const text = ["keep%20this", "a O&#039;Brien-2024 b", "plain", "c S3cr%2Ft@pw:x%25y d"].join("\n");
    expect(r.text(text)).toBe(["keep%20this", "a *** b", "plain", "c *** d"].join("\n"));
  });

  it("spares a secret that is a word, as text() does anywhere", () => {
    const w = new Redactor();
    w.add("Geheimnisvoll");
    expect(w.text("pw &#71;eheimnisvoll")).toBe("pw &#71;eheimnisvoll");
  });
});

describe("a URL whose password holds a quote or white space", () => {
  it.each([
    ['# old login: amqp://deploy:Old"Pass2023@127.0.0.1:5672/v', "# old login: amqp://deploy:***@127.0.0.1:5672/v"],
    ["# c: amqp://admin:Other SecretC1@rabbit", "# c: amqp://admin:***@rabbit"],
    ['cannot read the saved plan amqp://u:Ab"Cd9x1@h: no such file', "cannot read the saved plan amqp://u:***@h: no such file"],
    ['amqp://u:Ab"c@d@host/v x@y', "amqp://u:***@host/v x@y"],
    ['amqp://u:a b"c/d@host:1/v', "amqp://u:***@host:1/v"],
  ])("%s", (text, masked) => {
    expect(redactText(text)).toBe(masked);
  });

  it("masks a URL that follows a word character with no space between", () => {
    expect(redactText("# d: 0amqp://admin:OtherSecretD1@rabbit")).toBe("# d: 0amqp://admin:***@rabbit");
    expect(redactText("# e: _amqp://admin:OtherSecretE1@rabbit")).toBe("# e: _amqp://admin:***@rabbit");
  });

  it("does not take a port, or a masked password, for a password that runs on", () => {
    for (const t of [
      "see http://localhost:15672/api and mail ops@example.com",
      "connect amqp://guest:***@localhost:5672/v -> 403 ACCESS_REFUSED for ops@example.com",
      "cluster sync: http://h:15672 (user ops@example.com)",
    ])
      expect(redactText(t)).toBe(t);
  });
});

describe("strictText: free text a person wrote (the comments import copies)", () => {
  it("masks also a password that is a word, or that stands in a name, where it stands as a whole word", () => {
    const r = new Redactor();
    r.add("Geheimnisvoll");
    r.add("login2024");
    r.spare(["mplogin2024"]);
    expect(r.text("the password is Geheimnisvoll")).toBe("the password is Geheimnisvoll");
    expect(r.strictText("the password is Geheimnisvoll (not GeheimnisvollX); login2024 for mplogin2024")).toBe("the password is *** (not GeheimnisvollX); *** for mplogin2024");
  });
});
