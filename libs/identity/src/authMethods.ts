import { AUTH_METHODS, type AuthMethod, type AuthMethodSet, type User } from './types';

/** Method names as SSH puts them on the wire (RFC 4252 §5.1 "authentications that can continue"). */
export type SshAuthMethod = 'publickey' | 'password' | 'keyboard-interactive';

/** What a client may still try: everything a user without `auth_methods` accepts, in the order clients should try it. */
export const ANY_SSH_METHODS: readonly SshAuthMethod[] = ['publickey', 'password', 'keyboard-interactive'];

export interface NextMethods {
  /** Every required method is done: the login succeeds. */
  complete: boolean;
  /** SSH names of the methods still needed (empty when complete); 'password' brings 'keyboard-interactive' along. */
  remaining: SshAuthMethod[];
}

/** Whether `method` is one the user may use at all (it counts toward the login). */
export function allowsMethod(user: Pick<User, 'authMethods'>, method: AuthMethod): boolean {
  return user.authMethods === undefined || user.authMethods.includes(method);
}

/**
 * After the methods in `done` succeeded, is the login complete, and if not what is left. A user without `authMethods`
 * needs any one of password and public key; with them, every listed method in any order. A method that is not the
 * user's never counts (a key for a password-only user completes nothing). The SSH front door accepts when `complete`
 * and otherwise answers partial success with `remaining`; FTP, which can only do passwords, lets a user in only when
 * `nextMethods(user, new Set(['password'])).complete`.
 */
export function nextMethods(user: Pick<User, 'authMethods'>, done: ReadonlySet<AuthMethod>): NextMethods {
  const required = user.authMethods;
  if (required === undefined) {
    const complete = done.has('password') || done.has('publickey');
    return { complete, remaining: complete ? [] : [...ANY_SSH_METHODS] };
  }
  const left = new Set(required.filter((method) => !done.has(method)));
  return { complete: left.size === 0, remaining: ANY_SSH_METHODS.filter((name) => left.has(name === 'publickey' ? 'publickey' : 'password')) };
}

/** Parses `publickey,password` / a YAML list; returns the set or an error text. 'keyboard-interactive' is a password. */
export function parseAuthMethods(value: unknown): AuthMethodSet | string {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  if (!Array.isArray(list) || list.length === 0) return `must be a non-empty list of ${AUTH_METHODS.join(', ')}`;
  const methods: AuthMethod[] = [];
  for (const item of list) {
    if (item === 'keyboard-interactive') return '"keyboard-interactive" carries the password: write "password" (it allows both)';
    if (!(AUTH_METHODS as readonly unknown[]).includes(item)) return `unknown method "${String(item)}" (known: ${AUTH_METHODS.join(', ')})`;
    if (methods.includes(item as AuthMethod)) return `"${String(item)}" is listed twice`;
    methods.push(item as AuthMethod);
  }
  return methods;
}

/** For listings: `publickey+password` (all of them), or `password|publickey` (either one) when unset. */
export function describeAuthMethods(methods: AuthMethodSet | undefined): string {
  return methods === undefined ? 'password|publickey' : methods.join('+');
}
