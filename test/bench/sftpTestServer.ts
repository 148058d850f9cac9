/**
 * Stand-in for "ours" while the edge has no SFTP listener: the SFTP request layer's test harness
 * (libs/sftp-session/src/testServer.ts: an ssh2 Server serving serveSftp over a local storage) as its own process,
 * so that the bench measures its CPU like any server's. Prints one JSON line ({port, root, keyFile, user}) when it
 * listens; stops (and removes its temp folder) on SIGTERM/SIGINT.
 *   node --import tsx test/bench/sftpTestServer.ts
 */
import { startTestServer } from '../../libs/sftp-session/src/testServer';

const server = await startTestServer();
// The harness keeps every log line and transfer in memory for its tests; the bench does not read them.
setInterval(() => {
  server.logs.length = 0;
  server.transfers.length = 0;
}, 1000).unref();
process.stdout.write(`${JSON.stringify({ port: server.port, root: server.root, keyFile: server.keyFile, user: server.userName })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => process.exit(0), 3000);
  void server.stop().finally(() => {
    clearTimeout(timer);
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
