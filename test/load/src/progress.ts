import type { Progress } from './run';
import { formatClock, formatDuration } from './units';

/**
 * k6's live progress on stderr: rewritten in place five times a second on a terminal, one line every few seconds
 * otherwise (CI logs), nothing with --quiet.
 *
 *   running (00m05.2s), 07/10 VUs, 123 complete and 0 interrupted iterations
 *   small   [=========>-----------] 07 VUs  05.2s/30s
 */

const BAR = 30;

export function progressLines(p: Progress): string[] {
  const head = `running (${formatClock(p.elapsed)}), ${String(p.vus).padStart(2, '0')}/${String(p.vusMax).padStart(2, '0')} VUs, ${p.complete} complete and ${p.interrupted} interrupted iterations`;
  const width = Math.max(...p.scenarios.map((s) => s.name.length));
  const rows = p.scenarios.map((s) => {
    const done = s.length > 0 ? Math.min(1, s.elapsed / s.length) : 1;
    const filled = Math.round(done * BAR);
    const bar = '='.repeat(Math.max(0, filled - 1)) + (filled ? (done >= 1 ? '=' : '>') : '') + '-'.repeat(BAR - filled);
    return `${s.name.padEnd(width)} ${s.over ? '✓' : ' '} [${bar}] ${String(s.vus).padStart(2, '0')} VUs  ${formatDuration(s.elapsed)}/${formatDuration(s.length)}`;
  });
  return [head, ...rows];
}

export function startProgress(read: () => Progress, o: { stream: NodeJS.WriteStream; tty: boolean; everyMs: number }): () => void {
  let drawn = 0;
  const draw = () => {
    const lines = progressLines(read());
    if (o.tty) {
      // Move up over the previous frame and overwrite it.
      o.stream.write((drawn ? `\x1b[${drawn}A` : '') + lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
      drawn = lines.length;
    } else o.stream.write(lines.join('\n') + '\n');
  };
  const timer = setInterval(draw, o.tty ? 200 : o.everyMs);
  return () => {
    clearInterval(timer);
    draw();
  };
}
