import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, type FtpConfig } from '@ftp/config';
import { loadWorkerConfig, type WorkerConfig } from '../../services/worker/src/config';
import { buildPipelines } from '../../services/worker/src/pipeline';
import type { Resource } from './kustomize';
import { sftpSettings, type SftpSettings } from './sftpSettings';

/**
 * What the schemas cannot see: whether the rendered objects of an overlay fit together and fit the programs they
 * run. Each check returns its problems (empty = fine), so the tests can also show that a broken input is caught.
 */

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const find = (objs: Resource[], kind: string, name: string): Obj | undefined => objs.find((o) => o.kind === kind && o.metadata.name === name);

const podSpecOf = (o: Obj): Obj | undefined => o.spec?.template?.spec;
const workloads = (objs: Resource[]) => objs.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind)) as Obj[];
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** A label selector (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist) against labels. */
function selects(selector: Obj | undefined, labels: Record<string, string> = {}): boolean {
  if (!selector) return false;
  if (selector.matchLabels && !matches(selector.matchLabels, labels)) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in labels;
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Every ConfigMap, Secret, PVC, Deployment, Service and port name that something refers to exists. */
export function referenceProblems(objs: Resource[], externalSecrets: Resource[] = []): string[] {
  const problems: string[] = [];
  const configMaps = new Map(objs.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, o as Obj]));
  const secrets = new Map([...externalSecrets, ...objs].filter((o) => o.kind === 'Secret').map((o) => [o.metadata.name, o as Obj]));
  const secretKeys = (s: Obj) => new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})]);
  const pvcs = new Set(objs.filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata.name));

  for (const w of workloads(objs)) {
    const at = `${w.kind}/${w.metadata.name}`;
    const pod = podSpecOf(w) ?? {};
    if (!selects(w.spec.selector, w.spec.template?.metadata?.labels)) problems.push(`${at}: selector does not match its pod template`);
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      for (const { configMapRef: cm, secretRef: sr } of c.envFrom ?? []) {
        if (cm && !cm.optional && !configMaps.has(cm.name)) problems.push(`${at}: envFrom ConfigMap ${cm.name} missing`);
        if (sr && !sr.optional && !secrets.has(sr.name)) problems.push(`${at}: envFrom Secret ${sr.name} missing`);
      }
      for (const e of c.env ?? []) {
        const cm = e.valueFrom?.configMapKeyRef;
        if (cm && !cm.optional && configMaps.get(cm.name)?.data?.[cm.key] === undefined) {
          problems.push(`${at}: env ${e.name}: ConfigMap key ${cm.name}/${cm.key} missing`);
        }
        const sk = e.valueFrom?.secretKeyRef;
        if (sk && !sk.optional && !(secrets.has(sk.name) && secretKeys(secrets.get(sk.name)!).has(sk.key))) {
          problems.push(`${at}: env ${e.name}: Secret key ${sk.name}/${sk.key} missing`);
        }
      }
      const volumes = new Set((pod.volumes ?? []).map((v: Obj) => v.name));
      for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) problems.push(`${at}: volumeMount ${m.mountPath} names no volume ${m.name}`);
    }
    for (const { name, configMap, secret, persistentVolumeClaim: pvc } of pod.volumes ?? []) {
      if (configMap && !configMap.optional && !configMaps.has(configMap.name)) problems.push(`${at}: volume ${name}: ConfigMap ${configMap.name} missing`);
      if (secret && !secret.optional && !secrets.has(secret.secretName)) problems.push(`${at}: volume ${name}: Secret ${secret.secretName} missing`);
      if (pvc && !pvcs.has(pvc.claimName)) problems.push(`${at}: volume ${name}: PVC ${pvc.claimName} missing`);
    }
  }

  const podsOf = (selector: Obj | undefined) => workloads(objs).filter((w) => selects(selector, w.spec.template?.metadata?.labels));
  for (const o of objs as Obj[]) {
    const at = `${o.kind}/${o.metadata.name}`;
    if (o.kind === 'Service' && o.spec.selector) {
      const targets = podsOf({ matchLabels: o.spec.selector });
      if (targets.length === 0) problems.push(`${at}: selects no pods`);
      for (const p of o.spec.ports ?? []) {
        if (typeof p.targetPort !== 'string') continue;
        const named = targets.some((w) => podSpecOf(w)!.containers.some((c: Obj) => (c.ports ?? []).some((cp: Obj) => cp.name === p.targetPort)));
        if (!named) problems.push(`${at}: targetPort ${p.targetPort} is no container port name`);
      }
    }
    if (o.kind === 'HorizontalPodAutoscaler') {
      const ref = o.spec.scaleTargetRef;
      if (!find(objs, ref.kind, ref.name)) problems.push(`${at}: scale target ${ref.kind}/${ref.name} missing`);
      if (o.spec.minReplicas > o.spec.maxReplicas) problems.push(`${at}: minReplicas above maxReplicas`);
    }
    if (o.kind === 'PodDisruptionBudget' && podsOf(o.spec.selector).length === 0) problems.push(`${at}: selects no pods`);
    if (o.kind === 'NetworkPolicy' && podsOf(o.spec.podSelector).length === 0) problems.push(`${at}: selects no pods`);
    if (o.kind === 'ServiceMonitor') {
      const services = (objs as Obj[]).filter((s) => s.kind === 'Service' && selects(o.spec.selector, s.metadata.labels));
      if (services.length === 0) problems.push(`${at}: selects no Service`);
      for (const e of o.spec.endpoints ?? []) {
        if (!services.some((s) => s.spec.ports.some((p: Obj) => p.name === e.port))) problems.push(`${at}: no selected Service has a port named ${e.port}`);
      }
    }
  }
  return problems;
}

/** The environment a container gets: envFrom ConfigMaps, then its env, with stand-ins for pod fields and Secrets. */
export function containerEnv(objs: Resource[], container: Obj, stand: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, find(objs, 'ConfigMap', from.configMapRef.name)?.data ?? {});
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = find(objs, 'ConfigMap', e.valueFrom.configMapKeyRef.name)?.data?.[e.valueFrom.configMapKeyRef.key];
    else if (e.name in stand) env[e.name] = stand[e.name];
  }
  return env;
}

const portOf = (container: Obj, port: number | string) => (typeof port === 'number' ? port : container.ports?.find((p: Obj) => p.name === port)?.containerPort);

/** Stand-ins for what only exists at run time: pod fields and Secret values (valid, so the config parser accepts them). */
export const EDGE_STAND_INS = {
  FTP_REPLICA_ID: 'ftp-edge-7d9f-abcde',
  FTP_ADVERTISE_HOST: '10.1.2.3',
  REDIS_URL: 'redis://redis.example:6379',
  FTP_TLS_TICKET_KEYS: Buffer.alloc(48, 7).toString('base64'),
};

/** The edge's configuration as the program itself would load it from the rendered objects (and its SFTP settings). */
export function edgeConfig(objs: Resource[]): { config?: FtpConfig; sftp?: SftpSettings; problems: string[] } {
  const deployment = find(objs, 'Deployment', 'ftp-edge');
  const container = podSpecOf(deployment ?? {})?.containers?.find((c: Obj) => c.name === 'edge');
  if (!container) return { problems: ['Deployment/ftp-edge with container "edge" missing'] };
  const env = containerEnv(objs, container, EDGE_STAND_INS);
  const problems: string[] = [];
  if (container.env?.find((e: Obj) => e.name === 'FTP_ADVERTISE_HOST')?.valueFrom?.fieldRef?.fieldPath !== 'status.podIP') {
    problems.push('FTP_ADVERTISE_HOST must come from status.podIP (peers relay to it)');
  }
  try {
    const config = loadConfig({ env });
    return { config, sftp: sftpSettings(config, env), problems };
  } catch (err) {
    return { problems: [...problems, `edge configuration: ${(err as Error).message}`] };
  }
}

/** Ports, probes, drain budget, hardening and network policy of the edge against its configuration. */
export function edgeProblems(objs: Resource[]): string[] {
  const { config, sftp, problems } = edgeConfig(objs);
  if (!config || !sftp) return problems;
  const deployment = find(objs, 'Deployment', 'ftp-edge')!;
  const pod = podSpecOf(deployment)!;
  const container = pod.containers.find((c: Obj) => c.name === 'edge');

  const containerPorts = new Set((container.ports ?? []).map((p: Obj) => p.containerPort));
  for (const [key, port] of [['FTP_PORT', config.port], ['FTP_RELAY_PORT', config.relayPort], ['FTP_ADMIN_PORT', config.adminPort], ['FTP_SFTP_PORT', sftp.port], ['FTP_API_PORT', config.apiPort]] as const) {
    if (port !== 0 && !containerPorts.has(port)) problems.push(`container port ${port} (${key}) not declared`);
  }
  for (const [probe, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']]) {
    const get = container[probe]?.httpGet;
    if (get?.path !== path || portOf(container, get?.port) !== config.adminPort) {
      problems.push(`${probe} must GET ${path} on the admin port ${config.adminPort}`);
    }
  }

  const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
  const pause = preStop[0] === 'sleep' ? Number(preStop[1]) : 0;
  if (!(pause > 0)) problems.push('preStop must pause (sleep N) so load balancers stop sending before the drain');
  if (!(pod.terminationGracePeriodSeconds >= pause + config.drainSeconds + 5)) {
    problems.push(`terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} < preStop ${pause} + FTP_DRAIN_SECONDS ${config.drainSeconds} + 5`);
  }
  if (deployment.spec.replicas !== undefined) problems.push('the edge Deployment must not set replicas (the HPA owns them)');
  if (deployment.spec.strategy?.rollingUpdate?.maxUnavailable !== 0) problems.push('rolling update must keep maxUnavailable 0 (capacity never drops)');

  const service = find(objs, 'Service', 'ftp');
  if (!service) problems.push('Service/ftp missing');
  else {
    if (service.spec.type !== 'LoadBalancer' || service.spec.externalTrafficPolicy !== 'Local') {
      problems.push('Service/ftp must be a LoadBalancer with externalTrafficPolicy Local');
    }
    const ports = service.spec.ports as Obj[];
    const control = ports.find((p) => p.port === 21);
    if (!control || portOf(container, control.targetPort) !== config.port) problems.push(`Service/ftp: port 21 must go to FTP_PORT ${config.port}`);
    const ssh = ports.find((p) => p.port === 22);
    if (sftp.port === 0 && ssh) problems.push('Service/ftp: port 22 but FTP_SFTP_PORT is 0 (SFTP off)');
    if (sftp.port !== 0 && (!ssh || portOf(container, ssh.targetPort) !== sftp.port)) problems.push(`Service/ftp: port 22 must go to FTP_SFTP_PORT ${sftp.port}`);
    const passive = ports.filter((p) => p !== control && p !== ssh);
    const wanted = [];
    for (let p = config.pasvRange.min; p <= config.pasvRange.max; p++) wanted.push(p);
    const listed = passive.map((p) => p.port).sort((a, b) => a - b);
    if (JSON.stringify(listed) !== JSON.stringify(wanted)) {
      problems.push(`Service/ftp: passive ports ${listed.join(',')} differ from FTP_PASV_RANGE ${config.pasvRange.min}-${config.pasvRange.max}`);
    }
    for (const p of passive) if (p.targetPort !== p.port) problems.push(`Service/ftp: passive port ${p.port} must go to the same port, not ${p.targetPort}`);
    if (service.spec.loadBalancerIP && service.spec.loadBalancerIP !== config.pasvAddress) {
      problems.push(`FTP_PASV_ADDRESS ${config.pasvAddress || '(empty)'} differs from the Service's loadBalancerIP ${service.spec.loadBalancerIP}`);
    }
  }

  const ingress = find(objs, 'NetworkPolicy', 'ftp-edge-ingress')?.spec.ingress as Obj[] | undefined;
  const covers = (p: Obj, port: number) => p.port === port || (p.endPort && p.port <= port && port <= p.endPort);
  const rulesFor = (port: number) => (ingress ?? []).filter((r) => (r.ports ?? []).some((p: Obj) => covers(p, port)));
  /** Every rule opening `port` admits only sources that pass `ok` (and there is at least one such rule). */
  const onlyFrom = (port: number, ok: (from: Obj) => boolean) => rulesFor(port).length > 0 && rulesFor(port).every((r) => r.from?.length > 0 && r.from.every(ok));
  const fromAnywhere = (port: number) => rulesFor(port).some((r) => !r.from || r.from.length === 0);
  if (![config.port, config.pasvRange.min, config.pasvRange.max].every(fromAnywhere)) problems.push('NetworkPolicy: control and passive ports must be open to all');
  if (sftp.port !== 0 && !fromAnywhere(sftp.port)) problems.push(`NetworkPolicy: SFTP port ${sftp.port} must be open to all`);
  const isEdge = (f: Obj) => f.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'ftp-edge' && !f.namespaceSelector && !f.ipBlock;
  if (!onlyFrom(config.relayPort, isEdge)) problems.push(`NetworkPolicy: relay port ${config.relayPort} must be open to edge pods only`);
  const isMonitoring = (f: Obj) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring' && !f.ipBlock;
  if (!onlyFrom(config.adminPort, isMonitoring)) problems.push(`NetworkPolicy: admin port ${config.adminPort} must be open to the monitoring namespace only`);
  return problems;
}

/**
 * Every edge presents the same SSH host keys (a client the load balancer sends to another pod would otherwise see
 * "host key changed"): FTP_SFTP_HOST_KEYS names files of a Secret mounted read-only, with those keys in the Secret
 * (when the Secret is known: rendered, or in `externalSecrets`) and not readable by others; or, without it, the keys
 * the edge makes in FTP_TLS_DIR land on a volume that every pod shares (a PersistentVolumeClaim), never per pod.
 */
export function hostKeyProblems(objs: Resource[], externalSecrets: Resource[] = []): string[] {
  const { sftp, problems } = edgeConfig(objs);
  if (!sftp) return problems;
  if (sftp.port === 0) return [];
  const pod = podSpecOf(find(objs, 'Deployment', 'ftp-edge')!)!;
  const container = pod.containers.find((c: Obj) => c.name === 'edge');
  const secrets = new Map([...externalSecrets, ...objs].filter((o) => o.kind === 'Secret').map((o) => [o.metadata.name, o as Obj]));
  /** The mount (deepest first) that holds `path`, and its volume. */
  const mountOf = (path: string) => {
    const mounts = [...(container.volumeMounts ?? [])].sort((a: Obj, b: Obj) => b.mountPath.length - a.mountPath.length);
    const mount = mounts.find((m: Obj) => path.startsWith(`${m.mountPath.replace(/\/+$/, '')}/`));
    return { mount, volume: mount && (pod.volumes ?? []).find((v: Obj) => v.name === mount.name) };
  };

  if (sftp.hostKeys.length === 0) {
    for (const path of sftp.generatedKeys) {
      const { volume } = mountOf(path);
      if (!volume?.persistentVolumeClaim) {
        problems.push(`FTP_SFTP_HOST_KEYS is empty, so each edge makes ${path} itself, ${volume ? `on volume ${volume.name}, which pods do not share` : 'on no volume'}: mount the host keys from a Secret and name them in FTP_SFTP_HOST_KEYS`);
      }
    }
    return problems;
  }
  for (const path of sftp.hostKeys) {
    const { mount, volume } = mountOf(path);
    if (!volume?.secret) {
      problems.push(`FTP_SFTP_HOST_KEYS: ${path} is not in a mounted Secret${volume ? ` (volume ${volume.name})` : ''}`);
      continue;
    }
    if (mount.readOnly !== true) problems.push(`FTP_SFTP_HOST_KEYS: mount ${mount.mountPath} must be readOnly`);
    const mode = volume.secret.defaultMode ?? 0o644;
    if ((mode & 0o007) !== 0) problems.push(`volume ${volume.name}: defaultMode ${mode.toString(8)} lets other users read the host keys (e.g. 0440 = 288)`);
    const relative = path.slice(mount.mountPath.replace(/\/+$/, '').length + 1);
    const item = (volume.secret.items as Obj[] | undefined)?.find((i) => i.path === relative);
    if (volume.secret.items && !item) {
      problems.push(`FTP_SFTP_HOST_KEYS: ${path} is not among the items of Secret ${volume.secret.secretName}`);
      continue;
    }
    const key = item?.key ?? relative;
    const secret = secrets.get(volume.secret.secretName);
    if (secret && ![...Object.keys(secret.data ?? {}), ...Object.keys(secret.stringData ?? {})].includes(key)) {
      problems.push(`FTP_SFTP_HOST_KEYS: Secret ${volume.secret.secretName} has no key ${key}`);
    }
  }
  return problems;
}

/** Non-root, read-only root filesystem, no capabilities, seccomp, no service links, for every pod. */
export function hardeningProblems(objs: Resource[]): string[] {
  const problems: string[] = [];
  for (const w of workloads(objs)) {
    const pod = podSpecOf(w)!;
    const at = `${w.kind}/${w.metadata.name}`;
    const sc = pod.securityContext ?? {};
    if (sc.runAsNonRoot !== true || !(sc.runAsUser > 0)) problems.push(`${at}: runAsNonRoot with a numeric non-root runAsUser`);
    if (sc.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${at}: seccompProfile RuntimeDefault`);
    if (pod.enableServiceLinks !== false) problems.push(`${at}: enableServiceLinks false (Service links would set FTP_PORT and friends)`);
    for (const c of pod.containers) {
      const csc = c.securityContext ?? {};
      if (csc.readOnlyRootFilesystem !== true) problems.push(`${at}/${c.name}: readOnlyRootFilesystem`);
      if (csc.allowPrivilegeEscalation !== false) problems.push(`${at}/${c.name}: allowPrivilegeEscalation false`);
      if (!csc.capabilities?.drop?.includes('ALL')) problems.push(`${at}/${c.name}: capabilities drop ALL`);
      const { requests, limits } = c.resources ?? {};
      if (!requests?.cpu || !requests?.memory || !limits?.memory) problems.push(`${at}/${c.name}: cpu and memory requests and a memory limit`);
    }
  }
  return problems;
}

/** The worker's configuration and pipelines as the program would load them, and its wiring to the edge's. */
export function workerProblems(objs: Resource[]): string[] {
  const problems: string[] = [];
  const deployment = find(objs, 'Deployment', 'ftp-worker');
  const pod = podSpecOf(deployment ?? {});
  const container = pod?.containers?.find((c: Obj) => c.name === 'worker');
  if (!container) return ['Deployment/ftp-worker with container "worker" missing'];
  const env = containerEnv(objs, container, { REDIS_URL: EDGE_STAND_INS.REDIS_URL });

  // The pipelines file the worker will read: the ConfigMap key mounted at WORKER_PIPELINES.
  const target = env.WORKER_PIPELINES ?? '';
  const mount = (container.volumeMounts ?? []).find((m: Obj) => target.startsWith(`${m.mountPath}/`));
  const volume = mount && pod!.volumes.find((v: Obj) => v.name === mount.name);
  const text = volume?.configMap && find(objs, 'ConfigMap', volume.configMap.name)?.data?.[target.slice(mount.mountPath.length + 1)];
  if (typeof text !== 'string') return [`WORKER_PIPELINES ${target} is not a mounted ConfigMap key`];
  const dir = mkdtempSync(join(tmpdir(), 'deploy-pipelines-'));
  let config: WorkerConfig | undefined;
  try {
    writeFileSync(join(dir, 'pipelines.yaml'), text);
    config = loadWorkerConfig({ ...env, WORKER_PIPELINES: join(dir, 'pipelines.yaml') });
    buildPipelines(config, {});
  } catch (err) {
    problems.push(`worker configuration: ${(err as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (!config) return problems;

  for (const [probe, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz']]) {
    const get = container[probe]?.httpGet;
    if (get?.path !== path || portOf(container, get?.port) !== config.worker.adminPort) {
      problems.push(`worker ${probe} must GET ${path} on WORKER_ADMIN_PORT ${config.worker.adminPort}`);
    }
  }
  const edge = edgeConfig(objs).config;
  const shared = ['dataDir', 'redisPrefix', 'storage', 's3Bucket', 's3Prefix', 's3Endpoint'] as const;
  if (edge && shared.some((key) => (key === 'dataDir' ? resolve(edge[key]) !== resolve(config![key]) : edge[key] !== config![key]))) {
    problems.push('worker FTP_DATA_DIR, FTP_REDIS_PREFIX, FTP_STORAGE and FTP_S3_* must equal the edge\'s');
  }
  const claims = (w: Obj | undefined) => (podSpecOf(w ?? {})?.volumes ?? []).map((v: Obj) => v.persistentVolumeClaim?.claimName).filter(Boolean);
  const edgeClaims = claims(find(objs, 'Deployment', 'ftp-edge'));
  if (!claims(deployment).some((c: string) => edgeClaims.includes(c))) problems.push('worker and edge must mount the same volume claim');
  return problems;
}

/** Autoscalers: the edge on CPU and sessions per pod, the worker on the waiting queue. */
export function autoscalingProblems(objs: Resource[]): string[] {
  const problems: string[] = [];
  const edge = find(objs, 'HorizontalPodAutoscaler', 'ftp-edge');
  const metrics = (edge?.spec.metrics ?? []) as Obj[];
  if (!metrics.some((m) => m.type === 'Resource' && m.resource.name === 'cpu')) problems.push('edge HPA: CPU metric missing');
  if (!metrics.some((m) => m.type === 'Pods' && m.pods.metric.name === 'ftp_sessions_active')) {
    problems.push('edge HPA: Pods metric ftp_sessions_active missing');
  }
  const worker = find(objs, 'HorizontalPodAutoscaler', 'ftp-worker');
  const queue = ((worker?.spec.metrics ?? []) as Obj[]).find((m) => m.type === 'External' && m.external.metric.name === 'ftp_worker_queue_jobs');
  if (queue?.external.metric.selector?.matchLabels?.state !== 'waiting') {
    problems.push('worker HPA: External metric ftp_worker_queue_jobs{state="waiting"} missing');
  }
  if (find(objs, 'PodDisruptionBudget', 'ftp-edge')?.spec.maxUnavailable !== 1) problems.push('edge PDB: maxUnavailable 1');
  return problems;
}

/** Production specifics: a real PASV address, external Redis, a ReadWriteMany volume. */
export function prodProblems(objs: Resource[], secrets: Resource[]): string[] {
  const problems: string[] = [];
  const config = edgeConfig(objs).config;
  if (!config || !isIPv4(config.pasvAddress)) problems.push('FTP_PASV_ADDRESS must be set to the load balancer\'s IPv4 address');
  if (objs.some((o) => o.metadata.name === 'redis')) problems.push('no in-cluster Redis in production');
  const url = (find(secrets, 'Secret', 'ftp-secrets')?.stringData?.REDIS_URL ?? '') as string;
  if (!/^rediss?:\/\//.test(url) || /@redis:|\/\/redis:/.test(url)) problems.push('REDIS_URL must point at the external Redis');
  if (!find(objs, 'PersistentVolumeClaim', 'ftp-data')?.spec.accessModes?.includes('ReadWriteMany')) problems.push('the data volume must be ReadWriteMany');
  return problems;
}

/** The namespace whose pods may reach the admin REST API (operators' tools, ftpctl --api). */
export const ADMIN_NAMESPACE = 'ftp-admin';

/**
 * The admin REST API and the PostgreSQL user store: the API on (FTP_API_PORT), declared as a container port, served
 * by a ClusterIP Service and by no public one, admitted by the NetworkPolicy from the admin namespace only; the
 * database URL from a Secret, never from the ConfigMap (it carries a password).
 */
export function apiProblems(objs: Resource[]): string[] {
  const { config, problems } = edgeConfig(objs);
  if (!config) return problems;
  if (config.apiPort === 0) return ['FTP_API_PORT is 0: the admin API is off'];
  const deployment = find(objs, 'Deployment', 'ftp-edge')!;
  const container = podSpecOf(deployment)!.containers.find((c: Obj) => c.name === 'edge');
  const apiPort = config.apiPort;
  const isApiPort = (port: number | string) => portOf(container, port) === apiPort;

  const services = (objs as Obj[]).filter((o) => o.kind === 'Service' && selects({ matchLabels: o.spec.selector }, deployment.spec.template.metadata.labels));
  const serving = services.filter((svc) => (svc.spec.ports ?? []).some((p: Obj) => isApiPort(p.targetPort ?? p.port)));
  if (serving.length === 0) problems.push(`no Service sends traffic to the API port ${apiPort}`);
  for (const svc of serving) {
    if ((svc.spec.type ?? 'ClusterIP') !== 'ClusterIP' || svc.spec.clusterIP === 'None') problems.push(`Service/${svc.metadata.name} exposes the admin API: only a ClusterIP Service may`);
  }
  const ingress = (find(objs, 'NetworkPolicy', 'ftp-edge-ingress')?.spec.ingress ?? []) as Obj[];
  const covers = (p: Obj) => p.port === apiPort || p.port === 'api' || (p.endPort && p.port <= apiPort && apiPort <= p.endPort);
  const rules = ingress.filter((r) => (r.ports ?? []).some(covers) || !r.ports);
  const fromAdmin = (f: Obj) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === ADMIN_NAMESPACE && !f.ipBlock;
  if (rules.length === 0 || !rules.every((r) => r.from?.length > 0 && r.from.every(fromAdmin))) {
    problems.push(`NetworkPolicy: the API port ${apiPort} must be open to the ${ADMIN_NAMESPACE} namespace only`);
  }

  const fromConfigMap = (container.envFrom ?? []).some((e: Obj) => e.configMapRef && find(objs, 'ConfigMap', e.configMapRef.name)?.data?.FTP_USERS_DATABASE_URL !== undefined);
  const entry = (container.env ?? []).find((e: Obj) => e.name === 'FTP_USERS_DATABASE_URL');
  if (fromConfigMap || entry?.value !== undefined) problems.push('FTP_USERS_DATABASE_URL carries a password: take it from a Secret, not a ConfigMap or a literal');
  else if (!entry?.valueFrom?.secretKeyRef) problems.push('FTP_USERS_DATABASE_URL must come from a Secret (secretKeyRef)');
  return problems;
}
