// Every URL and every message that reaches output passes through here first (rule: never print a
// password). Secrets are registered as they are read from the file or the environment.

const secrets = new Set<string>();

/** Remember a secret so that redactText masks it wherever it shows up. */
export function registerSecret(secret: string | undefined): void {
  if (secret && secret.length >= 1) {
    secrets.add(secret);
    // A password can also appear percent-encoded inside a URL.
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) secrets.add(encoded);
  }
}

/** Mask the password of a URL; a string that is not a URL is returned with secrets masked. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return redactText(u.toString().replace(/\/$/, url.endsWith("/") ? "/" : ""));
  } catch {
    return redactText(url);
  }
}

const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]*)@/gi;

/** Mask every registered secret and any user:password@ in URLs inside free text. */
export function redactText(text: string): string {
  // "<password>" in advice text is a placeholder, not a secret.
  let out = text.replace(USERINFO, (m, scheme: string, user: string, pass: string) => (pass === "<password>" ? m : `${scheme}${user}:***@`));
  // Longest first, so a secret that contains another is masked whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length < 3 && !/[^a-z0-9]/i.test(s)) {
      // Very short secrets ("a") would mask innocent text; they are still caught inside URLs above.
      continue;
    }
    out = out.split(s).join("***");
  }
  return out;
}
