// A broker certificate that does not name the host topo connects to: the hint names what it does
// name, so the user knows which host to write. Node's own text for an IP address the certificate
// does not list ends in an empty list ("IP: 127.0.0.1 is not in the cert's list: "), and the hint
// only said "use a host name the certificate lists".

import { readFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tlsProblem } from "../../src/broker/tls.js";

const FIXTURES = join(import.meta.dirname, "../fixtures/tls");
// A self-signed certificate whose only name is its CN, topo-test-only (no subjectAltName).
const CERT = readFileSync(join(FIXTURES, "cert.pem"));
const KEY = readFileSync(join(FIXTURES, "key.pem"));

let server: tls.Server;
let port: number;
beforeAll(async () => {
  server = tls.createServer({ cert: CERT, key: KEY }, (s) => s.end());
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((done) => server.close(() => done())));

/** The error Node gives a client that trusts the certificate and connects to it by `host`. */
function handshake(host: string): Promise<Error> {
  return new Promise((done, fail) => {
    const s = tls.connect({ host: "127.0.0.1", servername: host === "127.0.0.1" ? undefined : host, port, ca: [CERT], checkServerIdentity: (_h, cert) => tls.checkServerIdentity(host, cert) });
    s.on("secureConnect", () => fail(new Error("the handshake passed")));
    s.on("error", done);
  });
}

describe("a certificate that does not name the host", () => {
  it("is said with the names it gives, for a host name and an IP address alike", async () => {
    const byName = tlsProblem({ host: "clusters.sync.url" }, await handshake("localhost"));
    expect(byName).toEqual({
      text: "Host: localhost. is not cert's CN: topo-test-only",
      hint: "TLS verification failed: the broker's certificate does not name the host in clusters.sync.url; it names topo-test-only: write that as the host (or --insecure, for tests only)",
    });
    const byAddress = tlsProblem({ host: "clusters.sync" }, await handshake("127.0.0.1"));
    expect(byAddress).toEqual({
      text: "IP: 127.0.0.1 is not in the cert's list",
      hint: "TLS verification failed: the broker's certificate does not name the host in clusters.sync; it names topo-test-only: write that as the host (an IP address matches only an IP address the certificate lists) (or --insecure, for tests only)",
    });
  });

  it("lists the subjectAltName's names, not the CN, when it has them", () => {
    const e = tls.checkServerIdentity("rabbit", { subject: { CN: "ignored" }, subjectaltname: "DNS:a.example, DNS:b.example, IP Address:10.0.0.5" } as unknown as tls.PeerCertificate) as Error;
    expect(tlsProblem({ host: "clusters.async.url" }, e)?.hint).toBe(
      "TLS verification failed: the broker's certificate does not name the host in clusters.async.url; it names a.example, b.example, 10.0.0.5: write one of those as the host (or --insecure, for tests only)",
    );
  });
});
