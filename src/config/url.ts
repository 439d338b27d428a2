// Pure: say what is wrong with a URL of the file without printing any piece of it. A URL that
// fails to parse may hold a password written unencoded ("p@ss:w/rd"); no pattern can tell where
// such a password ends, so these messages name the part that is wrong, never its text.

import { maskUserinfo, type Redactor } from "../redact.js";

export const PERCENT_ENCODE = "percent-encode the password (e.g. / as %2F, @ as %40, % as %25)";

/** A host and port as a URL writes them: an IPv6 address in brackets ([::1]:5672, not ::1:5672). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Characters that end a URL's host part: in a password they cut it short. */
const ENDS_AUTHORITY = /[/?#\\]/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

/** A scheme, then "//": how a URL topo reads starts. */
const SCHEME_SLASHES = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * Whether a URL as written starts with a scheme and "//". "amqp:/u:p@host" and "u:p@host" parse
 * all the same, as URLs with no host whose user-info became the path: never read or written back.
 */
export function hasSchemeSlashes(raw: string): boolean {
  return SCHEME_SLASHES.test(raw);
}

/** The schemes topo reads: after one of them, a URL without "//" still has its user-info. */
const KNOWN_SCHEME = /^(?:amqps?|https?):\/{0,2}/i;

/**
 * Where a URL as written holds its user-info: from after the scheme's "://" to the last "@" (a
 * password may hold "@" itself); undefined when it has none. A URL typed without its "//"
 * ("amqp:/u:p@host", "u:p@host") still holds one: after a scheme topo reads, else from the start.
 */
export function userinfoSpan(raw: string): { start: number; end: number } | undefined {
  const end = raw.lastIndexOf("@");
  const slashes = raw.indexOf("://");
  const start = slashes >= 0 && slashes < end ? slashes + 3 : (KNOWN_SCHEME.exec(raw)?.[0].length ?? 0);
  return end < start ? undefined : { start, end };
}

/**
 * Teach the redactor the password typed into a URL on the command line, found where the
 * user-info is as typed (userinfoSpan), so that it is masked wherever it shows up, even when the
 * URL does not parse, or stands inside an option commander echoes ("--urll=sync=u:p@host").
 */
export function learnTypedPassword(value: string, redactor: Redactor): void {
  const span = userinfoSpan(value);
  if (!span) return;
  const userinfo = value.slice(span.start, span.end);
  const colon = userinfo.indexOf(":");
  const password = colon < 0 ? undefined : userinfo.slice(colon + 1);
  if (!password) return;
  redactor.add(password);
  try {
    redactor.add(decodeURIComponent(password));
  } catch {
    // Not %-encoded as a whole: learnt as typed above.
  }
}

/**
 * Whether `value` holds a password where a URL holds one (userinfoSpan): "u:pw@host", with or
 * without a scheme. For a file's name given on the command line, which is taken for one such only
 * when no file of that name is there (deploy:rel-2026@eu.yaml is a name).
 */
export function holdsTypedPassword(value: string): boolean {
  const span = userinfoSpan(value);
  if (!span) return false;
  const colon = value.indexOf(":", span.start);
  return colon >= 0 && colon < span.end - 1;
}

/** host[:port] as a URL writes it; anything else may be a password that lost its "@". */
const PLAIN_AUTHORITY = /^(?:\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._~%-]*)(?::[0-9]*)?$/;

/**
 * A URL typed on the command line, safe to show whether it parses or not: the user-info masked
 * (user:***, or *** when the user name is not a plain one), the query and fragment as "?…" and
 * "#…", and a host part that is not a plain host[:port] as ***, with the path after it. The file's URLs are never shown:
 * their messages name the key instead.
 */
export function shownUrl(raw: string): string {
  const span = userinfoSpan(raw);
  const prefix = span ? raw.slice(0, span.start) : ((SCHEME_SLASHES.exec(raw) ?? KNOWN_SCHEME.exec(raw))?.[0] ?? "");
  const who = span ? `${maskUserinfo(raw.slice(span.start, span.end))}@` : "";
  let rest = raw.slice(span ? span.end + 1 : prefix.length);
  const q = rest.search(/[?#]/);
  const tail = q < 0 ? "" : `${rest[q]}…`;
  if (q >= 0) rest = rest.slice(0, q);
  const authority = rest.split("/", 1)[0] as string;
  // A password that lost its "@" ("amqp://u:p/ss") may run on into the path: masked with it.
  return `${prefix}${who}${PLAIN_AUTHORITY.test(authority) ? rest : "***"}${tail}`;
}

/** Why `new URL(raw)` refused raw: a clause such as "the port is not a number". */
export function whyNotAUrl(raw: string): string {
  if (raw.trim() === "") return "it is empty";
  const noSlashes = /^(amqps?|https?):(?!\/\/)/i.exec(raw);
  if (noSlashes) return `"${noSlashes[1]}:" is not followed by "//"`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw);
  if (!scheme) return "it does not start with a scheme and :// (amqp://, amqps://, http://, https://)";
  const rest = raw.slice(scheme[0].length);
  const span = userinfoSpan(raw);
  if (span) {
    const userinfo = raw.slice(span.start, span.end);
    const colon = userinfo.indexOf(":");
    const part = colon >= 0 && !ENDS_AUTHORITY.test(userinfo.slice(0, colon)) ? "the password" : "the user name or password";
    if (ENDS_AUTHORITY.test(userinfo)) return `${part} holds "/", "?", "#" or "\\" unencoded, which end a URL's host part; ${PERCENT_ENCODE}`;
  }
  const hostPart = span ? raw.slice(span.end + 1) : rest;
  const authority = hostPart.split(/[/?#]/, 1)[0] ?? "";
  // White space is refused only there: the parser takes it in the user-info and the path
  // (%20), so "the password holds white space" was said of a URL refused for its port.
  if (/\s/.test(authority)) {
    return span || !authority.includes(":")
      ? "the host or port holds white space, which a host name and a port cannot have; remove it"
      : `the host or port holds white space (a user and password go before an @: scheme://<user>:<password>@<host>); ${PERCENT_ENCODE}`;
  }
  if (authority === "") return "it has no host";
  let port: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) return "the IPv6 address has no closing ]";
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) return "the IPv6 address in brackets is followed by something other than :port";
    port = after === "" ? undefined : after.slice(1);
  } else {
    const colon = authority.lastIndexOf(":");
    if (colon >= 0) port = authority.slice(colon + 1);
    const host = colon >= 0 ? authority.slice(0, colon) : authority;
    if (!/^[A-Za-z0-9._~!$&'()*+,;=%-]*$/.test(host)) return "the host name holds characters a host name cannot have";
  }
  if (port !== undefined && !/^[0-9]*$/.test(port)) {
    return span
      ? "the port is not a number"
      : `the port is not a number (a user and password go before an @: scheme://<user>:<password>@<host>); ${PERCENT_ENCODE}`;
  }
  if (port !== undefined && Number(port) > 65535) return "the port is more than 65535";
  return "it is not a valid URL";
}

/** Which part of a parsed URL holds a "%" not followed by two hex digits, if any. */
export function badEscapeIn(parts: { vhost?: string; username?: string; password?: string }): string | undefined {
  if (parts.password !== undefined && BAD_ESCAPE.test(parts.password)) return `the password has a "%" not followed by two hex digits; ${PERCENT_ENCODE}`;
  if (parts.username !== undefined && BAD_ESCAPE.test(parts.username)) return `the user name has a "%" not followed by two hex digits; write % as %25`;
  if (parts.vhost !== undefined && BAD_ESCAPE.test(parts.vhost)) return `the vhost has a "%" not followed by two hex digits; write % as %25`;
  return undefined;
}

/** When %-escapes decode to bytes that are not UTF-8 text ("%C3" alone). */
export const NOT_UTF8 = `the user name, password or vhost has %-escapes that are not UTF-8 text; ${PERCENT_ENCODE}`;

/**
 * A URL that parsed but has an "@" after its host: a password with an unencoded "/", "?" or "#"
 * ended the host part early. Without user-info, the user-info moved into the path
 * ("amqp://u:12/ab@host" is host u, port 12). With it, the password held an "@" before a "/", "?"
 * or "#", and what followed became the host, the vhost and the query ("amqp://u:Zebra@S3cret/Pass@host"
 * is password Zebra, host S3cret, vhost Pass@host; "amqp://u:Zebra@S3cret?Pass=1@host" has the
 * query parameter Pass), which every later message would then show: the host that is no host
 * name, the query's parameter names. So this is asked before anything else of the URL is judged,
 * and a vhost's "@" is written %40: a raw one cannot be told from a password's.
 */
export function userinfoAfterHost(u: URL): string | undefined {
  if (u.username || u.password) {
    if (u.pathname.includes("@")) {
      return `an "@" follows the host: if the password holds an "@" and then a "/", the host was read from inside the password; ${PERCENT_ENCODE}; an "@" in the vhost is written %40`;
    }
    if (!`${u.search}${u.hash}`.includes("@")) return undefined;
    // A query such as ?password=Zq8@kP reads the same as a password's "?" and its rest: neither
    // the host nor a parameter's name is shown.
    return `an "@" follows the host, in a query or fragment, which a URL of topo may not have: if the password holds an "@" and then a "?" or "#", the host was read from inside the password; ${PERCENT_ENCODE}`;
  }
  if (!`${u.pathname}${u.search}${u.hash}`.includes("@")) return undefined;
  return `an "@" follows the host, so the user and password were not read as such: if the password holds "/", "?" or "#", ${PERCENT_ENCODE} (an "@" in the vhost is %40)`;
}

/**
 * What a URL's query and fragment hold, as safe to show: the names of plain query parameters,
 * never a value (?password=...) nor the fragment's text. "" when there is nothing plain to name.
 */
export function shownQuery(u: URL): string {
  const names = u.search
    .slice(1)
    .split("&")
    .map((p) => p.split("=", 1)[0] ?? "")
    .filter((n) => n !== "");
  const plain = names.length > 0 && names.every((n) => /^[A-Za-z0-9_.-]+$/.test(n));
  const found = [
    ...(plain ? [`the query parameter${names.length > 1 ? "s" : ""} ${[...new Set(names)].map((n) => `"${n}"`).join(", ")}`] : []),
    ...(u.hash ? ["a #fragment"] : []),
  ];
  return found.length ? ` (found ${found.join(" and ")})` : "";
}

/**
 * The first control character of a URL as written (the URL parser drops a tab or a line break
 * wherever it stands, so "Pw<TAB>secret" would silently be "Pwsecret"): where it is, and why,
 * naming the part that holds it, never its text.
 */
export function controlCharacterIn(raw: string): { index: number; message: string } | undefined {
  const index = raw.search(/[\u0000-\u001f\u007f]/);
  if (index < 0) return undefined;
  const span = userinfoSpan(raw);
  const scheme = raw.indexOf("://");
  const hostStart = span ? span.end + 1 : scheme >= 0 ? scheme + 3 : 0;
  const pathStart = hostStart + raw.slice(hostStart).search(/[/?#]|$/);
  let part: string;
  if (span && index >= span.start && index < span.end) {
    const colon = raw.indexOf(":", span.start);
    part = colon >= 0 && colon < index ? "the password" : "the user name";
  } else if (index < hostStart) part = "the scheme";
  else if (index < pathStart) part = "the host or port";
  else part = raw[pathStart] === "/" && !/[?#]/.test(raw.slice(pathStart, index)) ? "the vhost" : "the query or fragment";
  const fix = part === "the password" ? PERCENT_ENCODE.replace("(e.g. ", "(e.g. a tab as %09, ") : "remove it, or percent-encode it (a tab is %09)";
  return { index, message: `${part} holds a control character (a tab, a line break or another), which a URL cannot hold; ${fix}` };
}
