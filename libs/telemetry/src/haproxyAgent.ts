import { createServer, type Server } from 'node:net';

/**
 * HAProxy's agent check (`agent-check agent-port …`): each connection gets one line and is closed. `ready` puts the
 * server back in rotation; `drain` stops new connections to it while established ones go on (a draining replica
 * finishes its transfers). Whether the replica answers at all is the HTTP health check's business (/healthz): a
 * replica that is not ready still answers, one that is frozen does not, and only the latter has its sessions cut.
 */
export async function startHaproxyAgent(options: { host: string; port: number; ready: () => boolean }): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => {}); // HAProxy closing first is no concern of ours
    socket.end(options.ready() ? 'ready\n' : 'drain\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
