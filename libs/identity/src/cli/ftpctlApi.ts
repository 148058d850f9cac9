// ftpctl --api URL …: the same commands against a running cluster, through its admin REST API (token in
// FTPCTL_TOKEN). Passwords are hashed here (scrypt) and only the hash is sent.
import { parseArgs } from 'node:util';
import { hashPassword } from '../password';
import { formatAuthorizedKey, parseAuthorizedKey } from '../publicKeys';
import { printTable } from './ftpctlTokens';
import { LIMIT_FIELDS, type LimitKey } from '../records';
import { fail, parseKeyLines, parsePerms, readPasswordLine, readStdinText, USER_OPTIONS } from './input';
import { applyLimitChanges, describeOwnLimits, LIMIT_OPTIONS, limitChanges } from './limitsInput';

export const API_USAGE = `with --api URL (the admin API of a running cluster, e.g. http://ftp-edge-api:9443; token in $FTPCTL_TOKEN):
  user add NAME --password-stdin [--home DIR] [--perm /path=list,download ...] [--group G ...]
  user remove NAME | user list | user passwd NAME --password-stdin | user add-key NAME (keys on stdin)
  user remove-key NAME SHA256:… | user disable NAME | user enable NAME
  user set NAME --quota-bytes N …       as without --api | user show NAME (own limits, in force, usage)
  quota scan [NAME]                     recount the stored bytes and files of NAME (default: every user) from its home
  sessions list [--user U]              live sessions on every replica, with their replica and transfer bytes
  sessions kill ID | sessions kill --user U
  bans list | bans lift ADDRESS`;

/** `--api URL` or `--api=URL` anywhere before the command; the rest of argv without it. */
export function takeApiOption(argv: string[]): { url: string; args: string[] } | undefined {
  const i = argv.findIndex((a) => a === '--api' || a.startsWith('--api='));
  if (i < 0) return undefined;
  const url = argv[i] === '--api' ? argv[i + 1] : argv[i].slice('--api='.length);
  if (!url || url.startsWith('-')) fail(2, '--api needs the URL of the admin API (http://host:port)');
  const args = [...argv.slice(0, i), ...argv.slice(i + (argv[i] === '--api' ? 2 : 1))];
  return { url, args };
}

interface ApiClient {
  call<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

function apiClient(url: string): ApiClient {
  const token = process.env.FTPCTL_TOKEN;
  if (!token) fail(2, 'set FTPCTL_TOKEN to an admin API token (ftpctl token create)');
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    fail(2, `--api ${url}: not a URL`);
  }
  const root = base.href.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return {
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${root}/api/v1${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        fail(1, `${root}: ${((err as Error).cause as Error)?.message ?? (err as Error).message}`);
      }
      const text = await res.text();
      const payload = text ? (JSON.parse(text) as { message?: string }) : undefined;
      if (!res.ok) fail(1, `${method} ${path}: ${res.status} ${payload?.message ?? res.statusText}`);
      return payload as T;
    },
  };
}

const enc = encodeURIComponent;

interface UserDoc {
  name: string;
  home: string;
  groups: string[];
  disabled: boolean;
  public_keys: string[];
  auth_methods?: string[];
  limits?: Partial<Record<LimitKey, number>>;
  effective_limits?: Record<LimitKey, number>;
  usage?: { bytes: number; files: number; today_upload_bytes: number; today_download_bytes: number } | null;
}
interface SessionDoc {
  id: string;
  user?: string;
  protocol?: string;
  client: string;
  replica: string;
  started: string;
  command?: string;
  transfer?: { direction: string; path: string; bytes?: number };
}

export async function apiCommand(url: string, argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...USER_OPTIONS, ...LIMIT_OPTIONS, user: { type: 'string' } },
    });
  } catch (err) {
    fail(2, (err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, sub, arg, third, ...extra] = positionals;
  if (extra.length > 0) fail(2, `unexpected argument "${extra[0]}"`);
  const need = (what: string, value: string | undefined) => value ?? fail(2, `${command} ${sub} needs ${what}`);
  const api = apiClient(url);

  if (command === 'user') {
    switch (sub) {
      case 'add': {
        const name = need('NAME', arg);
        if (!values['password-stdin']) fail(2, 'user add needs --password-stdin');
        const body = { name, password: await hashPassword(await readPasswordLine()), home: values.home ?? name, permissions: parsePerms(values.perm), groups: values.group ?? [] };
        await api.call('POST', '/users', body);
        console.log(`added user ${name} (home ${body.home})`);
        return;
      }
      case 'remove':
        await api.call('DELETE', `/users/${enc(need('NAME', arg))}`);
        console.log(`removed user ${arg} (its sessions are ended)`);
        return;
      case 'passwd': {
        const name = need('NAME', arg);
        if (!values['password-stdin']) fail(2, 'user passwd needs --password-stdin');
        await api.call('PUT', `/users/${enc(name)}/password`, { password: await hashPassword(await readPasswordLine()) });
        console.log(`changed password of ${name}`);
        return;
      }
      case 'add-key': {
        const name = need('NAME', arg);
        const keys = parseKeyLines(await readStdinText());
        await api.call('POST', `/users/${enc(name)}/keys`, { public_keys: keys.map((key) => formatAuthorizedKey(key)) });
        for (const key of keys) console.log(`added key ${key.fingerprint} to ${name}`);
        return;
      }
      case 'remove-key': {
        const name = need('NAME', arg);
        const fingerprint = need('the key fingerprint (SHA256:…)', third);
        await api.call('DELETE', `/users/${enc(name)}/keys/${enc(fingerprint.startsWith('SHA256:') ? fingerprint : `SHA256:${fingerprint}`)}`);
        console.log(`removed key ${fingerprint} from ${name}`);
        return;
      }
      case 'disable':
      case 'enable': {
        const name = need('NAME', arg);
        await api.call('PATCH', `/users/${enc(name)}`, { disabled: sub === 'disable' });
        console.log(sub === 'disable' ? `disabled ${name}: refused everywhere, its sessions are ended` : `enabled ${name}`);
        return;
      }
      case 'set': {
        const name = need('NAME', arg);
        const changes = limitChanges(values);
        if (changes.size === 0) fail(2, 'user set needs at least one limit (--quota-bytes N, …)');
        // PATCH replaces the whole limits document: read it, change the limits given, write it back.
        const user = await api.call<UserDoc>('GET', `/users/${enc(name)}`);
        const own = Object.fromEntries(
          (Object.entries(LIMIT_FIELDS) as [LimitKey, string][]).filter(([key]) => user.limits?.[key] !== undefined).map(([key, field]) => [field, user.limits![key]]),
        );
        const next = applyLimitChanges(own, changes);
        const limits = next
          ? Object.fromEntries((Object.entries(LIMIT_FIELDS) as [LimitKey, keyof typeof next][]).filter(([, field]) => next[field] !== undefined).map(([key, field]) => [key, next[field]]))
          : null;
        await api.call('PATCH', `/users/${enc(name)}`, { limits });
        console.log(`limits of ${name}: ${describeOwnLimits(next)}`);
        return;
      }
      case 'show': {
        const name = need('NAME', arg);
        const user = await api.call<UserDoc>('GET', `/users/${enc(name)}`);
        const shown = (value: number | undefined) => (value === undefined ? '-' : value === 0 ? 'none' : String(value));
        console.log(`${name}${user.disabled ? ' (disabled)' : ''}: home ${user.home}${user.groups.length > 0 ? `, groups ${user.groups.join(', ')}` : ''}`);
        printTable(
          ['LIMIT', 'OWN', 'IN FORCE'],
          (Object.keys(LIMIT_FIELDS) as LimitKey[]).map((key) => [key, shown(user.limits?.[key]), shown(user.effective_limits?.[key])]),
        );
        if (user.usage === undefined) console.log('usage: not shown: the cluster state did not answer');
        else if (user.usage === null) console.log(`usage: not scanned yet (ftpctl --api URL quota scan ${name})`);
        else {
          console.log(`usage: ${user.usage.bytes} bytes in ${user.usage.files} files`);
          console.log(`today (UTC): ${user.usage.today_upload_bytes} bytes uploaded, ${user.usage.today_download_bytes} bytes downloaded`);
        }
        return;
      }
      case 'list': {
        const { items } = await api.call<{ items: UserDoc[] }>('GET', '/users');
        printTable(
          ['NAME', 'HOME', 'GROUPS', 'AUTH'],
          items.map((u) => [u.name + (u.disabled ? ' (disabled)' : ''), u.home, u.groups.join(','), u.auth_methods?.join('+') ?? 'password or publickey']),
        );
        for (const u of items) for (const line of u.public_keys) console.log(`  ${u.name}: key ${parseAuthorizedKey(line).fingerprint} ${line.split(' ')[0]}`);
        return;
      }
    }
  } else if (command === 'sessions') {
    switch (sub) {
      case 'list': {
        const query = values.user ? `?user=${enc(values.user)}` : '';
        const { items } = await api.call<{ items: SessionDoc[] }>('GET', `/sessions${query}`);
        printTable(
          ['ID', 'USER', 'PROTO', 'CLIENT', 'REPLICA', 'STARTED', 'COMMAND', 'TRANSFER'],
          items.map((s) => [
            s.id,
            s.user ?? '-',
            s.protocol ?? '-',
            s.client,
            s.replica,
            s.started,
            s.command ?? '-',
            s.transfer ? `${s.transfer.direction} ${s.transfer.path} ${s.transfer.bytes ?? '?'} bytes` : '-',
          ]),
        );
        return;
      }
      case 'kill': {
        if (values.user) {
          if (arg) fail(2, 'sessions kill takes an ID or --user U, not both');
          const result = await api.call<{ sessions: number }>('DELETE', `/users/${enc(values.user)}/sessions`);
          console.log(`asked every replica to end the sessions of ${values.user} (${result.sessions} listed)`);
          return;
        }
        const id = need('the session ID (sessions list) or --user U', arg);
        const result = await api.call<{ replica: string }>('DELETE', `/sessions/${enc(id)}`);
        console.log(`asked ${result.replica} to end session ${id}`);
        return;
      }
    }
  } else if (command === 'quota' && sub === 'scan') {
    if (third) fail(2, `unexpected argument "${third}"`);
    const names = arg ? [arg] : (await api.call<{ items: UserDoc[] }>('GET', '/users')).items.map((u) => u.name);
    const rows: string[][] = [];
    for (const name of names) {
      const usage = await api.call<{ bytes: number; files: number }>('POST', `/users/${enc(name)}/quota-scan`);
      rows.push([name, String(usage.bytes), String(usage.files)]);
    }
    printTable(['USER', 'BYTES', 'FILES'], rows);
    return;
  } else if (command === 'bans') {
    switch (sub) {
      case 'list': {
        const { items } = await api.call<{ items: { address: string; until: string }[] }>('GET', '/bans');
        printTable(['ADDRESS', 'UNTIL'], items.map((b) => [b.address, b.until]));
        return;
      }
      case 'lift': {
        const address = need('the ADDRESS', arg);
        await api.call('DELETE', `/bans/${enc(address)}`);
        console.log(`lifted the ban of ${address}`);
        return;
      }
    }
  }
  fail(2, `not a command for --api: ${[command, sub].filter(Boolean).join(' ') || '(none)'}\n${API_USAGE}`);
}
