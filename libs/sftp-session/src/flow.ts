import { FLOW } from './limits';
import type { Session } from './state';

/** True while the session holds more than its bounds allow: then the SSH window stays closed (see ssh2Hooks). */
export function overBounds(s: Session): boolean {
  return (
    s.writeBacklog > FLOW.maxWriteBacklog || s.inflight > FLOW.maxInflight || s.hooks.outboundBacklog() > FLOW.maxOutboundBacklog
  );
}

/** Re-open the window if a pause closed it and the session is back within its bounds. */
export function maybeResume(s: Session): void {
  if (!s.closed && !overBounds(s)) s.hooks.resume();
}

/** Account WRITE payload entering (+) or leaving (-) the backlog. */
export function writeBacklog(s: Session, delta: number): void {
  s.writeBacklog += delta;
  if (delta < 0) maybeResume(s);
}
