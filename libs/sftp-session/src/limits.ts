/**
 * Sizes and bounds of one SFTP session. The first three are what OpenSSH's sftp-server advertises in its
 * limits@openssh.com reply (SFTP_MAX_MSG_LENGTH and SFTP_MAX_MSG_LENGTH - 1024); OpenSSH's client then sends 255 KiB
 * READ/WRITE requests instead of 32 KiB ones.
 */
export const LIMITS = {
  /** Longest SFTP packet accepted (ssh2 refuses longer ones itself: its _maxInPktLen is the same 256 KiB). */
  maxPacketLength: 256 * 1024,
  /** Longest DATA reply; longer READ requests are clamped to it (a short read, which clients handle). */
  maxReadLength: 255 * 1024,
  /** Longest WRITE payload a client should send (the packet limit leaves room for the header). */
  maxWriteLength: 255 * 1024,
  /** Open file and directory handles per session; OPEN/OPENDIR beyond it answer FAILURE. */
  maxOpenHandles: 256,
  /** Entries in one READDIR reply (OpenSSH's sftp-server sends up to 100). */
  readdirBatch: 100,
} as const;

/**
 * Flow control: while any of these is exceeded the session stops re-opening the SSH channel window, so a client
 * that sends faster than the disk writes (or than it reads our replies) is held back by SSH itself; what it may still
 * send is bounded by the window (2 MiB in ssh2).
 */
export const FLOW = {
  /** WRITE payload received and not yet written to the file (OpenSSH keeps 64 × 255 KiB ≈ 16 MiB in flight). */
  maxWriteBacklog: 8 * 1024 * 1024,
  /** Reply bytes queued in ssh2 because the client's window is full; READ and READDIR wait while it is over this. */
  maxOutboundBacklog: 4 * 1024 * 1024,
  /** Requests received and not yet answered. */
  maxInflight: 1024,
  /** Past this many unanswered requests a new one is answered FAILURE at once instead of being queued. */
  refuseInflight: 8192,
  /** How often a paused session checks whether it may go on (ssh2 has no drain event for SFTP channels). */
  pollMs: 5,
} as const;

/** Name and data of each extension in our VERSION reply, as OpenSSH's sftp-server spells them. */
export function advertisedExtensions(options: { diskSpace: boolean }): Array<[string, string]> {
  const list: Array<[string, string]> = [
    ['posix-rename@openssh.com', '1'],
    ['fsync@openssh.com', '1'],
    ['limits@openssh.com', '1'],
    ['expand-path@openssh.com', '1'],
  ];
  if (options.diskSpace) list.push(['statvfs@openssh.com', '2'], ['fstatvfs@openssh.com', '2']);
  return list;
}
