import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { CommandLineDecoder, type DecodedLine, formatReply, lookupCommand, normalizeAddress, parseCommand } from '@ftp/protocol';
import { bindTraceContext, replyClass, startChildSpan, tracer } from '@ftp/telemetry';
import { admitSession } from '@ftp/session-core';
import { failureLevel, FtpError, toFtpError } from './errors';
import { disposeData } from './dataChannel';
import { HANDLERS } from './handlers';
import { startTls } from './tls';
import type { Peer } from '@ftp/session-core';
import type { SessionDeps } from './types';
import { freshSessionState, withContext, type Session } from './state';

/** Commands clients send between REST and the transfer it applies to. */
const PREPARES_TRANSFER = new Set(['REST', 'ALLO', 'PASV', 'EPSV', 'PORT', 'EPRT', 'TYPE']);
/** Commands allowed to be queued behind a running transfer; more means a broken or hostile client. */
const MAX_QUEUED_COMMANDS = 64;
/** After our FIN, how long the client gets to close its side before the socket is destroyed. */
const END_GRACE_MS = 5000;


/**
 * Serves one control connection from greeting to close. Never throws: every failure becomes a reply or a log line.
 * Traced as one `ftp session` span (a root), with a child span per command; all of them carry `ftp.session.id`.
 */
export async function runSession(socket: Socket, deps: SessionDeps, options: { implicitTls?: boolean; peer?: Peer } = {}): Promise<void> {
  const id = randomUUID();
  const peerAddress = normalizeAddress(socket.remoteAddress ?? '');
  const span = tracer.startSpan('ftp session', {
    kind: SpanKind.SERVER,
    root: true,
    attributes: {
      'ftp.session.id': id,
      'client.address': options.peer?.address ?? peerAddress,
      'client.port': options.peer?.port ?? socket.remotePort ?? 0,
      'server.address': options.peer?.serverAddress ?? normalizeAddress(socket.localAddress ?? ''),
      'server.port': options.peer?.serverPort ?? socket.localPort ?? 0,
      'network.transport': 'tcp',
      'ftp.tls': Boolean(options.implicitTls),
    },
  });
  // Behind a PROXY-protocol balancer the socket's peer is the balancer, not the client.
  if (options.peer && options.peer.address !== peerAddress && span.isRecording()) span.setAttributes({ 'network.peer.address': peerAddress, 'network.peer.port': socket.remotePort ?? 0 });
  const traceContext = trace.setSpan(ROOT_CONTEXT, span);
  try {
    await context.with(traceContext, () => serveSession(socket, deps, options, id, span, traceContext));
  } finally {
    span.end();
  }
}

async function serveSession(
  socket: Socket,
  deps: SessionDeps,
  options: { implicitTls?: boolean; peer?: Peer },
  id: string,
  span: Span,
  traceContext: Context,
): Promise<void> {
  const { settings, cluster, metrics } = deps;
  const clientAddress = options.peer?.address ?? normalizeAddress(socket.remoteAddress ?? '');
  const log = deps.log.child({ session: id, client: clientAddress });
  socket.setNoDelay(true);

  const session: Session = {
    id,
    deps,
    log,
    span,
    traceContext,
    currentContext: traceContext,
    socket,
    clientAddress,
    startedAt: Date.now(),
    bytesIn: 0,
    bytesOut: 0,
    localAddress: options.peer?.serverAddress ?? normalizeAddress(socket.localAddress ?? ''),
    get protocol() {
      return session.secure || session.protection === 'P' ? 'ftps' : 'ftp';
    },
    progress() {
      const transfer = session.transfer;
      return {
        protocol: session.protocol,
        command: session.lastCommand,
        transfer: transfer && {
          direction: transfer.direction === 'upload' ? 'upload' : 'download',
          path: transfer.path,
          startedAt: transfer.startedAt,
          bytes: transfer.bytes(),
        },
        bytesIn: session.bytesIn,
        bytesOut: session.bytesOut,
      };
    },
    ...freshSessionState(),
    closed: false,
    secure: Boolean(options.implicitTls),
    pbszDone: Boolean(options.implicitTls),
    // Implicit FTPS protects data connections from the start, as clients of port 990 expect.
    protection: options.implicitTls ? 'P' : 'C',
    reply(code, text) {
      if (session.closed || session.socket.destroyed) return;
      lastReply = code;
      session.socket.write(formatReply(code, text));
    },
    end() {
      if (session.closed) return; // called again for every chunk a client keeps sending after a 421
      session.closed = true;
      const current = session.socket;
      current.end();
      // A client that never reads, or never closes its side, must not keep the session and its slot alive.
      const timer = setTimeout(() => current.destroy(), END_GRACE_MS);
      current.once('close', () => clearTimeout(timer));
    },
    startLoginGrace() {
      clearTimeout(graceTimer);
      // From connect to a successful PASS, whatever the client sends meanwhile (a trickle of NOOPs must not hold a slot).
      graceTimer = setTimeout(() => {
        if (session.user || session.closed) return;
        log.info({ seconds: settings.loginGraceTime }, 'login grace time over: closing');
        session.reply(421, 'Login timeout, closing control connection');
        session.end();
      }, settings.loginGraceTime * 1000);
    },
    upgradeControl: async () => {
      const raw = session.socket;
      // Same tick as the 234 reply: nothing read from now on may be taken as a plaintext command (STARTTLS injection).
      raw.removeListener('data', onData);
      raw.removeListener('end', onEnd);
      queue.length = 0;
      decoder = new CommandLineDecoder(8192);
      try {
        session.socket = await startTls(raw, deps.tls!, log);
        session.secure = true;
        span.setAttribute('ftp.tls', true);
        listen(session.socket);
        log.info({ protocol: (session.socket as TLSSocket).getProtocol() }, 'control connection upgraded to TLS');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'TLS handshake on the control connection failed: closing');
        session.closed = true;
        raw.destroy();
      }
    },
  };
  let lastReply = 0;
  let registered = false;
  let graceTimer: NodeJS.Timeout | undefined;
  bindTraceContext(log, () => session.currentContext);

  const finished = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {}); // logged by listen() once the session runs

  const admission = await admitSession(session, deps, session.startedAt);
  if (!admission.ok) {
    span.setAttribute('ftp.session.refused', admission.reason);
    if (admission.reason === 'unavailable') span.setStatus({ code: SpanStatusCode.ERROR, message: 'cluster state unavailable' });
    session.reply(421, admission.message);
    return endAndWait(session, finished);
  }
  registered = true;

  deps.live.add(session);
  // Labelled once, by how the session started: an explicit AUTH TLS later does not move it between series.
  const gaugeLabels = { protocol: session.protocol };
  metrics.sessionsActive.inc(gaugeLabels);
  log.debug('session opened');
  session.reply(220, settings.banner);

  let decoder = new CommandLineDecoder(8192);
  const queue: DecodedLine[] = [];
  let working = false;
  let idleTimer: NodeJS.Timeout | undefined;

  const armIdleTimer = () => {
    clearTimeout(idleTimer);
    // A command that finishes after the connection closed (an aborted transfer) must not start a timer that outlives the session.
    if (session.closed) return;
    idleTimer = setTimeout(() => {
      if (session.transfer) return armIdleTimer(); // a long transfer is not idleness
      log.info('idle timeout: closing control connection');
      session.reply(421, 'Idle timeout, closing control connection');
      session.end();
    }, settings.idleTimeout * 1000);
  };

  const execute = async (line: DecodedLine) => {
    if ('error' in line) {
      session.reply(line.error === 'too-long' ? 500 : 501, line.error === 'too-long' ? 'Command line too long' : 'Command is not valid UTF-8');
      return;
    }
    const started = process.hrtime.bigint();
    const { verb, arg } = parseCommand(line.text);
    const spec = lookupCommand(verb);
    const canonical = spec ? (spec.alias ?? spec.verb) : 'UNKNOWN';
    // Named by the verb of the command table, never the argument (PASS carries the password, paths are data).
    const commandSpan = startChildSpan(`ftp ${canonical}`, { attributes: { 'ftp.session.id': id } }, traceContext);
    const commandContext = trace.setSpan(traceContext, commandSpan);
    session.currentContext = commandContext;
    lastReply = 0;
    try {
      if (!spec) throw new FtpError(500, `Unknown command "${verb.slice(0, 32)}"`);
      const handler = HANDLERS[canonical];
      if (!handler) throw new FtpError(502, `${canonical} not implemented`);
      if (spec.needsLogin && !session.user) throw new FtpError(530, 'Please log in with USER and PASS first');
      if (spec.arg === 'required' && arg === '') throw new FtpError(501, `${canonical} needs an argument`);
      if (spec.arg === 'none' && arg !== '') throw new FtpError(501, `${canonical} takes no argument`);
      // The record learns the command at the next heartbeat: a Redis round trip per command cost more than the command.
      session.lastCommand = canonical;
      await context.with(commandContext, () => handler(session, arg));
    } catch (err) {
      const ftpError = toFtpError(err);
      log[failureLevel(err)]({ err, verb: canonical, reply: ftpError.code }, 'command failed');
      session.reply(ftpError.code, ftpError.message);
    }
    session.currentContext = traceContext;
    // REST and ALLO apply only to the transfer command that follows them.
    if (!PREPARES_TRANSFER.has(canonical)) {
      session.restOffset = 0;
      session.allocated = undefined;
    }
    // 'none': the connection closed before the command could answer.
    metrics.commandsTotal.inc({ verb: canonical, class: lastReply ? replyClass(lastReply) : 'none' });
    metrics.commandSeconds.observe({ verb: canonical }, Number(process.hrtime.bigint() - started) / 1e9);
    if (lastReply > 0) commandSpan.setAttribute('ftp.reply.code', lastReply);
    // 4xx and 5xx are failures the operator wants to find (refused logins, permissions, broken transfers).
    if (lastReply >= 400) commandSpan.setStatus({ code: SpanStatusCode.ERROR, message: `reply ${lastReply}` });
    commandSpan.end();
  };

  const pump = async () => {
    if (working) return;
    working = true;
    while (queue.length > 0 && !session.closed) {
      await execute(queue.shift()!);
      armIdleTimer();
      // A client that does not read its replies must not make us buffer them without bound: wait until it does.
      // Meanwhile its commands pile up to MAX_QUEUED_COMMANDS (421), or the idle timeout ends it.
      if (session.socket.writableNeedDrain) await drained(session.socket);
    }
    working = false;
  };

  function onData(chunk: Buffer) {
    if (session.closed) return; // after QUIT or a 421, what the client still sends is not read as commands
    armIdleTimer();
    for (const decoded of decoder.push(chunk)) {
      if ('error' in decoded) log.warn({ problem: decoded.error }, 'bad command line');
      const verb = 'text' in decoded ? parseCommand(decoded.text).verb : '';
      if (session.transfer && (verb === 'ABOR' || verb === 'STAT')) {
        // Out of band: these act on the transfer the queue is waiting for.
        if (verb === 'ABOR') {
          log.info({ path: session.transfer.path }, 'transfer aborted by client');
          session.transfer.abort();
        } else {
          session.reply(213, `Transfer in progress: ${session.transfer.direction} ${session.transfer.path}`);
        }
        continue;
      }
      if (queue.length >= MAX_QUEUED_COMMANDS) {
        log.warn('too many pipelined commands: closing');
        session.reply(421, 'Too many commands queued, closing control connection');
        session.end();
        return;
      }
      queue.push(decoded);
    }
    void pump();
  }
  function onEnd() {
    session.end(); // before the abort: a vanished client gets no 426/226
    session.transfer?.abort();
  }
  function listen(current: Socket) {
    current.on('data', onData);
    current.on('end', onEnd);
    current.on('error', (err) => log.debug({ err: err.message }, 'control connection error'));
  }
  listen(socket);
  armIdleTimer();
  session.startLoginGrace();

  await finished;
  session.closed = true;
  clearTimeout(idleTimer);
  clearTimeout(graceTimer);
  session.transfer?.abort();
  disposeData(session);
  metrics.sessionsActive.dec(gaugeLabels);
  deps.live.delete(session);
  if (registered) await withContext(session, () => cluster.sessions.close(id)).catch(() => metrics.clusterStateErrors.inc());
  span.setAttributes({ 'ftp.session.bytes_in': session.bytesIn, 'ftp.session.bytes_out': session.bytesOut });
  log.debug('session closed');
}


async function endAndWait(session: Session, finished: Promise<void>) {
  session.end();
  await finished;
}

/** Resolves once `socket` takes output again, or is closed; leaves no listener behind. */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
