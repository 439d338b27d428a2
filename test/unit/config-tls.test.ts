// The files a cluster's tls: names are checked when the file is loaded (validate too), not when a
// connection needs them: a key or certificate that is not one is a config problem at its
// clusters.NAME.tls.FIELD, saying what is wrong and what to give, never showing the file's text.

import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { rmSync } from "node:fs";

const FIXTURES = join(import.meta.dirname, "../fixtures/tls");
const CERT = join(FIXTURES, "cert.pem");
const KEY = join(FIXTURES, "key.pem");
const dir = mkdtempSync(join(tmpdir(), "topo-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NOT_PEM = join(dir, "notes.txt");
writeFileSync(NOT_PEM, "password: HushHush42\n");
const A_DIR = join(dir, "a-directory");
mkdirSync(A_DIR);
const OTHER_KEY = join(dir, "other-key.pem");
writeFileSync(OTHER_KEY, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
const ENCRYPTED_KEY = join(dir, "encrypted-key.pem");
writeFileSync(
  ENCRYPTED_KEY,
  generateKeyPairSync("ec", { namedCurve: "P-256", privateKeyEncoding: { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pp" }, publicKeyEncoding: { type: "spki", format: "pem" } })
    .privateKey,
);

/** Load a file whose async cluster (line 7) has `tls: <tls>` at column 10; its problems. */
function problems(tls: string, syncTls = "{ insecure: true }"): string[] {
  const file = join(dir, "topology.yaml");
  writeFileSync(
    file,
    `version: 1
clusters:
  sync:
    url: amqps://u:p@127.0.0.1:1/s
    tls: ${syncTls}
  async:
    url: amqps://u:p@127.0.0.1:1/a
    tls: ${tls}
services: [mplogin]
`,
  );
  try {
    loadConfig(file, {});
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
    throw e;
  }
  return [];
}

describe("tls: files, when the file is loaded", () => {
  it("a CA, a client certificate and its key load", () => {
    expect(problems(`{ ca: ${CERT}, cert: ${CERT}, key: ${KEY} }`)).toEqual([]);
  });

  it("a file that is no key, or no certificate, is a problem at its key, without its text", () => {
    const ps = problems(`{ ca: ${NOT_PEM}, cert: ${NOT_PEM}, key: ${NOT_PEM} }`);
    expect(ps).toHaveLength(3);
    expect(ps[0]).toMatch(/^8:16: clusters\.async\.tls\.ca: .*notes\.txt is not a certificate/);
    expect(ps[1]).toMatch(/^8:\d+: clusters\.async\.tls\.cert: .*notes\.txt is not a certificate/);
    expect(ps[2]).toMatch(/^8:\d+: clusters\.async\.tls\.key: .*notes\.txt is not a private key/);
    expect(ps.join("\n")).not.toMatch(/HushHush|routines|bug in topo/);
  });

  it("a certificate given as the key, a directory, an encrypted key, a key of another certificate", () => {
    expect(problems(`{ cert: ${CERT}, key: ${CERT} }`)).toEqual([expect.stringMatching(/^8:\d+: clusters\.async\.tls\.key: .*cert\.pem is not a private key/)]);
    expect(problems(`{ ca: ${A_DIR} }`)).toEqual([expect.stringMatching(/^8:16: clusters\.async\.tls\.ca: .*a-directory is a directory, not a file/)]);
    expect(problems(`{ cert: ${CERT}, key: ${ENCRYPTED_KEY} }`)).toEqual([expect.stringMatching(/^8:\d+: clusters\.async\.tls\.key: .*encrypted-key\.pem is encrypted/)]);
    expect(problems(`{ cert: ${CERT}, key: ${OTHER_KEY} }`)).toEqual([expect.stringMatching(/^8:\d+: clusters\.async\.tls\.key: .*is not the private key of the certificate/)]);
  });

  it("each cluster's problems name that cluster", () => {
    const ps = problems(`{ key: ${NOT_PEM}, cert: ${CERT} }`, `{ cert: ${A_DIR}, key: ${KEY} }`);
    expect(ps).toEqual([
      expect.stringMatching(/^5:\d+: clusters\.sync\.tls\.cert: .* is a directory/),
      expect.stringMatching(/^8:\d+: clusters\.async\.tls\.key: .* is not a private key/),
    ]);
  });

  it("a key needs its certificate, and a certificate its key", () => {
    expect(problems(`{ key: ${KEY} }`)).toEqual([expect.stringMatching(/^8:\d+: clusters\.async\.tls\.key: .*set tls\.cert/)]);
    expect(problems(`{ cert: ${CERT} }`)).toEqual([expect.stringMatching(/^8:\d+: clusters\.async\.tls\.cert: .*set tls\.key/)]);
  });
});

describe("tls: that no connection uses", () => {
  /** The warnings of a file whose sync cluster has `url` and `tls: <tls>` (line 5, column 10). */
  function warnings(url: string, tls: string, management = ""): string[] {
    const file = join(dir, "unused-tls.yaml");
    writeFileSync(file, `version: 1\nclusters:\n  sync:\n    url: ${url}\n    tls: ${tls}\n${management}  async:\n    url: amqps://guest:guest@127.0.0.1:1/a\nservices: [mplogin]\n`);
    return loadConfig(file, {}).warnings;
  }

  it("an amqp:// url with tls: is a warning at tls:, saying topo connects without TLS and what to write", () => {
    // A slip of amqp:// for amqps:// connected in the clear, the password with it, unsaid.
    expect(warnings("amqp://guest:guest@127.0.0.1:1/s", `{ ca: ${CERT} }`)).toEqual([
      expect.stringMatching(/:5:10: clusters\.sync\.tls: no connection of this cluster uses it: its url is amqp:\/\/ and its management API http:\/\/, so topo connects without TLS, the password in clear text; write amqps:\/\/ in the url/),
    ]);
    expect(warnings("amqp://guest:guest@127.0.0.1:1/s", "{ insecure: true }")).toHaveLength(1);
  });

  it("no warning where a connection uses it (amqps://, or an https:// management API), or where it asks nothing", () => {
    expect(warnings("amqps://guest:guest@127.0.0.1:1/s", `{ ca: ${CERT} }`)).toEqual([]);
    expect(warnings("amqp://guest:guest@127.0.0.1:1/s", `{ ca: ${CERT} }`, "    management: https://127.0.0.1:15671\n")).toEqual([]);
    expect(warnings("amqp://guest:guest@127.0.0.1:1/s", "{ insecure: false }")).toEqual([]);
  });

  it("a JSON file is warned the same", () => {
    const file = join(dir, "unused-tls.json");
    writeFileSync(file, JSON.stringify({ version: 1, clusters: { sync: { url: "amqp://guest:guest@127.0.0.1:1/s", tls: { ca: CERT } }, async: { url: "amqps://guest:guest@127.0.0.1:1/a" } }, services: ["mplogin"] }));
    expect(loadConfig(file, {}).warnings).toEqual([expect.stringMatching(/clusters\.sync\.tls: no connection of this cluster uses it/)]);
  });
});
