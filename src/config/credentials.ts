// The file's user passwords, held where no plan, state or output can reach them: in a closure,
// behind the two questions topo asks (does the broker's stored hash match? what hash do I send?).
// RabbitMQ stores base64(salt + H(salt + password)) with a 4-byte salt; two hashes of one password
// differ by their salt, so a comparison re-hashes the file's password with the stored salt.

import { createHash, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import { ownValue } from "../core/collections.js";
import type { Credentials, StoredHash } from "../model.js";

/** The hashing RabbitMQ uses by default since 3.6, and what topo sends. */
export const SHA256 = "rabbit_password_hashing_sha256";

const DIGESTS: Record<string, string> = {
  rabbit_password_hashing_sha256: "sha256",
  rabbit_password_hashing_sha512: "sha512",
  rabbit_password_hashing_md5: "md5",
};
const SALT_BYTES = 4;

/**
 * The cost of a saved plan's fingerprint of the passwords: OWASP's scrypt setting (N=2^15, r=8,
 * p=3; 32 MiB, under a second once per plan -o and apply PLANFILE). The plan holds the key beside
 * the digest and travels as a CI artifact: a fast hash (an HMAC under that key) would let whoever
 * can download it try billions of passwords a second.
 */
export const FINGERPRINT_SCRYPT = { N: 2 ** 15, r: 8, p: 3, maxmem: 64 * 1024 * 1024 } as const;

/** What the file says about one user's password: the password itself, or a ready hash. */
export type PasswordSource = { password: string } | { hash: string };

/** RabbitMQ's salted hash of `password`. */
export function rabbitHash(password: string, salt: Buffer = randomBytes(SALT_BYTES), algorithm = SHA256): string {
  // The broker names the algorithm: only the table's own entries count (not `constructor`).
  const digest = ownValue(DIGESTS, algorithm);
  if (!digest) throw new Error(`unknown password hashing algorithm ${algorithm}`);
  const h = createHash(digest).update(salt).update(Buffer.from(password, "utf8")).digest();
  return Buffer.concat([salt, h]).toString("base64");
}

/** Is `hash` a well-formed sha256 hash as RabbitMQ stores it (4 bytes of salt, 32 of digest)? */
export function isSha256Hash(hash: string): boolean {
  // 36 bytes are 48 characters of base64 exactly, with no padding: Node's decoder skips an "=" too
  // many ("...=" of 49 characters decoded to 36 bytes), and RabbitMQ refused it (400 not_base64)
  // half-way through an apply that validate had passed.
  return hash.length === (4 * (SALT_BYTES + 32)) / 3 && /^[A-Za-z0-9+/]+$/.test(hash);
}

function sameHash(password: string, stored: StoredHash): boolean {
  if (!Object.hasOwn(DIGESTS, stored.algorithm)) return false;
  const bytes = Buffer.from(stored.hash, "base64");
  if (bytes.length <= SALT_BYTES) return false;
  const mine = Buffer.from(rabbitHash(password, bytes.subarray(0, SALT_BYTES), stored.algorithm), "base64");
  return mine.length === bytes.length && timingSafeEqual(mine, bytes);
}

export function credentials(sources: ReadonlyMap<string, PasswordSource>): Credentials {
  const of = (user: string): PasswordSource => {
    const s = sources.get(user);
    if (!s) throw new Error(`no password for user ${user} in the file`);
    return s;
  };
  return {
    matches(user, stored) {
      const s = of(user);
      return "password" in s ? sameHash(s.password, stored) : stored.algorithm === SHA256 && s.hash === stored.hash;
    },
    hashFor(user) {
      const s = of(user);
      return { password_hash: "password" in s ? rabbitHash(s.password) : s.hash, hashing_algorithm: SHA256 };
    },
    fingerprint(key) {
      const all = [...sources.keys()].sort().map((user) => {
        const s = of(user);
        return [user, "password" in s ? "password" : "hash", "password" in s ? s.password : s.hash];
      });
      return scryptSync(JSON.stringify(all), key, 32, FINGERPRINT_SCRYPT).toString("hex");
    },
  };
}
