import { BlockList, isIP } from 'node:net';

type Family = 'ipv4' | 'ipv6';

/** Strips an IPv6 zone id and unwraps IPv4-mapped IPv6 (`::ffff:1.2.3.4`), as dual-stack sockets report IPv4 clients that way. */
function normalizeAddress(address: string): { address: string; family: Family } | undefined {
  let a = address.trim();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1];
  const version = isIP(a);
  if (version === 4) return { address: a, family: 'ipv4' };
  if (version === 6) return { address: a, family: 'ipv6' };
  return undefined;
}

interface Rule {
  address: string;
  family: Family;
  prefix?: number;
}

function parseRule(entry: string): Rule | undefined {
  const [addr, prefixText, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  const normalized = normalizeAddress(addr);
  if (!normalized) return undefined;
  if (prefixText === undefined) return normalized;
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  let prefix = Number(prefixText);
  // A CIDR written on a mapped address (::ffff:10.0.0.0/104) becomes the IPv4 prefix it stands for.
  if (normalized.family === 'ipv4' && addr.includes(':')) prefix -= 96;
  const max = normalized.family === 'ipv4' ? 32 : 128;
  if (prefix < 0 || prefix > max) return undefined;
  return { ...normalized, prefix };
}

/** Error text for an invalid allow-list entry, or undefined when it is a valid address or CIDR. */
export function checkAddressRule(entry: string): string | undefined {
  return parseRule(entry) ? undefined : `"${entry}" is not an IP address or CIDR`;
}

/** Whether a client may connect under an allow-list of addresses/CIDRs; an empty list allows everyone. */
export function addressAllowed(clientAddress: string, allowFrom: string[]): boolean {
  if (allowFrom.length === 0) return true;
  const client = normalizeAddress(clientAddress);
  if (!client) return false;
  const list = new BlockList();
  for (const entry of allowFrom) {
    const rule = parseRule(entry);
    if (!rule) continue; // validated when the users file is loaded; ignore rather than throw here
    if (rule.prefix === undefined) list.addAddress(rule.address, rule.family);
    else list.addSubnet(rule.address, rule.prefix, rule.family);
  }
  return list.check(client.address, client.family);
}
