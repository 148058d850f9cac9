import net from 'node:net';

/**
 * A TCP relay in front of a real server (PostgreSQL, Redis), for outage tests: `cut()` closes the listener and
 * destroys every connection (the client sees the server vanish: refused connections, reset sockets), `reopen()`
 * listens again on the same port. `port` is what the client under test dials on 127.0.0.1.
 */
export async function startTcpProxy(targetHost: string, targetPort: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    /** Resolves once the listener is closed; safe to call again (also when already cut). */
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
    reopen: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
  };
}
