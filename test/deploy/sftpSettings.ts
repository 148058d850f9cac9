import type { FtpConfig } from '@ftp/config';

/**
 * The SFTP listener's settings as an edge would read them from a deploy file's environment: FTP_SFTP_PORT (default
 * 2222, 0 = off), FTP_SFTP_HOST (default FTP_HOST) and FTP_SFTP_HOST_KEYS (comma-separated private key files; empty
 * = keys made once in FTP_TLS_DIR as ssh_host_ed25519_key and ssh_host_rsa_key). Taken from the edge's own
 * configuration where it has them (sftpPort, sftpHost, sftpHostKeys), otherwise from the same variables with the
 * documented defaults, so the deploy checks follow the program once it parses them itself.
 */
export interface SftpSettings {
  port: number;
  host: string;
  hostKeys: string[];
  /** Where the edge keeps the keys it makes when hostKeys is empty. */
  generatedKeys: string[];
}

export const SFTP_DEFAULT_PORT = 2222;
export const GENERATED_HOST_KEYS = ['ssh_host_ed25519_key', 'ssh_host_rsa_key'];

const list = (value: unknown): string[] =>
  (Array.isArray(value) ? value.map(String) : String(value ?? '').split(',')).map((entry) => entry.trim()).filter(Boolean);

export function sftpSettings(config: FtpConfig, env: Record<string, string | undefined>): SftpSettings {
  const own = config as unknown as { sftpPort?: unknown; sftpHost?: unknown; sftpHostKeys?: unknown };
  const rawPort = env.FTP_SFTP_PORT?.trim();
  const port = typeof own.sftpPort === 'number' ? own.sftpPort : rawPort ? Number(rawPort) : SFTP_DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`FTP_SFTP_PORT: expected a port number, got "${rawPort}"`);
  const host = typeof own.sftpHost === 'string' && own.sftpHost !== '' ? own.sftpHost : env.FTP_SFTP_HOST?.trim() || config.host;
  const hostKeys = own.sftpHostKeys !== undefined ? list(own.sftpHostKeys) : list(env.FTP_SFTP_HOST_KEYS);
  const dir = config.tlsDir.replace(/\/+$/, '');
  return { port, host, hostKeys, generatedKeys: GENERATED_HOST_KEYS.map((name) => `${dir}/${name}`) };
}
