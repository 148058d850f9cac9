import { spawnSync } from 'node:child_process';
import { loadZeroCopy, type ZeroCopy } from '@ftp/zero-copy';

/**
 * The zero-copy addon for tests, and whether a test that needs it may skip: only on a machine that truly cannot
 * build it (no python3, make or g++; tools/install-test-deps.sh installs them, and `npm ci` then builds it). Where a
 * compiler exists but the addon is missing, the tests fail and say how to build it.
 */
export const zeroCopy: ZeroCopy | null = loadZeroCopy();

const hasCompiler = ['python3', 'make', 'g++'].every((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0);

/** `skip` option for node:test: false when the addon is there, or when it is missing and could be built (the test then fails). */
export const skipWithoutAddon: string | false = zeroCopy || hasCompiler ? false : 'the zero-copy addon is not built and this machine has no compiler';

/** The addon, or a clear failure where it should have been built. */
export function requireZeroCopy(): ZeroCopy {
  if (!zeroCopy) throw new Error('the zero-copy addon is missing although python3, make and g++ are here: npm run build:addon --workspace @ftp/zero-copy');
  return zeroCopy;
}
