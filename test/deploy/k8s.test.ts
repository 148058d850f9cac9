import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import { build, loadYamlDocuments, patchFilesOf, type Resource } from './kustomize';
import { validateAll } from './k8sSchema';
import {
  ADMIN_NAMESPACE,
  apiProblems,
  autoscalingProblems,
  edgeConfig,
  edgeProblems,
  find,
  hardeningProblems,
  hostKeyProblems,
  prodProblems,
  referenceProblems,
  workerProblems,
} from './k8sChecks';

// Everything under k8s/, offline: each manifest file against the Kubernetes 1.27 schemas (kubernetes-models 4.5.1,
// Prometheus Operator and KEDA models) with unknown fields rejected, each overlay rendered (./kustomize.ts) and the
// result validated the same way, then checked against what the edge and the worker actually read.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const K8S = join(ROOT, 'k8s');
const OVERLAYS = ['dev', 'prod'] as const;
const PROD_SECRETS = join(K8S, 'overlays', 'prod', 'secrets.example.yaml');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

const render = (overlay: string) => build(join(K8S, 'overlays', overlay));
const located = (objs: Resource[], where: string) => objs.map((obj, i) => ({ obj, where: `${where}#${i + 1}` }));
const clone = <T>(value: T): T => structuredClone(value);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const edgeDeployment = (objs: Resource[]) => find(objs, 'Deployment', 'ftp-edge') as any;

test('every manifest file under k8s/ parses and is a valid Kubernetes object; patches and kustomizations are rendered below', async () => {
  const kustomizationDirs = yamlFiles(K8S).filter((f) => basename(f) === 'kustomization.yaml').map(dirname);
  const patches = new Set(kustomizationDirs.flatMap(patchFilesOf));
  const items = [];
  for (const file of yamlFiles(K8S)) {
    const docs = loadYamlDocuments(file); // syntax and duplicate keys, for every file
    if (basename(file) === 'kustomization.yaml' || patches.has(file)) continue;
    assert.ok(docs.length > 0, `${file} is empty`);
    items.push(...located(docs as Resource[], relative(ROOT, file)));
  }
  assert.ok(items.length >= 25, `only ${items.length} objects found`);
  assert.deepEqual(await validateAll(items), []);
});

test('base and both overlays render, and the rendered objects are valid', async () => {
  const base = build(join(K8S, 'base'));
  const items = located(base, 'k8s/base');
  for (const overlay of OVERLAYS) items.push(...located(render(overlay), `k8s/overlays/${overlay}`));
  assert.deepEqual(await validateAll(items), []);
});

for (const overlay of OVERLAYS) {
  test(`${overlay}: every reference resolves (ConfigMaps, Secrets, keys, volumes, selectors, named ports)`, () => {
    const secrets = overlay === 'prod' ? (loadYamlDocuments(PROD_SECRETS) as Resource[]) : [];
    assert.deepEqual(referenceProblems(render(overlay), secrets), []);
  });

  test(`${overlay}: the edge's ConfigMap is a valid configuration and ports, probes, drain budget and network policy follow it`, () => {
    const objs = render(overlay);
    assert.deepEqual(edgeProblems(objs), []);
    assert.deepEqual(hardeningProblems(objs), []);
  });

  test(`${overlay}: the admin API is served by a ClusterIP Service only, admitted from the admin namespace only; the database URL is a Secret's`, () => {
    assert.deepEqual(apiProblems(render(overlay)), []);
  });

  test(`${overlay}: every edge presents the same SFTP host keys`, () => {
    const secrets = overlay === 'prod' ? (loadYamlDocuments(PROD_SECRETS) as Resource[]) : [];
    assert.deepEqual(hostKeyProblems(render(overlay), secrets), []);
  });

  test(`${overlay}: the worker's configuration and pipelines load, and it shares the edge's volume, Redis prefix and data folder`, () => {
    assert.deepEqual(workerProblems(render(overlay)), []);
  });

  test(`${overlay}: autoscalers and disruption budget`, () => {
    assert.deepEqual(autoscalingProblems(render(overlay)), []);
  });
}

test('dev runs Redis in the namespace; prod points at an external Redis and a ReadWriteMany volume', () => {
  const dev = render('dev');
  assert.ok(find(dev, 'Deployment', 'redis') && find(dev, 'Service', 'redis'));
  assert.ok(dev.every((o) => o.kind === 'Namespace' || o.metadata.namespace === 'ftp-dev'));
  assert.equal(edgeDeployment(dev).spec.template.spec.containers[0].image, 'ftp-edge:dev');

  const prod = render('prod');
  assert.deepEqual(prodProblems(prod, loadYamlDocuments(PROD_SECRETS) as Resource[]), []);
  assert.ok(prod.every((o) => o.kind === 'Namespace' || o.metadata.namespace === 'ftp'));
  assert.equal(edgeDeployment(prod).spec.template.spec.containers[0].image, 'registry.example.com/ftp/ftp-edge:1.0.0');
  assert.equal(edgeConfig(prod).config?.pasvAddress, '203.0.113.10');
  // Production secrets are created out of band: applying the overlay must never overwrite them.
  assert.equal(prod.filter((o) => o.kind === 'Secret').length, 0);
});

test('SFTP: Service port 22 to the pods\' sftp port, host keys from a Secret in prod and from the shared volume in dev, policy admits it', () => {
  const prod = render('prod');
  const { config, sftp } = edgeConfig(prod);
  assert.equal(sftp?.port, 2222);
  const container = edgeDeployment(prod).spec.template.spec.containers[0];
  assert.deepEqual(container.ports.find((p: { name: string }) => p.name === 'sftp'), { name: 'sftp', containerPort: 2222 });
  const service = find(prod, 'Service', 'ftp')!;
  assert.deepEqual(service.spec.ports.find((p: { port: number }) => p.port === 22), { name: 'sftp', port: 22, targetPort: 'sftp', protocol: 'TCP' });

  // The Secret's two keys, mounted read-only where FTP_SFTP_HOST_KEYS points, not readable by other users.
  assert.deepEqual(sftp?.hostKeys, ['/etc/ftp/ssh/ssh_host_ed25519_key', '/etc/ftp/ssh/ssh_host_rsa_key']);
  assert.deepEqual(container.volumeMounts.find((m: { name: string }) => m.name === 'sftp-host-keys'), { name: 'sftp-host-keys', mountPath: '/etc/ftp/ssh', readOnly: true });
  const volume = edgeDeployment(prod).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'sftp-host-keys');
  assert.deepEqual(volume.secret, { secretName: 'ftp-sftp-host-keys', defaultMode: 0o440 });
  const example = find(loadYamlDocuments(PROD_SECRETS) as Resource[], 'Secret', 'ftp-sftp-host-keys')!;
  assert.deepEqual(Object.keys(example.stringData).sort(), ['ssh_host_ed25519_key', 'ssh_host_rsa_key']);
  // The example holds placeholders, never a private key.
  for (const value of Object.values<string>(example.stringData)) assert.doesNotMatch(value, /PRIVATE KEY/);

  const ingress = find(prod, 'NetworkPolicy', 'ftp-edge-ingress')!.spec.ingress;
  assert.ok(ingress.some((r: { from?: unknown; ports: Array<{ port: number }> }) => !r.from && r.ports.some((p) => p.port === 2222)));

  // Dev: no Secret; the first edge makes the keys on the shared volume, next to the users file and certificate.
  const dev = render('dev');
  const devSettings = edgeConfig(dev);
  assert.deepEqual(devSettings.sftp?.hostKeys, []);
  assert.deepEqual(devSettings.sftp?.generatedKeys, ['/data/tls/ssh_host_ed25519_key', '/data/tls/ssh_host_rsa_key']);
  assert.ok(!edgeDeployment(dev).spec.template.spec.volumes.some((v: { name: string }) => v.name === 'sftp-host-keys'));
  assert.equal(config?.proxyProtocolFrom.length, 0, 'the base expects no PROXY header (externalTrafficPolicy Local), for SFTP as for FTP');
});

test('the optional KEDA ScaledObject scales the worker Deployment on BullMQ\'s list of waiting upload jobs', () => {
  const [auth, scaled] = loadYamlDocuments(join(K8S, 'optional', 'worker-keda.yaml')) as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  const objs = render('prod');
  const prefix = find(objs, 'ConfigMap', 'ftp-edge')!.data.FTP_REDIS_PREFIX as string;
  const [trigger] = scaled.spec.triggers;
  assert.equal(trigger.metadata.listName, `${queuePrefix(prefix)}:${UPLOAD_QUEUE}:wait`);
  assert.equal(trigger.authenticationRef.name, auth.metadata.name);
  assert.ok(find(objs, 'Deployment', scaled.spec.scaleTargetRef.name));
});

test('a wrong field fails the Kubernetes validation: wrong type, unknown key, bad port, missing required field, unknown kind', async () => {
  const objs = render('prod');
  const cases: Array<[string, Resource, RegExp]> = [];
  const broken = (label: string, kind: string, name: string, change: (o: any) => void, expected: RegExp) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const copy = clone(find(objs, kind, name))!;
    change(copy);
    cases.push([label, copy as Resource, expected]);
  };
  broken('replicas', 'Deployment', 'ftp-edge', (d) => (d.spec.replicas = 'three'), /replicas must be integer/);
  broken('typo', 'Deployment', 'ftp-edge', (d) => (d.spec.template.spec.containers[0].imagePullPolcy = 'Always'), /unknown field spec\.template\.spec\.containers\[0\]\.imagePullPolcy/);
  broken('containerPort', 'Deployment', 'ftp-edge', (d) => (d.spec.template.spec.containers[0].ports[0].containerPort = '2121/tcp'), /containerPort must be integer/);
  broken('selector', 'Deployment', 'ftp-edge', (d) => delete d.spec.selector, /required property '?selector/);
  broken('servicePort', 'Service', 'ftp', (s) => (s.spec.ports[1].port = 'thirty-thousand'), /port must be integer/);
  broken('monitorSelector', 'ServiceMonitor', 'ftp-edge', (m) => delete m.spec.selector, /required property '?selector/);
  broken('monitorTypo', 'ServiceMonitor', 'ftp-edge', (m) => (m.spec.endpoints[0].intervall = '15s'), /unknown field spec\.endpoints\[0\]\.intervall/);
  broken('policyPort', 'NetworkPolicy', 'ftp-edge-ingress', (n) => (n.spec.ingress[0].ports[0].endport = 30019), /unknown field spec\.ingress\[0\]\.ports\[0\]\.endport/);
  cases.push(['kind', { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }, /no schema for example\.com\/v1 Widget/]);

  // One validation run for all of them (one TypeScript program), then each case must have its own error.
  const errors = await validateAll(cases.map(([label, obj]) => ({ obj, where: label })));
  for (const [label, , expected] of cases) {
    const own = errors.filter((e) => e.startsWith(`${label}: `)).join('\n');
    assert.match(own, expected, `${label}: ${own || 'no error'}`);
  }
});

test('a broken wiring fails the consistency checks', () => {
  const objs = render('prod');
  const change = (mutate: (o: Resource[]) => void) => {
    const copy = clone(objs);
    mutate(copy);
    return copy;
  };
  // A passive port missing from the Service, a drain longer than the grace period, a PASV address unlike the LB's.
  const lessPorts = change((o) => (find(o, 'Service', 'ftp') as any).spec.ports.pop()); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.match(edgeProblems(lessPorts).join('\n'), /passive ports .* differ from FTP_PASV_RANGE 30000-30019/);
  const longDrain = change((o) => (find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_DRAIN_SECONDS = '900'));
  assert.match(edgeProblems(longDrain).join('\n'), /terminationGracePeriodSeconds 330 < preStop 10 \+ FTP_DRAIN_SECONDS 900/);
  const otherAddress = change((o) => (find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_PASV_ADDRESS = '198.51.100.7'));
  assert.match(edgeProblems(otherAddress).join('\n'), /FTP_PASV_ADDRESS 198\.51\.100\.7 differs from the Service's loadBalancerIP 203\.0\.113\.10/);
  // A value the edge itself would refuse, a missing Secret key, an invalid pipelines file.
  const badRange = change((o) => (find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_PASV_RANGE = '30019-30000'));
  assert.match(edgeProblems(badRange).join('\n'), /FTP_PASV_RANGE: range start 30019 is above its end 30000/);
  assert.match(referenceProblems(objs, []).join('\n'), /Secret key ftp-secrets\/REDIS_URL missing/);
  const badPipeline = change((o) => (find(o, 'ConfigMap', 'ftp-pipelines')!.data['pipelines.yaml'] = 'pipelines:\n  - name: x\n    steps: [{ shred: {} }]\n'));
  assert.match(workerProblems(badPipeline).join('\n'), /unknown step "shred"/);
  const root = change((o) => (edgeDeployment(o).spec.template.spec.securityContext.runAsUser = 0));
  assert.match(hardeningProblems(root).join('\n'), /Deployment\/ftp-edge: runAsNonRoot/);
});

test('a broken SFTP wiring fails the checks: Service port, container port, policy, host key Secret and mount', () => {
  const objs = render('prod');
  const secrets = loadYamlDocuments(PROD_SECRETS) as Resource[];
  const change = (mutate: (o: Resource[]) => void) => {
    const copy = clone(objs);
    mutate(copy);
    return copy;
  };
  const service = (o: Resource[]) => find(o, 'Service', 'ftp') as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const pod = (o: Resource[]) => edgeDeployment(o).spec.template.spec;
  const noSftpPort = change((o) => (service(o).spec.ports = service(o).spec.ports.filter((p: { port: number }) => p.port !== 22)));
  assert.match(edgeProblems(noSftpPort).join('\n'), /Service\/ftp: port 22 must go to FTP_SFTP_PORT 2222/);
  const wrongTarget = change((o) => (service(o).spec.ports.find((p: { port: number }) => p.port === 22).targetPort = 'ftp'));
  assert.match(edgeProblems(wrongTarget).join('\n'), /port 22 must go to FTP_SFTP_PORT 2222/);
  const otherPort = change((o) => (find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_SFTP_PORT = '2022'));
  assert.match(edgeProblems(otherPort).join('\n'), /container port 2022 \(FTP_SFTP_PORT\) not declared/);
  const closed = change((o) => {
    const rule = find(o, 'NetworkPolicy', 'ftp-edge-ingress')!.spec.ingress[0];
    rule.ports = rule.ports.filter((p: { port: number }) => p.port !== 2222);
  });
  assert.match(edgeProblems(closed).join('\n'), /NetworkPolicy: SFTP port 2222 must be open to all/);

  const unmounted = change((o) => (pod(o).containers[0].volumeMounts = pod(o).containers[0].volumeMounts.filter((m: { name: string }) => m.name !== 'sftp-host-keys')));
  assert.match(hostKeyProblems(unmounted, secrets).join('\n'), /\/etc\/ftp\/ssh\/ssh_host_ed25519_key is not in a mounted Secret/);
  const writable = change((o) => (pod(o).containers[0].volumeMounts.find((m: { name: string }) => m.name === 'sftp-host-keys').readOnly = false));
  assert.match(hostKeyProblems(writable, secrets).join('\n'), /mount \/etc\/ftp\/ssh must be readOnly/);
  const worldReadable = change((o) => (pod(o).volumes.find((v: { name: string }) => v.name === 'sftp-host-keys').secret.defaultMode = 0o644));
  assert.match(hostKeyProblems(worldReadable, secrets).join('\n'), /defaultMode 644 lets other users read the host keys/);
  const lessKeys = clone(secrets);
  delete (find(lessKeys, 'Secret', 'ftp-sftp-host-keys') as any).stringData.ssh_host_rsa_key; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.match(hostKeyProblems(objs, lessKeys).join('\n'), /Secret ftp-sftp-host-keys has no key ssh_host_rsa_key/);
  // Without FTP_SFTP_HOST_KEYS, keys made per pod in /tmp (an emptyDir) would differ from replica to replica.
  const perPod = change((o) => delete find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_SFTP_HOST_KEYS);
  assert.match(hostKeyProblems(perPod, secrets).join('\n'), /each edge makes \/tmp\/tls\/ssh_host_ed25519_key itself, on volume tmp, which pods do not share/);
});

test('prod: users in the external PostgreSQL from the ftp-secrets Secret, the API on its own port, and a broken wiring is caught', () => {
  const objs = render('prod');
  const secrets = loadYamlDocuments(PROD_SECRETS) as Resource[];
  const url = find(secrets, 'Secret', 'ftp-secrets')!.stringData.FTP_USERS_DATABASE_URL as string;
  assert.match(url, /^postgres:\/\//, 'the example Secret carries the database URL');
  const container = edgeDeployment(objs).spec.template.spec.containers[0];
  const ref = container.env.find((e: { name: string }) => e.name === 'FTP_USERS_DATABASE_URL').valueFrom.secretKeyRef;
  assert.deepEqual([ref.name, ref.key], ['ftp-secrets', 'FTP_USERS_DATABASE_URL']);
  const { config } = edgeConfig(objs);
  assert.equal(config?.apiPort, 9180);
  assert.deepEqual(container.ports.find((p: { name: string }) => p.name === 'api'), { name: 'api', containerPort: 9180 });
  const api = find(objs, 'Service', 'ftp-edge-api')!;
  assert.equal(api.spec.type, 'ClusterIP');
  assert.ok(!find(objs, 'Service', 'ftp')!.spec.ports.some((p: { targetPort: unknown }) => p.targetPort === 'api' || p.targetPort === 9180));
  // The database is outside the cluster: egress to its address range only.
  const egress = find(objs, 'NetworkPolicy', 'ftp-postgres-egress')!.spec.egress;
  assert.deepEqual(egress, [{ to: [{ ipBlock: { cidr: '10.20.1.0/24' } }], ports: [{ port: 5432, protocol: 'TCP' }] }]);

  const change = (mutate: (o: Resource[]) => void) => {
    const copy = clone(objs);
    mutate(copy);
    return copy;
  };
  const public_ = change((o) => (find(o, 'Service', 'ftp') as any).spec.ports.push({ name: 'api', port: 9180, targetPort: 'api', protocol: 'TCP' })); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.match(apiProblems(public_).join('\n'), /Service\/ftp exposes the admin API: only a ClusterIP Service may/);
  const open = change((o) => (find(o, 'NetworkPolicy', 'ftp-edge-ingress') as any).spec.ingress.push({ ports: [{ port: 9180, protocol: 'TCP' }] })); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.match(apiProblems(open).join('\n'), new RegExp(`API port 9180 must be open to the ${ADMIN_NAMESPACE} namespace only`));
  const plain = change((o) => {
    find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_USERS_DATABASE_URL = 'postgres://ftp:pw@db:5432/ftp';
  });
  assert.match(apiProblems(plain).join('\n'), /carries a password: take it from a Secret/);
  const noPort = change((o) => edgeDeployment(o).spec.template.spec.containers[0].ports.pop());
  assert.match(edgeProblems(noPort).join('\n'), /container port 9180 \(FTP_API_PORT\) not declared/);
  const off = change((o) => {
    find(o, 'ConfigMap', 'ftp-edge')!.data.FTP_API_PORT = '0';
  });
  assert.deepEqual(apiProblems(off), ['FTP_API_PORT is 0: the admin API is off']);
});
