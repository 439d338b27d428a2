// The files a cluster's tls: section names, checked when the topology is loaded: validate says
// what is wrong with them, at their key in the file, rather than a connection failing later with
// OpenSSL's words ("PEM routines::no start line") as a bug in topo. Nothing of a file's content
// is ever shown: a file given by mistake may hold anything, a password included.

import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { ClusterTarget, TlsOptions } from "../model.js";

export type TlsFileField = "ca" | "cert" | "key";

/** What is wrong with each of the tls: files (already absolute paths), by field. */
export function tlsFileProblems(tls: TlsOptions): { field: TlsFileField; message: string }[] {
  const out: { field: TlsFileField; message: string }[] = [];
  const read = (field: TlsFileField): Buffer | undefined => {
    const path = tls[field];
    if (path === undefined) return undefined;
    const r = readFile(path);
    if ("problem" in r) out.push({ field, message: r.problem });
    return "bytes" in r ? r.bytes : undefined;
  };
  const ca = read("ca");
  if (ca && !certificate(ca)) out.push({ field: "ca", message: `${tls.ca} is not a certificate; give the PEM file (-----BEGIN CERTIFICATE-----) of the CA that signed the broker's certificate` });
  const certBytes = read("cert");
  const cert = certBytes && certificate(certBytes);
  if (certBytes && !cert) out.push({ field: "cert", message: `${tls.cert} is not a certificate; give the client certificate's PEM file (-----BEGIN CERTIFICATE-----)` });
  const keyBytes = read("key");
  let key: KeyObject | undefined;
  if (keyBytes) {
    try {
      key = createPrivateKey(keyBytes);
    } catch (e) {
      // OpenSSL's error for a key it has no passphrase for is "interrupted or cancelled".
      const encrypted = (e as { code?: unknown }).code === "ERR_MISSING_PASSPHRASE" || /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyBytes.toString("latin1"));
      out.push({
        field: "key",
        message: encrypted
          ? `${tls.key} is encrypted, and topo has no passphrase to give: decrypt it to a file only topo's user can read (openssl pkey -in KEY -out PLAIN_KEY)`
          : `${tls.key} is not a private key; give the client certificate's private key as a PEM file (-----BEGIN PRIVATE KEY-----)`,
      });
    }
  }
  if (cert && key && !cert.checkPrivateKey(key)) out.push({ field: "key", message: `${tls.key} is not the private key of the certificate ${tls.cert}; give the key the certificate was made for` });
  // Node presents a client certificate only with both; one alone is a half-done setting.
  if (tls.key !== undefined && tls.cert === undefined) out.push({ field: "key", message: `a client key needs its certificate: set tls.cert too, or remove tls.key` });
  if (tls.cert !== undefined && tls.key === undefined) out.push({ field: "cert", message: `a client certificate needs its private key: set tls.key too, or remove tls.cert` });
  return out;
}

/**
 * The clusters whose tls: section no connection uses: an amqp:// url with an http:// management
 * API (the default for amqp://) connects in the clear, the passwords included, whatever tls:
 * says; a file that gives a CA or a client certificate meant TLS, and a slip of amqp:// for
 * amqps:// went unsaid. A warning at the tls: key, since nothing stops the connection.
 */
export function unusedTls(targets: readonly ClusterTarget[]): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const t of targets) {
    const { ca, cert, key, insecure } = t.tls;
    if (ca === undefined && cert === undefined && key === undefined && insecure !== true) continue;
    if (t.amqp.protocol === "amqps" || t.management.baseUrl.startsWith("https:")) continue;
    out.push({
      path: ["clusters", t.name, "tls"],
      message: `clusters.${t.name}.tls: no connection of this cluster uses it: its url is amqp:// and its management API http://, so topo connects without TLS, the password in clear text; write amqps:// in the url (and https:// in management:, if given) to connect with these settings, or remove tls:`,
    });
  }
  return out;
}

/** A file's bytes, or why it cannot be read as a file. */
function readFile(path: string): { bytes: Buffer } | { problem: string } {
  try {
    const st = statSync(path);
    if (st.isDirectory()) return { problem: `${path} is a directory, not a file; name the PEM file in it` };
    if (!st.isFile()) return { problem: `${path} is not a regular file; name a PEM file` };
    return { bytes: readFileSync(path) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { problem: `no such file: ${path}` };
    if (code === "EACCES" || code === "EPERM") return { problem: `${path} cannot be read (permission denied); let the user topo runs as read it` };
    return { problem: `${path} cannot be read (${code ?? "error"})` };
  }
}

/** The file's first certificate (PEM or DER), or undefined when it holds none. */
function certificate(bytes: Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(bytes);
  } catch {
    return undefined;
  }
}
