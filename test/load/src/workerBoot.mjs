// Entry of a VU thread. On Node 20 a worker does not inherit the main thread's tsx loader for its entry file, so this
// plain module registers tsx and then loads the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
