import type { SessionDeps } from './types';

/** Releases the leases whose release failed earlier, oldest first; stops at the first failure (still away). Never rejects. */
export async function retryReleases(deps: Pick<SessionDeps, 'cluster' | 'unreleased'>): Promise<void> {
  for (const lease of deps.unreleased) {
    try {
      await deps.cluster.ports.release(lease);
    } catch {
      return;
    }
    deps.unreleased.delete(lease);
  }
}
