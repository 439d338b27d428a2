// Every URL and every message that reaches output passes through here first (rule: never print a
// password). A Redactor holds the secrets one run has read (from the file, the environment or the
// command line) and masks them, in every form they can take, wherever they show up; the URL
// user-info masking needs no secrets and is a plain function. No module state: the CLI makes one
// Redactor and hands it to what it runs, and a library user makes their own.

export class Redactor {
  /** Each form a secret takes (raw, percent-encoded, JSON-escaped), and the secret it is of. */
  private readonly secrets = new Map<string, string>();
  /** Words output shows by design (see spare). */
  private readonly words = new Set<string>();
  /**
   * known()'s answer until the next add() or spare(). Working it out looks for every secret in
   * every word, tens of thousands of them for a large topology, and output asks for it once per
   * string: --json of a plan of 5,000 services took minutes before it was kept.
   */
  private masked: string[] | undefined;

  /** Remember a secret so that text() masks it wherever it shows up. */
  add(secret: string | undefined): void {
    if (!secret) return;
    this.masked = undefined;
    // A password can also appear percent-encoded inside a URL (encodeURIComponent's way, or the
    // URL parser's, which leaves "+", "=" and the like alone), and JSON-escaped in --json output.
    // %-escapes may be written in lower case ("%2b"): a URL means the same by them.
    for (const form of new Set([secret, ...percentForms(encodeURIComponent(secret), userinfoEncoded(secret))])) {
      this.secrets.set(form, secret);
      const json = JSON.stringify(form).slice(1, -1);
      if (json !== form) this.secrets.set(json, secret);
    }
  }

  /**
   * Words the output shows by design: the topology's names (services, queues, clusters, vhosts,
   * hosts, users) and the words topo prints. A secret found inside one of them is masked only
   * where it stands as a password, in a URL's user-info: masked in free text too, it would blank
   * that word wherever it stands ("*** exchange ***.sync"), and show the secret by what was
   * blanked. The loader warns about such a password (load.ts).
   */
  spare(words: Iterable<string>): void {
    for (const w of words) this.words.add(w);
    this.masked = undefined;
  }

  /** `text` with every URL's password and every secret masked. */
  text(text: string): string {
    return redactText(text, this);
  }

  /**
   * `value` with every string in it, keys too, masked as text() masks them. Numbers, booleans and
   * null stay as they are, so JSON output stays JSON whatever a password is ("true" included):
   * masking the serialised text instead could turn `"durable": true` into `"durable": ***`.
   */
  value(value: unknown): unknown {
    if (typeof value === "string") return this.text(value);
    if (Array.isArray(value)) return value.map((v) => this.value(v));
    if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [this.text(k), this.value(v)]));
    return value;
  }

  url(url: string): string {
    return redactUrl(url, this);
  }

  /** Longest first, so a secret that contains another is masked whole. */
  known(): readonly string[] {
    if (this.masked) return this.masked;
    const words = [...this.words];
    const spared = new Map<string, boolean>();
    const stands = (secret: string): boolean => {
      let s = spared.get(secret);
      if (s === undefined) spared.set(secret, (s = standsInWords(secret, words)));
      return s;
    };
    this.masked = [...this.secrets]
      .filter(([, secret]) => !stands(secret))
      .map(([form]) => form)
      .sort((a, b) => b.length - a.length);
    return this.masked;
  }
}

/** Percent-encoded forms, and each again with its %-escapes in lower case ("%2b"): a URL means the same by them. */
function percentForms(...encoded: (string | undefined)[]): string[] {
  const forms = encoded.filter((f): f is string => !!f);
  return [...forms, ...forms.map((f) => f.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()))];
}

function userinfoEncoded(secret: string): string | undefined {
  try {
    const u = new URL("amqp://host");
    u.password = secret;
    return u.password;
  } catch {
    return undefined;
  }
}

/** Mask the password of a URL; a string that is not a URL is returned with secrets masked. */
export function redactUrl(url: string, secrets?: Redactor): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return redactText(u.toString().replace(/\/$/, url.endsWith("/") ? "/" : ""), secrets);
  } catch {
    return redactText(url, secrets);
  }
}

/**
 * scheme:// and the rest of the URL-like token: up to white space or a JSON string's end. A URL of
 * topo's schemes typed without its "//" ("amqp:/u:p@h", "amqp:u:p@h") holds user-info all the same.
 */
const URL_TOKEN = /\b([a-z][a-z0-9+.-]*:\/\/|(?:amqps?|https?):\/?(?!\/))([^\s"]*)/gi;
/** A user name as it may stand in a URL without encoding. */
const PLAIN_USER = /^[A-Za-z0-9._~%!$&'()*+,;=-]*$/;

/**
 * A URL's user-info as safe to show: `user:***`; `***` when the user name is not a plain one (a
 * password holding ":" or "/" may have run into it); as it is when it holds no password.
 */
export function maskUserinfo(userinfo: string): string {
  const colon = userinfo.indexOf(":");
  const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
  if (!PLAIN_USER.test(user)) return "***";
  return colon < 0 ? userinfo : `${user}:***`;
}

/** The shortest secret masked wherever it shows up in free text. */
export const MIN_FREE_TEXT_SECRET = 4;

/**
 * Whether free text would show `secret` inside one of `words` (names and words output shows by
 * design): then it is masked only in URLs (Redactor.spare). A secret too short for free-text
 * masking is never masked there anyway.
 */
export function standsInWords(secret: string, words: readonly string[]): boolean {
  return secret.length >= MIN_FREE_TEXT_SECRET && words.some((w) => w.includes(secret));
}

/** Mask any user:password@ in URLs inside free text, and every secret `secrets` knows. */
export function redactText(text: string, secrets?: Redactor): string {
  let out = text.replace(URL_TOKEN, (m, scheme: string, rest: string) => {
    // A password may hold "@", "/", ":" or "%" (unencoded, or in a URL that did not parse), so
    // the user-info runs to the LAST "@" of the token: masking too much beats printing a piece.
    const at = rest.lastIndexOf("@");
    if (at < 0) return m;
    const userinfo = rest.slice(0, at);
    // "<password>" in advice text is a placeholder, not a secret.
    const colon = userinfo.indexOf(":");
    if (colon >= 0 && userinfo.slice(colon + 1) === "<password>") return m;
    return `${scheme}${maskUserinfo(userinfo)}${rest.slice(at)}`;
  });
  for (const s of secrets?.known() ?? []) {
    // A secret this short ("a", ".", "ab1") stands in innocent text everywhere (a version's dots,
    // a port's colon): masking it there would corrupt the output and show the secret by what
    // became "***". Such a secret is still masked where it stands as a password, in URLs above.
    if (s.length < MIN_FREE_TEXT_SECRET) continue;
    out = out.split(s).join("***");
  }
  return out;
}

/** The shortest piece of an echoed credential masked on its own (see maskEcho). */
const MIN_ECHO_PIECE = 6;

/**
 * `text` without `base64` (the credentials of an Authorization: Basic header) wherever a server
 * that echoes the request put it: as sent, percent-encoded, JSON- or HTML-escaped, or cut short
 * (by the server, or by topo's own bound on a quoted page). Every piece of it between "+", "/"
 * and "=" is masked too, so no other way of writing those shows the rest: each piece decodes to a
 * piece of "user:password".
 */
export function maskEcho(text: string, base64: string): string {
  if (!base64) return text;
  const forms = new Set([base64, ...percentForms(encodeURIComponent(base64)), base64.replace(/\//g, "\\/")]);
  for (const c of ["/", "+", "="]) {
    const n = c.charCodeAt(0);
    for (const entity of [`&#${n};`, `&#x${n.toString(16)};`, `&#x${n.toString(16).toUpperCase()};`]) forms.add(base64.split(c).join(entity));
  }
  const pieces = base64.split(/[+/=]+/).filter((p) => p.length >= MIN_ECHO_PIECE);
  let out = text;
  for (const f of [...forms, ...pieces].sort((a, b) => b.length - a.length)) out = out.split(f).join("***");
  // What is left of an echo cut short is the beginning of one of its pieces.
  return out.replace(/[A-Za-z0-9+/]{6,}/g, (run) => (base64.includes(run) ? "***" : run));
}
