// Every URL and every message that reaches output passes through here first (rule: never print a
// password). A Redactor holds the secrets one run has read (from the file, the environment or the
// command line) and masks them, in every form they can take, wherever they show up; the URL
// user-info masking needs no secrets and is a plain function. No module state: the CLI makes one
// Redactor and hands it to what it runs, and a library user makes their own.

import { escapeRegex } from "./core/naming.js";
import { pushTo } from "./core/collections.js";

export class Redactor {
  /** Each form a secret takes (raw, percent-encoded, JSON-escaped), and the secret it is of. */
  private readonly secrets = new Map<string, string>();
  /**
   * Words output shows by design (see spare), as given: read only when a secret could stand in
   * one. Copying them (150,000 names at 25,000 services) cost a plan tens of milliseconds whether
   * or not any secret was of the kind that needs them.
   */
  private readonly words: Iterable<string>[] = [];
  /**
   * What maskSecrets() masks, until the next add() or spare(). Working it out looks
   * for every secret in every word, tens of thousands of them for a large topology, and output
   * asks for it once per string: --json of a plan of 5,000 services took minutes before it was kept.
   */
  private masked: Masking | undefined;

  /** Remember a secret so that text() masks it wherever it shows up. */
  add(secret: string | undefined): void {
    if (!secret) return;
    this.masked = undefined;
    // A password can also appear percent-encoded inside a URL (encodeURIComponent's way, or the
    // URL parser's, which leaves "+", "=" and the like alone), and JSON-escaped in --json output.
    // %-escapes may be written in lower case ("%2b"): a URL means the same by them.
    // Other encoders escape more: RFC 3986's strict way (Python's quote(pw, safe="") escapes
    // ' ( ) ! * too), and a form body's (a space as "+"); what a user exported is one of these.
    // An error page may echo any of them HTML-escaped.
    for (const form of new Set([secret, ...percentForms(encodeURIComponent(secret), userinfoEncoded(secret), strictEncoded(secret), formEncoded(secret))])) {
      for (const shown of new Set([form, JSON.stringify(form).slice(1, -1), ...htmlEscaped(form)])) this.secrets.set(shown, secret);
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
    this.words.push(words);
    this.masked = undefined;
  }

  /** `text` with every URL's password and every secret masked. */
  text(text: string): string {
    return redactText(text, this);
  }

  /**
   * `text` as text() masks it, and every secret also where text() spares it (one that is a word,
   * or that stands in a name the output shows), wherever it stands as a whole word. For free text
   * a person wrote beside the file's URLs (the comments import copies): there a password that is a
   * word is more likely a note of it than a word of the sentence.
   */
  strictText(text: string): string {
    let out = this.text(text);
    for (const secret of new Set(this.secrets.values())) {
      if (secret.length < MIN_FREE_TEXT_SECRET || !out.includes(secret)) continue;
      out = out.replace(new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegex(secret)}(?![\\p{L}\\p{N}])`, "gu"), "***");
    }
    return out;
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

  /**
   * `text` with every secret masked, in every form, except those spared (see spare) and those too
   * short for free text (MIN_FREE_TEXT_SECRET). Longest first, so a secret that contains another
   * is masked whole.
   */
  maskSecrets(text: string): string {
    const { rank, starred, finder } = this.masking();
    if (!rank.size) return text;
    // Only the secrets the text holds are split out of it, longest first: one search of the
    // text per secret made a long text, or thousands of short ones (a plan of thousands of
    // users), cost their length times the number of secrets. A secret with "*" in it is always
    // tried, since "***" put in by a longer one can make it stand where it did not.
    const present = finder.in(text);
    if (!present.size && !starred.length) return ESCAPE.test(text) ? this.maskEscaped(text) : text;
    let out = text;
    for (const s of [...new Set([...present, ...starred])].sort((a, b) => rank.get(a)! - rank.get(b)!)) out = out.split(s).join("***");
    return ESCAPE.test(out) ? this.maskEscaped(out) : out;
  }

  /**
   * `text` with every secret masked where it stands written with escapes of any kind, mixed as
   * they come: %-escapes in either case ("%2f", "%2F"), some characters escaped and others not
   * ("p%40ss:x" for "p@ss:x"), HTML character references ("&#039;", "&#x27;", "&#112;" for every
   * character) and JSON's backslash escapes ("\\u0071"). The forms add() derives are only the
   * common whole ones; a proxy's error page or a comment may write a password any of these ways.
   * Each line that holds an escape is read decoded, and each secret found there is masked over the
   * span it came from: line by line, so that a long text (a plan of 150,000 actions) with an escape
   * somewhere is not mapped character by character as a whole.
   */
  private maskEscaped(text: string): string {
    const { raw } = this.masking();
    if (raw.empty) return text;
    return text
      .split("\n")
      .map((line) => (ESCAPE.test(line) ? maskEscapedLine(line, raw) : line))
      .join("\n");
  }

  private masking(): Masking {
    if (this.masked) return this.masked;
    // A word or a number is spared whatever the words: only the others are looked for in them.
    const secrets = new Set(this.secrets.values());
    const spared = standingInWords([...secrets].filter((s) => !inSentences(s)), this.words.length === 1 ? (this.words[0] as Iterable<string>) : everyWord(this.words));
    for (const secret of secrets) if (inSentences(secret)) spared.add(secret);
    // Shorter ones are masked only in URLs (redactText).
    const free = [...this.secrets]
      .filter(([form, secret]) => form.length >= MIN_FREE_TEXT_SECRET && !spared.has(secret))
      .map(([form]) => form)
      .sort((a, b) => b.length - a.length);
    const raw = new Finder([...secrets].filter((s) => !spared.has(s)));
    this.masked = { rank: new Map(free.map((f, i) => [f, i])), starred: free.filter((f) => f.includes("*")), finder: new Finder(free), raw };
    return this.masked;
  }
}

/** What a Redactor masks, worked out once (see Redactor.masked). */
interface Masking {
  /** Each form masked in free text, by its place in the order of masking: longest first. */
  readonly rank: ReadonlyMap<string, number>;
  /** Those with "*" in them. */
  readonly starred: readonly string[];
  readonly finder: Finder;
  /** The secrets themselves, as free text may show them once its escapes are read (maskEscaped). */
  readonly raw: Finder;
}

/** `line` with each secret `raw` finds in it, once its escapes are read, masked over the span it came from. */
function maskEscapedLine(line: string, raw: Finder): string {
  const view = decodedView(line);
  const found = view ? raw.in(view.decoded) : undefined;
  if (!view || !found?.size) return line;
  const spans: Array<[number, number]> = [];
  for (const s of found) {
    for (let i = view.decoded.indexOf(s); i >= 0; i = view.decoded.indexOf(s, i + 1)) spans.push([view.from[i] as number, view.to[i + s.length - 1] as number]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let out = "";
  let at = 0;
  for (const [start, end] of spans) {
    if (end <= at) continue;
    out += `${line.slice(at, Math.max(at, start))}***`;
    at = end;
  }
  return out + line.slice(at);
}

/** An escape a text may write a character with: %XX, an HTML character reference, a JSON backslash escape. */
const ESCAPE_SOURCE = String.raw`(?:%[0-9A-Fa-f]{2})+|&#[0-9]{1,7};|&#[xX][0-9A-Fa-f]{1,6};|&(?:amp|lt|gt|quot|apos);|\\u[0-9A-Fa-f]{4}|\\["\\/]`;
const ESCAPE = new RegExp(ESCAPE_SOURCE);
const NAMED_ENTITY: Record<string, string> = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'" };

/**
 * `text` with every escape read (a run of %-escapes as the UTF-8 it encodes), and for each
 * character of the result the span of `text` it was read from: from[i] to to[i], end exclusive.
 * Undefined when the text holds no escape.
 */
function decodedView(text: string): { decoded: string; from: number[]; to: number[] } | undefined {
  const pattern = new RegExp(ESCAPE_SOURCE, "g");
  let decoded = "";
  const from: number[] = [];
  const to: number[] = [];
  const put = (chars: string, start: number, end: number) => {
    for (let k = 0; k < chars.length; k++) {
      from.push(start);
      to.push(end);
    }
    decoded += chars;
  };
  let at = 0;
  let any = false;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    for (let i = at; i < m.index; i++) put(text[i] as string, i, i + 1);
    const e = m[0];
    const end = m.index + e.length;
    let chars: string;
    if (e.startsWith("%")) chars = Buffer.from(e.replace(/%/g, ""), "hex").toString("utf8");
    else if (e.startsWith("&#x") || e.startsWith("&#X")) chars = codePoint(parseInt(e.slice(3, -1), 16));
    else if (e.startsWith("&#")) chars = codePoint(parseInt(e.slice(2, -1), 10));
    else if (e.startsWith("&")) chars = NAMED_ENTITY[e] as string;
    else if (e.startsWith("\\u")) chars = String.fromCharCode(parseInt(e.slice(2), 16));
    else chars = e.slice(1);
    put(chars, m.index, end);
    at = end;
    any = true;
  }
  if (!any) return undefined;
  for (let i = at; i < text.length; i++) put(text[i] as string, i, i + 1);
  return { decoded, from, to };
}

function codePoint(n: number): string {
  return n <= 0x10ffff ? String.fromCodePoint(n) : "\ufffd";
}

/** Percent-encoded forms, and each again with its %-escapes in lower case ("%2b"): a URL means the same by them. */
function percentForms(...encoded: (string | undefined)[]): string[] {
  const forms = encoded.filter((f): f is string => !!f);
  return [...forms, ...forms.map((f) => f.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()))];
}

/** Every character but RFC 3986's unreserved ones (letters, digits, - . _ ~) %-escaped. */
function strictEncoded(secret: string): string {
  return encodeURIComponent(secret).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** As an HTML form sends it (application/x-www-form-urlencoded): a space is "+". */
function formEncoded(secret: string): string {
  return new URLSearchParams({ p: secret }).toString().slice(2);
}

/** `text` as HTML escapes it: & < > " and ' as entities, in the ways servers write them. */
function htmlEscaped(text: string): string[] {
  if (!/[&<>"']/.test(text)) return [];
  const named: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const forms = [named, { ...named, "'": "&#x27;" }, { ...named, '"': "&#34;" }];
  return forms.map((m) => text.replace(/[&<>"']/g, (c) => m[c] as string));
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
 * It is looked for only where a run of a scheme's characters starts, after any digits or signs
 * that run starts with ("0amqp://u:p@h"; "_" is no such character, so "_amqp://" starts a run):
 * tried at every letter, the search went through the rest of each run, so a long word (a token of
 * 100,000 letters) took seconds.
 */
const URL_TOKEN = /(?<![a-z0-9+.-])([0-9+.-]*)([a-z][a-z0-9+.-]*:\/\/|(?:amqps?|https?):\/?(?!\/))([^\s"]*)/gi;
/**
 * A URL whose password holds a '"' or white space, which end URL_TOKEN's token (a URL pasted into
 * a comment, or given where a file name belongs): its plain user name, ":", then the password to
 * the first "@" of the line and on to the last "@" before white space (a password may hold "@").
 * It ends where a host may start. A host's port ("http://h:15672/api and a@b") is not taken for
 * a password; other text in which a URL is followed, on its line, by quotes or words and an "@"
 * loses that part too: masking too much beats printing a piece.
 */
const QUOTED_USERINFO = /(?<![a-z0-9+.-])([0-9+.-]*[a-z][a-z0-9+.-]*:\/\/[A-Za-z0-9._~%!$&'()*+,;=-]*:)(?![0-9]+(?:[/\s?#]|$))([^@\n"\s]*["\s][^@\n]*@(?:[^\s@]*@)*)(?=[A-Za-z0-9[])/gi;
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
 * A secret that is a word: letters only, at most WORD_LIKE_MAX long ("rabbitmq", "Rabbit",
 * "management"). Any sentence that reaches output may hold it,
 * topo's own ("rabbitmqctl set_user_tags", "(RabbitMQ 3.10.8)"), the broker's ("Not management
 * user", "Login failed") or Node's, and no list of them is whole: blanked there, it shows itself by
 * the sentence around it ("***ctl", "Not *** user"). Such a secret is masked only where it
 * stands as a password, in URLs, and the loader warns about it (literal-secrets.ts).
 */
export function isWordLike(secret: string): boolean {
  return secret.length <= WORD_LIKE_MAX && /^\p{L}+$/u.test(secret);
}

/** The longest secret taken for a word: longer runs of letters are in no sentence. */
const WORD_LIKE_MAX = 24;

/**
 * A secret that is a number: digits, in groups joined by one of . , : - / ("3.10.8", "127.0.0.1",
 * "2026-12-06", "482913"), at most WORD_LIKE_MAX long. Output holds numbers the file never wrote:
 * the broker's version and Erlang's ("(RabbitMQ 3.10.8)"), counts, ports, times. Blanked there, it
 * shows itself by the sentence around it ("(RabbitMQ ***)" names the version the broker runs), so
 * it is masked only where it stands as a password, as a word is, and the loader warns about it.
 */
export function isNumberLike(secret: string): boolean {
  return secret.length <= WORD_LIKE_MAX && /^\p{Nd}+(?:[.,:\/-]\p{Nd}+)*$/u.test(secret);
}

/** A secret any sentence may hold (a word or a number): masked only where it stands as a password. */
export function inSentences(secret: string): boolean {
  return isWordLike(secret) || isNumberLike(secret);
}

/**
 * Which of `secrets` free text would show inside one of `words` (names and words output shows by
 * design): those are masked only in URLs (Redactor.spare). A secret too short for free-text
 * masking is never masked there anyway, and is none of them. Each word is read once, whatever the
 * number of secrets: one search of every word per secret took minutes for 10,000 users.
 */
export function standingInWords(secrets: Iterable<string>, words: Iterable<string>): Set<string> {
  const finder = new Finder(secrets);
  const found = new Set<string>();
  // No secret long enough to look for (none at all, or only short ones): the words are not read.
  if (finder.empty) return found;
  for (const w of words) finder.in(w, found);
  return found;
}

/**
 * Finds which of many strings, each at least MIN_FREE_TEXT_SECRET long (shorter ones are never
 * found), occur in a text, in one pass over it: each MIN_FREE_TEXT_SECRET-character window of the
 * text is looked up among the strings' beginnings, and only the strings that begin so are compared.
 */
class Finder {
  private readonly byStart = new Map<string, string[]>();
  /**
   * The strings, when they are few: then each is looked for with includes(), in V8's own code,
   * rather than a lookup at every place of the text (two passwords against the 150,000 names of
   * 25,000 services, without TurboFan as topo runs: 24–39 ms so, 112 ms by their beginnings).
   */
  private readonly few: string[] | undefined;

  constructor(strings: Iterable<string>) {
    const all: string[] = [];
    for (const s of new Set(strings)) {
      if (s.length < MIN_FREE_TEXT_SECRET) continue;
      all.push(s);
      pushTo(this.byStart, s.slice(0, MIN_FREE_TEXT_SECRET), s);
    }
    this.few = all.length <= FEW ? all : undefined;
  }

  /** Nothing to find: no string was long enough. */
  get empty(): boolean {
    return this.byStart.size === 0;
  }

  /** The strings `text` holds, added to `found`. */
  in(text: string, found = new Set<string>()): Set<string> {
    if (!this.byStart.size) return found;
    if (this.few) {
      for (const s of this.few) if (text.includes(s)) found.add(s);
      return found;
    }
    for (let i = 0; i + MIN_FREE_TEXT_SECRET <= text.length; i++) {
      const list = this.byStart.get(text.slice(i, i + MIN_FREE_TEXT_SECRET));
      if (list) for (const s of list) if (text.startsWith(s, i)) found.add(s);
    }
    return found;
  }
}

/** Up to this many strings, a Finder looks for each in turn (Finder.few). */
const FEW = 8;

/** The words of every source, one source after another. */
function* everyWord(sources: readonly Iterable<string>[]): Iterable<string> {
  for (const words of sources) yield* words;
}

/**
 * Mask every secret `secrets` knows, and any user:password@ in URLs inside free text. The secrets
 * first: a known password that holds "@" and stands in a URL after its host (RabbitMQ's own UI
 * link ".../#/login/USER/PASSWORD", or a redirect's query) would otherwise be cut at its "@" by
 * the user-info's masking, and what follows the "@" printed, no longer whole to be found.
 */
export function redactText(text: string, secrets?: Redactor): string {
  const known = secrets ? secrets.maskSecrets(text) : text;
  const out = known.replace(URL_TOKEN, (m, lead: string, scheme: string, rest: string) => {
    // A password may hold "@", "/", ":" or "%" (unencoded, or in a URL that did not parse), so
    // the user-info runs to the LAST "@" of the token: masking too much beats printing a piece.
    const at = rest.lastIndexOf("@");
    if (at < 0) return m;
    const userinfo = rest.slice(0, at);
    // "<password>" in advice text is a placeholder, not a secret.
    const colon = userinfo.indexOf(":");
    if (colon >= 0 && userinfo.slice(colon + 1) === "<password>") return m;
    return `${lead}${scheme}${maskUserinfo(userinfo)}${rest.slice(at)}`;
  }).replace(QUOTED_USERINFO, "$1***@");
  // A secret shorter than MIN_FREE_TEXT_SECRET ("a", ".", "ab1") stands in innocent text
  // everywhere (a version's dots, a port's colon): masking it there would corrupt the output and
  // show the secret by what became "***". Such a secret is still masked where it stands as a
  // password, in URLs above.
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
  // In any case: a server that lower-cases the header it echoes leaves base64 that can be read
  // back by trying the case of each letter.
  for (const f of [...forms, ...pieces].sort((a, b) => b.length - a.length)) out = out.replace(new RegExp(escapeRegex(f), "gi"), "***");
  // What is left of an echo cut short is the beginning of one of its pieces.
  const lower = base64.toLowerCase();
  return out.replace(/[A-Za-z0-9+/]{6,}/g, (run) => (lower.includes(run.toLowerCase()) ? "***" : run));
}
