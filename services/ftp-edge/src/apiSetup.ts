import type { BanPolicy, ClusterState, SessionKick } from '@ftp/cluster-state';
import type { FtpConfig } from '@ftp/config';
import { createFileTokenStore, hasAdminTokens, hasAuditTrail, type UserStore } from '@ftp/identity';
import type { Storage } from '@ftp/storage';
import type { Logger } from '@ftp/telemetry';
import type { ApiContext } from './api/context';
import { startApiServer, type ApiServer } from './api/server';

/**
 * The admin REST API on FTP_API_HOST:FTP_API_PORT. Tokens: PostgreSQL's table when users live there (the store keeps
 * them in memory like users), else the tokens file FTP_API_TOKENS_FILE (beside the users file by default).
 */
export async function startAdminApi(
  config: FtpConfig,
  parts: { store: UserStore; cluster: ClusterState; storageAt(root: string): Storage; endLocal(kick: SessionKick): number; banPolicy: BanPolicy },
  log: Logger,
): Promise<ApiServer> {
  const apiLog = log.child({ component: 'admin-api' });
  const tokens = hasAdminTokens(parts.store)
    ? parts.store
    : createFileTokenStore({
        file: config.apiTokensFile,
        onReloadError: (err) => apiLog.error({ err: err.message, file: config.apiTokensFile }, 'admin API tokens file not reloaded: keeping the tokens read before'),
      });
  const ctx: ApiContext = {
    store: parts.store,
    tokens,
    audit: hasAuditTrail(parts.store) ? parts.store : undefined,
    cluster: parts.cluster,
    dataRoot: config.dataDir,
    storageAt: parts.storageAt,
    defaultLimits: config.defaultLimits,
    replicaId: config.replicaId,
    endLocal: parts.endLocal,
    banPolicy: parts.banPolicy,
    log: apiLog,
  };
  const api = await startApiServer({ host: config.apiHost, port: config.apiPort, ctx });
  apiLog.info(
    { host: config.apiHost, port: api.port, tokens: hasAdminTokens(parts.store) ? 'postgres' : config.apiTokensFile },
    'admin API listening (/api/v1, OpenAPI at /api/v1/openapi.json)',
  );
  return api;
}
