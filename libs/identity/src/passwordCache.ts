import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Remembers recent successful password checks (like SFTPGo's `password_caching`).
 *
 * Why: a scrypt verification costs ~50 ms of CPU on purpose. Partners that log in again and again
 * (scripts polling every minute, many parallel sessions) would otherwise burn a core on it.
 * What is kept is an HMAC keyed by a per-process random secret over user + stored hash + password,
 * never the password: the digest is useless outside this process, and since the stored hash is
 * part of it, changing a user's password in the users file invalidates the entry on its own.
 */
export interface PasswordCache {
  matches(user: string, encodedHash: string, password: string): boolean;
  remember(user: string, encodedHash: string, password: string): void;
  /** An opaque key for one (user, stored hash, password) triple, safe to keep in memory: not the password. */
  keyOf(user: string, encodedHash: string, password: string): string;
  size(): number;
}

export function createPasswordCache(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}): PasswordCache {
  const ttlMs = options.ttlMs ?? 10 * 60_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const secret = randomBytes(32);
  const entries = new Map<string, { digest: Buffer; expires: number }>();

  const digestOf = (user: string, encodedHash: string, password: string): Buffer =>
    createHmac('sha256', secret).update(`${user}\0${encodedHash}\0${password}`).digest();

  return {
    matches(user, encodedHash, password) {
      const entry = entries.get(user);
      if (!entry) return false;
      if (entry.expires <= now()) {
        entries.delete(user);
        return false;
      }
      return timingSafeEqual(entry.digest, digestOf(user, encodedHash, password));
    },
    remember(user, encodedHash, password) {
      entries.delete(user); // re-insert so Map order stays oldest-first
      while (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
      entries.set(user, { digest: digestOf(user, encodedHash, password), expires: now() + ttlMs });
    },
    keyOf: (user, encodedHash, password) => digestOf(user, encodedHash, password).toString('base64'),
    size: () => entries.size,
  };
}
