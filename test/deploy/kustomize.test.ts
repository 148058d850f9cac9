import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { build, KustomizeError, parseImage, strategicMerge } from './kustomize';

// The small kustomize of ./kustomize.ts: the semantics k8s/ relies on, and a clear error for everything else.

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A directory tree from { 'path/file.yaml': text }. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'kustomize-test-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const KUSTOMIZATION = 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n';
const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  template:
    spec:
      containers:
        - name: main
          image: registry.local:5000/team/app:1.0
          env:
            - { name: A, value: "1" }
            - { name: B, value: "2" }
          ports:
            - { name: http, containerPort: 8080 }
          volumeMounts:
            - { name: data, mountPath: /data }
            - { name: tmp, mountPath: /tmp }
          args: [--one, --two]
        - name: sidecar
          image: busybox
      volumes:
        - { name: data, emptyDir: {} }
        - { name: tmp, emptyDir: {} }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings }
data: { X: "1", Y: "2" }
---
apiVersion: v1
kind: Namespace
metadata: { name: elsewhere }
`;

test('strategic merge: maps merge, null deletes, keyed lists merge by their merge key, other lists are replaced', () => {
  const target = { spec: { a: 1, b: { c: 2, d: 3 }, list: [1, 2], containers: [{ name: 'x', image: 'i', env: [{ name: 'A', value: '1' }] }] } };
  const patch = { spec: { b: { c: 20, d: null }, list: [9], containers: [{ name: 'x', env: [{ name: 'B', value: '2' }] }, { name: 'y', image: 'j' }] } };
  assert.deepEqual(strategicMerge(target, patch, 'Deployment'), {
    spec: {
      a: 1,
      b: { c: 20 },
      list: [9],
      containers: [
        { name: 'x', image: 'i', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
        { name: 'y', image: 'j' },
      ],
    },
  });
  // Service ports merge by port, container ports by containerPort.
  const service = { spec: { ports: [{ name: 'a', port: 21, targetPort: 2121 }] } };
  assert.deepEqual(strategicMerge(service, { spec: { ports: [{ port: 21, targetPort: 'ftp' }] } }, 'Service'), { spec: { ports: [{ name: 'a', port: 21, targetPort: 'ftp' }] } });
  // $patch: replace swaps a whole map; the input is never changed.
  const replaced = strategicMerge(target, { spec: { b: { $patch: 'replace', e: 5 } } }, 'Deployment') as { spec: { b: unknown } };
  assert.deepEqual(replaced.spec.b, { e: 5 });
  assert.deepEqual(target.spec.b, { c: 2, d: 3 });
});

test('an overlay: resources from a base directory, patches by kind and name with $patch: delete, namespace, images', () => {
  const root = tree({
    'base/kustomization.yaml': `${KUSTOMIZATION}resources: [app.yaml]\n`,
    'base/app.yaml': DEPLOYMENT,
    'overlay/kustomization.yaml': `${KUSTOMIZATION}namespace: team\nresources: [../base, extra.yaml]\npatches:\n  - path: patch.yaml\n  - path: cm.yaml\nimages:\n  - { name: registry.local:5000/team/app, newName: example.com/app, newTag: "2.0" }\n  - { name: busybox, digest: "sha256:abc" }\n`,
    'overlay/extra.yaml': 'apiVersion: v1\nkind: Service\nmetadata: { name: app }\nspec: { ports: [{ port: 80 }] }\n',
    'overlay/patch.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  template:
    spec:
      containers:
        - name: main
          env: [{ name: B, value: "3" }]
          ports: [{ containerPort: 8080, name: web }]
          volumeMounts: [{ mountPath: /tmp, $patch: delete }]
          args: [--three]
      volumes: [{ name: tmp, $patch: delete }]
`,
    'overlay/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings }\ndata: { Y: "3", Z: "4" }\n',
  });
  const out = build(join(root, 'overlay'));
  assert.deepEqual(out.map((r) => `${r.kind}/${r.metadata.namespace ?? '-'}/${r.metadata.name}`), ['Deployment/team/app', 'ConfigMap/team/settings', 'Namespace/-/elsewhere', 'Service/team/app']);
  const [containers, volumes] = [(out[0] as any).spec.template.spec.containers, (out[0] as any).spec.template.spec.volumes]; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual(containers[0], {
    name: 'main',
    image: 'example.com/app:2.0',
    env: [{ name: 'A', value: '1' }, { name: 'B', value: '3' }],
    ports: [{ name: 'web', containerPort: 8080 }],
    volumeMounts: [{ name: 'data', mountPath: '/data' }],
    args: ['--three'],
  });
  assert.equal(containers[1].image, 'busybox@sha256:abc');
  assert.deepEqual(volumes, [{ name: 'data', emptyDir: {} }]);
  assert.deepEqual(out[1].data, { X: '1', Y: '3', Z: '4' });
});

test('image references split into name, tag and digest', () => {
  assert.deepEqual(parseImage('registry.local:5000/a/b:1.2'), { name: 'registry.local:5000/a/b', tag: '1.2', digest: undefined });
  assert.deepEqual(parseImage('registry.local:5000/a/b'), { name: 'registry.local:5000/a/b', digest: undefined });
  assert.deepEqual(parseImage('node:20@sha256:ff'), { name: 'node', tag: '20', digest: 'sha256:ff' });
});

test('what the renderer does not support, or cannot find, is an error rather than silently ignored', () => {
  const failsWith = (files: Record<string, string>, pattern: RegExp) => assert.throws(() => build(tree(files)), (err: Error) => err instanceof KustomizeError && pattern.test(err.message));
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}commonLabels: { a: b }\n` }, /field "commonLabels" is not supported/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [https://github.com/x/y]\n` }, /remote resource/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [missing.yaml]\n` }, /does not exist/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml]\npatches: [{ path: p.yaml }]\n`, 'a.yaml': DEPLOYMENT, 'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: other }\n' }, /patch target apps\/v1 Deployment\/other not found/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml]\npatches: [{ path: p.yaml, target: { kind: Deployment } }]\n`, 'a.yaml': DEPLOYMENT, 'p.yaml': '' }, /only \{ path: FILE \}/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml, a.yaml]\n`, 'a.yaml': DEPLOYMENT }, /defined twice/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml]\n`, 'a.yaml': 'kind: ConfigMap\nmetadata: { name: x }\nmetadata: { name: y }\n' }, /unique|duplicate/i);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml]\npatches: [{ path: p.yaml }]\n`, 'a.yaml': DEPLOYMENT, 'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: app }\nspec: { template: { spec: { volumes: [{ name: nope, $patch: delete }] } } }\n' }, /nothing to delete with name=nope/);
  failsWith({ 'kustomization.yaml': `${KUSTOMIZATION}resources: [a.yaml]\npatches: [{ path: p.yaml }]\n`, 'a.yaml': DEPLOYMENT, 'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: app }\nspec: { $retainKeys: [a] }\n' }, /\$retainKeys is not supported/);
});
