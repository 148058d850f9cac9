export { serveSftp } from './session';
export { LIMITS } from './limits';
export type { SftpContext, SftpSession, SftpTransfer, SftpTransferProgress, SftpLogger } from './types';
export { hostKeyEntries, runSshConnection, SSH_ALGORITHMS, type SshDeps, type SshPeer, type SshSession, type SshSettings } from './frontDoor';
export { loadHostKeys, type HostKey } from './hostKeys';
