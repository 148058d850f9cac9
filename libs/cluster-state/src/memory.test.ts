import { clusterStateContract } from './contract';
import { createMemoryClusterState } from './memory';

clusterStateContract('memory', async (pasvRange, clock) => createMemoryClusterState({ pasvRange, now: clock.now }));
