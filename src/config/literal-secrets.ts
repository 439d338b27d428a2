// Pure: a password written in the file itself. A topology file lives in git, where every reader
// of the repository and of its history has what it holds: a password belongs in the environment,
// put in with ${VAR}. A password that comes from the file (written out, or the :-default of a
// variable that is not set) is warned about at its place, never shown. RabbitMQ's built-in
// guest/guest, which the broker accepts only from the local machine, is no secret to keep.

import { describe } from "../core/keys.js";
import { ENV_NAME_SOURCE } from "../core/naming.js";
import type { DesiredState } from "../model.js";
import { inSentences, isNumberLike, isWordLike, MIN_FREE_TEXT_SECRET, standingInWords } from "../redact.js";
import { envVar, type Env } from "./interpolate.js";
import { userinfoSpan } from "./url.js";

const REF = new RegExp(`\\$\\$|\\$\\{(${ENV_NAME_SOURCE})(:-[^}]*)?\\}`, "g");

/**
 * The warning for a value that holds a password written in the file, or undefined. `source` is
 * the value as written, `value` what it became; `path` is users.NAME.password or
 * clusters.NAME.url / .management.
 */
export function literalPasswordWarning(source: string, value: string, path: readonly (string | number)[], env: Env): string | undefined {
  if (path[0] === "users" && path[2] === "password") {
    if (guest(String(path[1]), value)) return undefined;
    const why = fromFile(source, 0, source.length, env);
    if (why === undefined) return undefined;
    return `${why}: anyone who can read the file, or its history in git, has it; put it in an environment variable and write password: \${${envName(String(path[1]))}_PASSWORD} (that variable's name, or another)`;
  }
  if (path[0] !== "clusters" || (path[2] !== "url" && path[2] !== "management")) return undefined;
  // Where the password stands in the URL as written: after the user-info's first ":" (each
  // reference blanked first, since a :-default may hold ":" or "@").
  const blank = source.replace(REF, (m) => " ".repeat(m.length));
  const span = userinfoSpan(blank);
  if (!span) return undefined;
  const colon = blank.indexOf(":", span.start);
  if (colon < 0 || colon >= span.end) return undefined;
  if (isGuest(value)) return undefined;
  const why = fromFile(source, colon + 1, span.end, env);
  if (why === undefined) return undefined;
  return `the URL's password ${why.replace(/^the password /, "")}: anyone who can read the file, or its history in git, has it; put it in an environment variable and write \${RABBITMQ_PASSWORD} (that variable's name, or another) in its place in the URL`;
}

/**
 * The problem of a cluster URL whose user-info holds a ${VAR} and no ":" once it is put in
 * (`amqp://${RABBITMQ_PASSWORD}@host`, the user name forgotten): the variable's value is taken as
 * the user name, with no password, which RabbitMQ never accepts, and output shows a URL's user name
 * (the 401's hint named it: 'the credentials of "<the password>"'). Undefined otherwise. The
 * value is never shown, nor the user-info as written (a :-default may hold a password).
 */
export function lonePasswordVariable(source: string, value: string, path: readonly (string | number)[]): string | undefined {
  if (path[0] !== "clusters" || (path[2] !== "url" && path[2] !== "management")) return undefined;
  const blank = source.replace(REF, (m) => " ".repeat(m.length));
  const span = userinfoSpan(blank);
  if (!span) return undefined;
  const refs = [...source.slice(span.start, span.end).matchAll(REF)].flatMap((m) => (m[1] === undefined ? [] : [{ name: m[1], at: span.start + (m.index ?? 0) }]));
  const names = refs.map((r) => r.name);
  if (!names.length) return undefined;
  // A variable named as a password in the user name's place (`${RABBITMQ_PASSWORD}:${RABBITMQ_USER}@`,
  // the two swapped, or `${RABBITMQ_PASSWORD}:@`): its value is taken as the user name, which
  // output shows ('the credentials of "<the password>"', the URL's "<the password>:***@").
  const colon = blank.indexOf(":", span.start);
  const userEnd = colon >= 0 && colon < span.end ? colon : span.end;
  const inUser = refs.find((r) => r.at < userEnd && SECRET_NAME.test(r.name));
  if (inUser && userEnd < span.end) {
    const ref = `\${${inUser.name}}`;
    return `the URL's user name is read from ${ref}, a variable named as a password: its value (not shown) would be taken as the user name, and output shows a URL's user name; write <user>:${ref}@ (are the user's and the password's variables swapped?)`;
  }
  const put = userinfoSpan(value);
  if (put && value.slice(put.start, put.end).includes(":")) return undefined;
  const name = names[names.length - 1] as string;
  const ref = `\${${name}}`;
  return `the URL's user-info holds no ":" once ${ref} is put in, so its value (not shown) is taken as the user name, with no password, and RabbitMQ refuses a login without one; write <user>:${ref}@ where ${ref} holds the password`;
}

/** A variable's name that says it holds a secret: RABBITMQ_PASSWORD, MGMT_PW, PASS, API_TOKEN, BROKER_SECRET. */
const SECRET_NAME = /(?:^|_)(?:PASS|PASSWORD|PASSWD|PWD|PW|SECRET|TOKEN)(?:_|$)|(?:PASSWORD|PASSWD|SECRET|TOKEN)$/i;

/** Why the text of source[start, end) comes from the file, or undefined when the environment gives it all. */
function fromFile(source: string, start: number, end: number, env: Env): string | undefined {
  let covered = start;
  let literal = false;
  const defaults: string[] = [];
  for (const m of source.matchAll(REF)) {
    const at = m.index ?? 0;
    if (at + m[0].length <= start || at >= end) continue;
    if (at > covered) literal = true;
    covered = Math.max(covered, at + m[0].length);
    if (m[0] === "$$") literal = true;
    else {
      const name = m[1] as string;
      const v = envVar(env, name);
      const set = v !== undefined && v !== "";
      if (!set && m[2] !== undefined && m[2].length > 2) defaults.push(name);
    }
  }
  if (covered < end) literal = true;
  if (literal) return "the password is written in the file";
  if (defaults.length) return `the password is the :-default written in the file, since ${defaults.join(", ")} ${defaults.length === 1 ? "is" : "are"} not set`;
  return undefined;
}

/** RabbitMQ's own guest/guest, which it takes only from the local machine. */
function isGuest(url: string): boolean {
  try {
    const u = new URL(url);
    return guest(decodeURIComponent(u.username), decodeURIComponent(u.password));
  } catch {
    return false;
  }
}

/** A user name as the stem of a variable's name: MPLOGIN for mplogin. */
function envName(user: string): string {
  return user.toUpperCase().replace(/[^A-Z0-9_]/g, "_").replace(/^[^A-Z_]/, "_$&");
}

/**
 * The words output shows by design for this topology: every name it holds (clusters, hosts,
 * ports, vhosts, URL user names, services, exchanges, queues, bindings, policies, users, tags).
 * A password inside one of them cannot be masked in free text. (A password inside a word of the
 * sentences topo prints is a word itself, letters only: redact.ts isWordLike.)
 */
export function shownWords(desired: DesiredState): Iterable<string> {
  // Read at the first use, once: only a password that is no word (a digit or a sign in it) is
  // looked for in them, and a file with none (guest/guest, or no passwords at all) never needs
  // them. Gathering them took a plan of 25,000 services a quarter of a second of CPU.
  let words: string[] | undefined;
  return { [Symbol.iterator]: () => (words ??= gatherWords(desired)).values() };
}

function gatherWords(desired: DesiredState): string[] {
  const words = new Set<string>([desired.prefix, ...PRINTED_TERMS]);
  const strings = (v: unknown): void => {
    if (typeof v === "string") words.add(v);
    else if (Array.isArray(v)) v.forEach(strings);
    else if (typeof v === "object" && v !== null) {
      // Keys too: a policy's and a queue's are printed as they are ("ha-sync-mode=automatic").
      // So is each key with its value, as plan writes them: a policy's "ha-mode=all", a queue's
      // argument as JSON ("x-dead-letter-exchange=\"dlx\"", "x-max-length=100"). A password equal to
      // one, masked there, showed by what was blanked ("(pattern ..., ***, ha-sync-mode=automatic").
      for (const [k, x] of Object.entries(v)) {
        words.add(k);
        if (typeof x !== "object" || x === null) words.add(`${k}=${String(x)}`).add(`${k}=${JSON.stringify(x)}`);
        strings(x);
      }
    }
  };
  for (const c of desired.clusters) {
    const { amqp, management } = c.target;
    for (const w of [c.target.name, amqp.hostname, String(amqp.port), amqp.username, amqp.vhost, management.baseUrl, management.username]) words.add(w);
    strings(c.resources);
    // And each object's name as plan prints it: a permission's "of mplogin", a topic
    // permission's "of mplogin on mpwallet", a binding's "mplogin -> mplogin.sync [mplogin.sync.#]".
    for (const r of c.resources) words.add(describe(r));
  }
  return [...words];
}

/**
 * Terms with a sign in them that topo's or RabbitMQ's own sentences hold whatever the file says
 * (letters-only ones are words: redact.ts isWordLike). A password equal to one, masked where the
 * term stands, was shown by the sentence around it ("ha-mode=all, ***=automatic").
 */
const PRINTED_TERMS = [
  "cluster-name",
  "not_authorized",
  "not_authorised",
  "not_found",
  "object_not_found",
  "ACCESS_REFUSED",
  "NOT_FOUND",
  "NOT_ALLOWED",
  "PRECONDITION_FAILED",
  "RESOURCE_LOCKED",
  "CONNECTION_FORCED",
  "ha-mode",
  "ha-sync-mode",
  "ha-params",
  "apply-to",
  "drop-head",
  "reject-publish",
  "reject-publish-dlx",
  "at-least-once",
  "at-most-once",
  "amq.default",
  "--allow-destructive",
  "--allow-data-loss",
  "--allow-unmanaged-deletes",
  "--detailed-exitcode",
];

const NAME_LIKE =
  "is also a name in this file, so topo's output shows that name as it is (masking it would blank the name everywhere, and show the password by what was blanked); it is masked only where it stands as a password, in URLs: choose a password that is no name";

const TERM_LIKE =
  "stands in a term that topo's or RabbitMQ's own output holds (\"ha-sync-mode\", \"not_authorized\", \"cluster-name\"), so output shows that term as it is (masking it would show the password by the sentence around it); it is masked only where it stands as a password, in URLs: choose another password";

const WORD_LIKE =
  "is a word (letters only), which a sentence of topo's, the broker's or Node's may hold (\"RabbitMQ\", \"Not management user\"), so output shows it as it is there (masking it would show it by the sentence around it); it is masked only where it stands as a password, in URLs: choose a password with a digit or a sign in it";

const NUMBER_LIKE =
  "is a number (digits, with . , : - or / between them), which topo's and RabbitMQ's output holds as versions, counts, ports and times (the broker's version beside its URL, a queue's message count), so output shows it as it is there (masking it would show it by the sentence around it); it is masked only where it stands as a password, in URLs: choose a password with letters in it";

/**
 * A warning, at its key, for each password that stands inside a name or word the output shows
 * (shownWords): users' passwords and the clusters' URLs'. RabbitMQ's guest/guest is none to warn about.
 */
export function nameLikePasswords(desired: DesiredState, userPasswords: Readonly<Record<string, string>>, words: Iterable<string>): { path: string[]; message: string }[] {
  const passwords: { password: string; path: string[]; subject: string }[] = [];
  for (const c of desired.clusters) {
    const { amqp, management } = c.target;
    if (!guest(amqp.username, amqp.password)) passwords.push({ password: amqp.password, path: ["clusters", c.target.name, "url"], subject: "the URL's password" });
    if (management.password !== amqp.password && !guest(management.username, management.password)) {
      passwords.push({ password: management.password, path: ["clusters", c.target.name, "management"], subject: "the URL's password" });
    }
  }
  for (const [user, pw] of Object.entries(userPasswords)) {
    if (!guest(user, pw)) passwords.push({ password: pw, path: ["users", user, "password"], subject: "the password" });
  }
  // A word or a number is warned about as such whatever the words are (below).
  const inWords = standingInWords(passwords.map((p) => p.password).filter((p) => !inSentences(p)), words);
  const inTerms = standingInWords(passwords.map((p) => p.password), PRINTED_TERMS);
  const why = (password: string): string | undefined => {
    // A shorter one is masked only in URLs anyway (redact.ts MIN_FREE_TEXT_SECRET).
    if (password.length < MIN_FREE_TEXT_SECRET) return undefined;
    if (isWordLike(password)) return WORD_LIKE;
    if (isNumberLike(password)) return NUMBER_LIKE;
    if (inTerms.has(password)) return TERM_LIKE;
    return inWords.has(password) ? NAME_LIKE : undefined;
  };
  return passwords.flatMap(({ password, path, subject }) => {
    const message = why(password);
    return message ? [{ path, message: `${subject} ${message}` }] : [];
  });
}

/** RabbitMQ's own guest/guest, no secret to keep: it logs in from the local machine only. */
export function guest(user: string, pw: string): boolean {
  return user === "guest" && pw === "guest";
}
