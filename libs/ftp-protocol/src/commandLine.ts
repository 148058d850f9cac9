/**
 * Splits the control-connection byte stream into command lines (RFC 959 over an RFC 854 Telnet stream).
 * Stateful: a line, a Telnet sequence or a CRLF may be split across any number of chunks.
 */

export type DecodedLine = { text: string } | { error: 'too-long' | 'bad-utf8' };

const LF = 0x0a;
const CR = 0x0d;
const IAC = 0xff;
const WILL = 251;
const DONT = 254;
/** Lowest Telnet command byte (SE); a byte below it after IAC is not a command. */
const TELNET_CMD_MIN = 240;

// Telnet parser states.
const DATA = 0;
/** Saw IAC, waiting for the command byte. */
const AFTER_IAC = 1;
/** Saw IAC WILL/WONT/DO/DONT: the next byte is the option and is dropped. */
const OPTION = 2;

export class CommandLineDecoder {
  // ignoreBOM keeps a leading U+FEFF in the text, so names reach the session byte for byte.
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  // Grows on demand up to maxLineBytes + 1 (room for the CR before LF), so idle connections stay small.
  private buf = Buffer.allocUnsafe(64);
  private len = 0;
  private telnet = DATA;
  /** Inside an over-long line: bytes are dropped until the next LF. */
  private discarding = false;
  /** An `ABOR\r` was emitted without its LF; the LF may still arrive and must not make an empty line. */
  private swallowLf = false;

  constructor(private readonly maxLineBytes = 8192) {}

  push(chunk: Buffer): DecodedLine[] {
    const out: DecodedLine[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      switch (this.telnet) {
        case AFTER_IAC:
          this.telnet = DATA;
          if (b === IAC) this.data(IAC, out); // IAC IAC is an escaped 0xFF data byte
          else if (b >= WILL && b <= DONT) this.telnet = OPTION;
          // A byte below 240 means the command byte after IAC was lost (urgent DM stripped by the kernel): keep it.
          else if (b < TELNET_CMD_MIN) this.data(b, out);
          // Any other command (IP, DM, AO, ...) has no meaning for FTP and is dropped. SB is dropped on its
          // own rather than skipping to SE: a stray SB must not swallow the commands that follow.
          break;
        case OPTION:
          this.telnet = DATA;
          break;
        default:
          if (b === IAC) this.telnet = AFTER_IAC;
          else this.data(b, out);
      }
    }
    this.emitUrgentAbort(out);
    return out;
  }

  private data(b: number, out: DecodedLine[]): void {
    if (this.swallowLf) {
      this.swallowLf = false;
      if (b === LF) return;
    }
    if (b === LF) {
      if (this.discarding) this.discarding = false;
      else out.push(this.finishLine());
      return;
    }
    if (this.discarding) return;
    // The CR that may precede LF is stored too, so one extra byte is allowed only for a CR.
    const limit = b === CR ? this.maxLineBytes + 1 : this.maxLineBytes;
    if (this.len >= limit) {
      this.len = 0;
      this.discarding = true;
      out.push({ error: 'too-long' });
      return;
    }
    if (this.len === this.buf.length) this.grow();
    this.buf[this.len++] = b;
  }

  private finishLine(): DecodedLine {
    let end = this.len;
    if (end > 0 && this.buf[end - 1] === CR) end--;
    this.len = 0;
    try {
      return { text: this.utf8.decode(this.buf.subarray(0, end)) };
    } catch {
      return { error: 'bad-utf8' };
    }
  }

  /**
   * Python's ftplib sends `ABOR\r\n` as urgent data; the kernel removes the urgent (last) byte,
   * so the LF never arrives in-band. Waiting for it would leave the transfer running forever.
   */
  private emitUrgentAbort(out: DecodedLine[]): void {
    if (this.discarding || this.len !== 5 || this.buf[4] !== CR) return;
    if (this.buf.toString('latin1', 0, 4).toUpperCase() !== 'ABOR') return;
    this.len = 0;
    this.swallowLf = true;
    out.push({ text: 'ABOR' });
  }

  private grow(): void {
    const next = Buffer.allocUnsafe(Math.min(this.buf.length * 2, this.maxLineBytes + 1));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
}
