import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { queuePrefix, UPLOAD_QUEUE } from '@ftp/upload-events';
import { build, loadYamlDocuments, patchFilesOf, type Resource } from './kustomize';
import { validateAll } from './k8sSchema';
import {
  autoscalingProblems,
  edgeConfig,
  edgeProblems,
  find,
  hardeningProblems,
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
