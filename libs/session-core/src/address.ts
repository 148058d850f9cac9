/** An address as limits, bans and logs compare it: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as plain IPv4, IPv6 lower case. */
export function normalizeAddress(addr: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(addr);
  return mapped ? mapped[1] : addr.toLowerCase();
}
