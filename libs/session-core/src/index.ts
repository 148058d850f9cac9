export type { CoreDeps, CoreSession, CoreSettings, Protocol, UploadEvents } from './types';
export { admitSession, REFUSAL_MESSAGES, type AdmissionResult, type RefusalReason } from './admission';
export { attemptLogin, completeLogin, recordLoginFailure, refuseIfBanned, verifyCredential, type Credential, type LoginFailureReason, type LoginOptions, type LoginResult } from './login';
export { AccessDenied, audit, requirePermission, requirePermissionWithin } from './access';
export { abortedEvent, completedEvent, uploadContext, type UploadContext, type UploadHasher } from './uploads';
export { recordTransfer, type TransferRecord } from './transfers';
export { reportSession, startHeartbeat, type LiveSession } from './heartbeat';
