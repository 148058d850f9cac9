import type { ScenarioPlan } from './scenario';

/** When k6's executors want iterations, as pure functions of the time since the scenario started. */

/** How many VUs a looping executor wants `t` ms into its run (ramping-vus: linear within each stage, as k6). */
export function targetVUs(s: ScenarioPlan, t: number): number {
  if (s.executor === 'constant-vus') return t < s.duration ? s.vus : 0;
  if (s.executor !== 'ramping-vus') return 0;
  let from = s.startVUs;
  let at = 0;
  for (const stage of s.stages) {
    if (t < at + stage.duration) return Math.round(from + ((stage.target - from) * (t - at)) / stage.duration);
    from = stage.target;
    at += stage.duration;
  }
  return 0; // the scenario is over
}

/** How many iterations an arrival-rate executor has wanted to start by `t` ms (the first one at 0). */
export function arrivalsBy(s: ScenarioPlan, t: number): number {
  if (s.executor !== 'constant-arrival-rate' || t < 0) return 0;
  const interval = s.timeUnit / s.rate;
  return Math.min(Math.floor(t / interval) + 1, Math.ceil(s.duration / interval));
}

/** VUs a scenario allocates when the test starts (arrival-rate adds up to maxVUs on demand). */
export function initialVUs(s: ScenarioPlan): number {
  if (s.executor === 'constant-vus') return s.vus;
  if (s.executor === 'ramping-vus') return Math.max(s.startVUs, ...s.stages.map((st) => st.target));
  return s.preAllocatedVUs;
}
