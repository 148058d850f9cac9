import { authHandlers } from './handleAuth';
import { dirHandlers } from './handleDirs';
import { fileHandlers } from './handleFiles';
import { helpFor, miscHandlers } from './handleMisc';
import { spaceHandlers } from './handleSpace';
import type { Handler } from './state';
import { transferHandlers } from './handleTransfer';
import { tlsHandlers } from './handleTls';

/** Canonical verb → handler. Verbs in the protocol's command table without a handler here answer 502. */
export const HANDLERS: Record<string, Handler> = {
  ...authHandlers,
  ...dirHandlers,
  ...fileHandlers,
  ...spaceHandlers,
  ...transferHandlers,
  ...miscHandlers,
  ...tlsHandlers,
  HELP: helpFor(() => HANDLERS),
};
