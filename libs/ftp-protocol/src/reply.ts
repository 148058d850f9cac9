/** Formatting control-connection replies (RFC 959 §4.2). */

/**
 * `200 text\r\n`, or for several lines `211-first\r\n middle\r\n211 last\r\n`.
 * Text is split at every CR/LF so it can never end a reply early, and each middle line starts
 * with a space so it cannot look like the `ddd ` line that ends a multi-line reply.
 */
export function formatReply(code: number, text: string | string[]): string {
  if (!Number.isInteger(code) || code < 100 || code > 599) throw new RangeError(`invalid reply code ${code}`);
  const lines = (Array.isArray(text) ? text : [text]).flatMap(splitLines);
  if (lines.length === 0) lines.push('');
  if (lines.length === 1) return `${code} ${lines[0]}\r\n`;
  const last = lines.length - 1;
  let out = `${code}-${lines[0]}\r\n`;
  for (let i = 1; i < last; i++) out += ` ${lines[i]}\r\n`;
  return out + `${code} ${lines[last]}\r\n`;
}

function splitLines(text: string): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  // 'a\n' means one line, not a line followed by an empty one.
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
