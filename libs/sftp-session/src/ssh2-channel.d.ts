// ssh2's channel helpers (lib/Channel.js, CommonJS, untyped): the one function that re-opens a channel's window.
declare module 'ssh2/lib/Channel.js' {
  const channel: {
    /** Tops the channel's incoming window back up to MAX_WINDOW and tells the peer (CHANNEL_WINDOW_ADJUST). */
    windowAdjust(channel: unknown): void;
    /** ssh2 re-opens a window once it has shrunk to this (half of MAX_WINDOW, 1 MiB). */
    WINDOW_THRESHOLD: number;
    MAX_WINDOW: number;
  };
  export default channel;
}
