/** TYPE A line-ending conversion for the data channel (RFC 959 §3.1.1.1), as byte-level Transforms. */
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;

/** Outgoing data: every bare LF becomes CRLF; an existing CRLF is left alone, even when split across chunks. */
export function asciiToNetwork(): Transform {
  let prevCR = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (chunk.length === 0) return done();
      const startCR = prevCR;
      prevCR = chunk[chunk.length - 1] === CR;
      const isBare = (i: number): boolean => !(i === 0 ? startCR : chunk[i - 1] === CR);
      // Count first so the output is allocated once, or not at all when nothing changes.
      let bare = 0;
      for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) if (isBare(i)) bare++;
      if (bare === 0) return done(null, chunk);
      const out = Buffer.allocUnsafe(chunk.length + bare);
      let at = 0;
      let from = 0;
      for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
        if (!isBare(i)) continue;
        at += chunk.copy(out, at, from, i);
        out[at++] = CR;
        from = i; // the LF itself goes out with the next segment
      }
      chunk.copy(out, at, from);
      done(null, out);
    },
  });
}

/**
 * Incoming data: CRLF becomes LF; a CR not followed by LF is kept. A CR ending a chunk is held back
 * until the next chunk shows whether an LF follows, and released at the end if none does.
 */
export function asciiFromNetwork(): Transform {
  let heldCR = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (chunk.length === 0) return done();
      const releaseCR = heldCR && chunk[0] !== LF;
      const hadHeld = heldCR;
      heldCR = false;
      if (!hadHeld && chunk.indexOf(CR) < 0) return done(null, chunk);
      // Output is never longer than the input plus a released CR.
      const out = Buffer.allocUnsafe(chunk.length + 1);
      let at = 0;
      if (releaseCR) out[at++] = CR;
      let from = 0;
      for (let i = chunk.indexOf(CR); i >= 0; i = chunk.indexOf(CR, i + 1)) {
        if (i === chunk.length - 1) {
          heldCR = true;
          at += chunk.copy(out, at, from, i);
          from = chunk.length;
        } else if (chunk[i + 1] === LF) {
          at += chunk.copy(out, at, from, i);
          from = i + 1;
        }
      }
      at += chunk.copy(out, at, from);
      if (at === 0) return done();
      done(null, out.subarray(0, at));
    },
    flush(done: TransformCallback) {
      if (heldCR) this.push(Buffer.from([CR]));
      heldCR = false;
      done();
    },
  });
}
