// TLS for both of topo's connections to a broker (AMQP and the management API): the files a
// cluster's tls: section names, and what a failed handshake means in words a user can act on.

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { TlsOptions } from "../model.js";

/** Node's TLS options for a cluster: its CA, client certificate and key, read from their files. */
export function tlsOptions(tls: TlsOptions, insecure?: boolean): { ca?: Buffer[]; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean } {
  return {
    ca: tls.ca ? [readFileSync(tls.ca)] : undefined,
    cert: tls.cert ? readFileSync(tls.cert) : undefined,
    key: tls.key ? readFileSync(tls.key) : undefined,
    rejectUnauthorized: !(tls.insecure || insecure),
  };
}

/**
 * What a failed TLS handshake means, from Node's error: our check of the broker's certificate
 * failed, the broker refused our client certificate, or the port does not speak TLS. `text` is
 * the error without OpenSSL's internal dump. Shared by the AMQP side (same Node TLS errors).
 */
export function tlsProblem(where: { host: string; tls?: string }, e: Error & { code?: unknown; reason?: unknown }): { text: string; hint: string } | undefined {
  const code = typeof e.code === "string" ? e.code : "";
  const reason = typeof e.reason === "string" && e.reason ? e.reason : undefined;
  const text = reason ?? opensslReason(e.message) ?? e.message.trim();
  const at = where.tls;
  // A cluster from the command line (topo import --url) has no tls: section to point at.
  const noFiles = "the command line takes no TLS files: write the cluster in a topology file, with tls:, and import it with -f";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const names = certNames((e as { cert?: unknown }).cert);
    const ip = isIP(typeof (e as { host?: unknown }).host === "string" ? ((e as { host?: unknown }).host as string) : "") !== 0;
    const listed = names.length ? `it names ${names.join(", ")}: write ${names.length === 1 ? "that" : "one of those"} as the host` : "use a host name the certificate lists";
    const onlyIps = ip && names.length && !names.some((n) => isIP(n)) ? " (an IP address matches only an IP address the certificate lists)" : "";
    // Node's text for an IP address the certificate does not list ends in an empty list ("IP:
    // 127.0.0.1 is not in the cert's list: ") when the certificate lists no address at all.
    return { text: text.replace(/: *$/, ""), hint: `TLS verification failed: the broker's certificate does not name the host in ${where.host}; ${listed}${onlyIps} (or --insecure, for tests only)` };
  }
  // An alert from the broker: it refused us, usually our client certificate (or its absence).
  if (/^ERR_SSL_(TLSV1|TLSV13|SSLV3)_ALERT_/.test(code)) {
    return { text, hint: `the broker refused the TLS handshake (${reason ?? code}); ${at ? `set ${at}.cert and ${at}.key to` : `it wants`} a client certificate signed by a CA the broker trusts${at ? "" : `; ${noFiles}`}` };
  }
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number/i.test(e.message)) {
    return { text, hint: `the port does not speak TLS; use the broker's TLS port, or http:// / amqp:// for a plain one` };
  }
  if (/CERT|SSL|TLS/.test(code) || /self.signed|certificate/i.test(e.message)) {
    return {
      text,
      hint: at
        ? `TLS verification failed; set ${at}.ca to the CA that signed the broker's certificate (or --insecure, for tests only)`
        : `TLS verification failed: the broker's certificate is not signed by a CA this machine trusts; ${noFiles} (or --insecure, for tests only)`,
    };
  }
  return undefined;
}

/**
 * The reason in OpenSSL's dump, which is all Node gives for a failed handshake of an HTTPS
 * request ("write EPROTO 80…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:
 * ../deps/openssl/…/ssl3_record.c:350:" -> "wrong version number").
 */
function opensslReason(message: string): string | undefined {
  return /:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/.exec(message)?.[1]?.trim() || undefined;
}

/**
 * The host names and addresses a certificate is valid for, as Node checks them: its
 * subjectAltName's DNS and IP entries, else its subject's CN (which Node matches host names
 * against only when there are no DNS entries). At most MAX_NAMES, with how many more.
 */
function certNames(cert: unknown): string[] {
  if (typeof cert !== "object" || cert === null) return [];
  const { subjectaltname, subject } = cert as { subjectaltname?: unknown; subject?: { CN?: unknown } };
  const alt = typeof subjectaltname === "string" ? subjectaltname.split(", ").flatMap((entry) => /^(?:DNS|IP Address):(.+)$/.exec(entry)?.[1] ?? []) : [];
  const cn = subject?.CN;
  const names = alt.length ? alt : typeof cn === "string" ? [cn] : Array.isArray(cn) ? cn.filter((n): n is string => typeof n === "string") : [];
  return names.length > MAX_NAMES ? [...names.slice(0, MAX_NAMES), `and ${names.length - MAX_NAMES} more`] : names;
}

const MAX_NAMES = 5;
