import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { ClusterState } from '@ftp/cluster-state';
import { clientBytesRead, encodeProxyV2 } from '@ftp/session-core';
import { context, ROOT_CONTEXT, SpanKind, trace, type Span } from '@opentelemetry/api';
import { tracer, type EdgeMetrics, type Logger } from '@ftp/telemetry';
import type { Peer } from '@ftp/session-core';
import { writeFlushed, type ZeroCopy } from '@ftp/zero-copy';
import { relayNatively, resetOrDestroy, type RelayedBytes } from './zeroCopyIo';

/** PROXY v2 TLV (from the range the spec leaves to applications) carrying the session id of the lease. */
export const RELAY_SESSION_TLV = 0xe0;

/**
 * PROXY v2 TLV carrying the lease's relay token: a random secret made with the lease, stored only in the cluster state
 * and in the owner's memory, never logged. It is what authenticates a relayed connection (the session id is in every
 * log line), so the relay port cannot be used to take over a session's data connection or forge a client address.
 */
export const RELAY_TOKEN_TLV = 0xe1;

/**
 * PROXY v2 TLV carrying the id of this relayed connection, under which the relaying replica records the client's clean
 * end (cluster.ports.markRelayEnded) before it passes the EOF on: the owner commits a relayed upload only when it
 * finds that record, since a relaying replica that dies ends its side with a FIN too.
 */
export const RELAY_END_TLV = 0xe2;

const RELAY_CONNECT_TIMEOUT_MS = 5000;

export interface RelayDeps {
  cluster: ClusterState;
  replicaId: string;
  metrics: EdgeMetrics;
  log: Logger;
  /** The zero-copy addon: the relay splices both ways off the event loop (streams without it). */
  zeroCopy?: ZeroCopy | null;
}

/**
 * Hands a data connection that reached this replica for another replica's lease over to the owner: a PROXY v2 header
 * with the real client, the session id and the lease's relay token, then the bytes untouched both ways (TLS
 * included), with backpressure: spliced natively where the zero-copy addon is loaded, else piped through Node.
 * Resolves false when no peer owns such a lease; the caller then refuses the connection.
 */
export async function relayToOwner(socket: Socket, port: number, peer: Peer, deps: RelayDeps): Promise<boolean> {
  // A root span on this replica (the owner's session trace lives elsewhere), found by its session id like the rest of
  // the session; it lasts as long as the relayed connection.
  const span = tracer.startSpan('ftp relay', {
    kind: SpanKind.SERVER,
    root: true,
    attributes: {
      'client.address': peer.address,
      'client.port': peer.port,
      'server.address': peer.serverAddress,
      'server.port': port,
      'network.transport': 'tcp',
    },
  });
  const relayed = await context.with(trace.setSpan(ROOT_CONTEXT, span), () => relay(socket, port, peer, deps, span));
  if (!relayed) {
    span.setAttribute('ftp.relay.result', 'refused');
    span.end();
  }
  return relayed;
}

async function relay(socket: Socket, port: number, peer: Peer, deps: RelayDeps, span: Span): Promise<boolean> {
  let lease;
  try {
    lease = await deps.cluster.ports.find(port, peer.address);
  } catch (err) {
    deps.metrics.clusterStateErrors.inc();
    deps.log.warn({ port, client: peer.address, err: (err as Error).message }, 'data connection not relayed: cluster state unavailable');
    return false;
  }
  if (!lease || lease.replicaId === deps.replicaId || !lease.relayAddress) return false;
  if (!lease.relayToken) {
    // Its owner runs a version without relay tokens (a rollout in progress): it would be refused anyway.
    deps.log.warn({ port, client: peer.address, owner: lease.replicaId }, 'data connection not relayed: the lease has no relay token');
    return false;
  }
  span.setAttributes({ 'ftp.session.id': lease.sessionId, 'ftp.relay.owner': lease.replicaId });
  const split = lease.relayAddress.lastIndexOf(':');
  const host = lease.relayAddress.slice(0, split).replace(/^\[|\]$/g, '');
  const relayPort = Number(lease.relayAddress.slice(split + 1));

  const upstream = connect({ host, port: relayPort, noDelay: true, allowHalfOpen: true });
  const connected = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => upstream.destroy(new Error('relay connect timed out')), RELAY_CONNECT_TIMEOUT_MS);
    upstream.once('connect', () => {
      clearTimeout(timer);
      resolve(true);
    });
    upstream.once('error', (err) => {
      clearTimeout(timer);
      deps.log.warn({ port, client: peer.address, owner: lease.replicaId, err: err.message }, 'data connection not relayed: owner unreachable');
      resolve(false);
    });
  });
  if (!connected || socket.destroyed) {
    upstream.destroy();
    if (connected) {
      span.setAttribute('ftp.relay.result', 'client-gone');
      span.end();
    }
    return connected; // a client gone meanwhile was relayed as far as it could be
  }
  const relayId = randomBytes(12).toString('base64url');
  const header = encodeProxyV2({
    source: { address: peer.address, port: peer.port },
    destination: { address: peer.serverAddress, port },
    tlvs: [
      [RELAY_SESSION_TLV, Buffer.from(lease.sessionId)],
      [RELAY_TOKEN_TLV, Buffer.from(lease.relayToken)],
      [RELAY_END_TLV, Buffer.from(relayId)],
    ],
  });
  // The client's EOF reaches the owner only once recorded as clean; if that fails, the owner gets a reset instead.
  const recordCleanEnd = () => deps.cluster.ports.markRelayEnded(relayId);
  deps.metrics.relayedConnections.inc({ side: 'sent' });
  const relayed = (io: 'splice' | 'stream') => {
    span.setAttribute('ftp.relay.io', io);
    deps.log.info({ port, client: peer.address, owner: lease.replicaId, io }, 'data connection relayed to the replica that owns its lease');
  };
  let native: Promise<RelayedBytes> | undefined;
  if (deps.zeroCopy) {
    // Native bytes must follow the header: it is handed to the kernel before the relay starts.
    await writeFlushed(upstream, [header]).catch(() => undefined);
    if (upstream.destroyed || socket.destroyed) {
      socket.destroy();
      upstream.destroy();
      span.setAttribute('ftp.relay.result', 'broken');
      span.end();
      return true;
    }
    native = relayNatively(deps.zeroCopy, socket, upstream, recordCleanEnd);
  } else {
    upstream.write(header);
  }
  if (native) {
    relayed('splice');
    void native.then(({ fromClient, toClient }) => {
      span.setAttributes({
        'ftp.relay.result': 'relayed',
        'ftp.relay.bytes_from_client': clientBytesRead(socket) + fromClient,
        'ftp.relay.bytes_to_client': socket.bytesWritten + toClient,
      });
      span.end();
    });
    return true;
  }
  relayed('stream');
  splice(socket, upstream, recordCleanEnd);
  let open = 2;
  const closed = () => {
    if (--open > 0) return;
    span.setAttributes({
      'ftp.relay.result': 'relayed',
      'ftp.relay.bytes_from_client': clientBytesRead(socket),
      'ftp.relay.bytes_to_client': socket.bytesWritten,
    });
    span.end();
  };
  socket.once('close', closed);
  upstream.once('close', closed);
  return true;
}

/** After one side closed, how long the other gets to flush what it still holds. */
const FLUSH_GRACE_MS = 10_000;

/**
 * Pipes the client and the owner into each other; each side's FIN is passed on, and either one failing ends both.
 * The client's FIN reaches the owner only after `beforeClientEnd` resolved (else the owner gets a reset).
 */
function splice(client: Socket, owner: Socket, beforeClientEnd: () => Promise<void>) {
  // Half-close must travel: an upload ends with the client's FIN while the owner's close_notify may still come back.
  client.allowHalfOpen = true;
  owner.allowHalfOpen = true;
  client.pipe(owner, { end: false });
  owner.pipe(client);
  let clientEnded: Promise<boolean> | undefined;
  client.once('end', () => {
    clientEnded = beforeClientEnd().then(() => true, () => false);
    // The half-close travels once recorded (the owner is waiting for it to finish the upload).
    void clientEnded.then((clean) => (clean ? owner.end() : resetOrDestroy(owner)));
  });
  for (const [one, other] of [
    [client, owner],
    [owner, client],
  ]) {
    // A failure travels as a failure: a reset passed on as a FIN would let the owner take a cut upload for a whole one.
    one.on('error', () => resetOrDestroy(other));
    one.on('close', (hadError) => {
      if (hadError) return resetOrDestroy(other);
      if (other.destroyed) return other.destroy();
      // Let the bytes already handed to `other` reach its peer, but not forever (a peer that stopped reading).
      const passEnd = () => {
        const timer = setTimeout(() => other.destroy(), FLUSH_GRACE_MS);
        other.end(() => {
          clearTimeout(timer);
          other.destroy();
        });
      };
      if (one !== client) return passEnd();
      // The client closed without its EOF (we destroyed it), or its clean end could not be recorded: a failure.
      if (!clientEnded) return resetOrDestroy(other);
      void clientEnded.then((clean) => (clean ? passEnd() : resetOrDestroy(other)));
    });
  }
}

/** How long the owner waits for the relaying peer's record of the client's end, and how often it looks. */
const RELAY_END_WAIT_MS = 3000;
const RELAY_END_POLL_MS = 20;

/**
 * At the EOF of a relayed upload, on the owner: whether the relaying peer recorded the client's clean end. Clear text:
 * recorded before the EOF was passed on, so the first look finds it. TLS: the EOF is the client's close_notify, and
 * its TCP end (which the peer records) follows within a round trip or two. Not recorded within RELAY_END_WAIT_MS, or
 * the cluster state unreachable: false, and the upload stays a resumable partial rather than a truncated file
 * published as whole.
 */
export async function relayEndedCleanly(session: { deps: { cluster: ClusterState }; log: Logger }, relayEnd: string): Promise<boolean> {
  const deadline = Date.now() + RELAY_END_WAIT_MS;
  try {
    for (;;) {
      if (await session.deps.cluster.ports.relayEnded(relayEnd)) return true;
      if (Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, RELAY_END_POLL_MS));
    }
    session.log.warn({ waitedMs: RELAY_END_WAIT_MS }, 'relayed upload ended without the relaying replica\'s record of a clean end (it failed): not published');
  } catch (err) {
    session.log.warn({ err: (err as Error).message }, 'relayed upload: its clean end cannot be checked (cluster state unavailable): not published');
  }
  return false;
}
