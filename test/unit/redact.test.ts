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

