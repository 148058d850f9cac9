import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * A small, offline kustomize: enough of `kustomize build` for the layouts under k8s/, nothing more. Any field or
 * directive outside the subset below is an error, never silently ignored, so an overlay cannot use a feature this
 * renderer would get wrong.
 *
 * Kustomization fields: `resources` (YAML files, possibly multi-document, and directories holding a
 * kustomization.yaml), `namespace`, `patches` (strategic-merge patch files given by `path`, matched by kind and name),
 * `images` (name, newName, newTag, digest).
 * Strategic merge: maps merge recursively, `null` deletes a key, lists of known Kubernetes types merge by their patch
 * merge key (containers and volumes by name, volumeMounts by mountPath, container ports by containerPort, Service
 * ports by port, …), other lists are replaced, `$patch: delete` removes a list element or a map and
 * `$patch: replace` replaces a map.
 * Order as in kustomize: resources, then patches, then namespace, then images.
 */

export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

type Obj = Record<string, unknown>;

const SUPPORTED_FIELDS = ['apiVersion', 'kind', 'resources', 'namespace', 'patches', 'images'];
const SUPPORTED_IMAGE_FIELDS = ['name', 'newName', 'newTag', 'digest'];

/** Kinds that live outside namespaces: `namespace:` leaves them alone. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
  'IngressClass',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
]);

/**
 * Patch merge keys of the list fields that have one in the Kubernetes API (x-kubernetes-patch-merge-key), by field
 * name. `ports` depends on where it is: a Service's ports merge by port, a container's by containerPort.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
};

export class KustomizeError extends Error {
  override name = 'KustomizeError';
}

const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every non-empty YAML document of a file; duplicate keys and syntax errors are errors. */
export function loadYamlDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: true });
  if (!Array.isArray(docs)) throw new KustomizeError(`${file}: not a YAML stream`);
  const out: unknown[] = [];
  docs.forEach((doc, i) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new KustomizeError(`${file} (document ${i + 1}): ${problems.map((p) => p.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  });
  return out;
}

function asResource(value: unknown, where: string): Resource {
  const typed = isObj(value) && typeof value.apiVersion === 'string' && typeof value.kind === 'string';
  if (!typed || !isObj(value.metadata) || typeof value.metadata.name !== 'string') {
    throw new KustomizeError(`${where}: expected a Kubernetes object with apiVersion, kind and metadata.name`);
  }
  return value as Resource;
}

export const resourceId = (r: Pick<Resource, 'kind' | 'metadata'>) => `${r.kind}/${r.metadata.namespace ? `${r.metadata.namespace}/` : ''}${r.metadata.name}`;

/** The files a kustomization lists as patches (they are partial objects, not resources). */
export function patchFilesOf(dir: string): string[] {
  const k = readKustomization(dir);
  return ((k.patches as Obj[] | undefined) ?? []).map((p) => resolve(dir, p.path as string));
}

function readKustomization(dir: string): Obj {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new KustomizeError(`${dir}: no kustomization.yaml`);
  const docs = loadYamlDocuments(file);
  if (docs.length !== 1 || !isObj(docs[0])) throw new KustomizeError(`${file}: expected one mapping`);
  const k = docs[0];
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.includes(key)) {
      throw new KustomizeError(`${file}: field "${key}" is not supported by this renderer (supported: ${SUPPORTED_FIELDS.join(', ')})`);
    }
  }
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') {
    throw new KustomizeError(`${file}: expected apiVersion kustomize.config.k8s.io/v1beta1 and kind Kustomization`);
  }
  return k;
}

/** `kustomize build DIR`: the rendered objects, in resource order. */
export function build(dir: string): Resource[] {
  const root = resolve(dir);
  const k = readKustomization(root);
  const file = join(root, 'kustomization.yaml');

  let resources: Resource[] = [];
  for (const entry of (k.resources as unknown[] | undefined) ?? []) {
    if (typeof entry !== 'string') throw new KustomizeError(`${file}: resources: expected paths`);
    if (/^[a-z]+:\/\//i.test(entry) || entry.startsWith('git@')) throw new KustomizeError(`${file}: remote resource "${entry}" is not supported (offline)`);
    const path = resolve(root, entry);
    if (!existsSync(path)) throw new KustomizeError(`${file}: resource "${entry}" does not exist`);
    if (statSync(path).isDirectory()) resources.push(...build(path));
    else resources.push(...loadYamlDocuments(path).map((doc, i) => asResource(doc, `${path} (document ${i + 1})`)));
  }
  const seen = new Set<string>();
  for (const r of resources) {
    if (seen.has(resourceId(r))) throw new KustomizeError(`${file}: ${resourceId(r)} is defined twice`);
    seen.add(resourceId(r));
  }

  for (const entry of (k.patches as unknown[] | undefined) ?? []) {
    if (!isObj(entry) || typeof entry.path !== 'string' || Object.keys(entry).length !== 1) {
      throw new KustomizeError(`${file}: patches: only { path: FILE } entries are supported (no target, no inline patch)`);
    }
    const path = resolve(root, entry.path);
    for (const [i, doc] of loadYamlDocuments(path).entries()) {
      const patch = asResource(doc, `${path} (document ${i + 1})`);
      const index = resources.findIndex(
        (r) =>
          r.kind === patch.kind &&
          r.apiVersion === patch.apiVersion &&
          r.metadata.name === patch.metadata.name &&
          (patch.metadata.namespace === undefined || r.metadata.namespace === patch.metadata.namespace),
      );
      if (index < 0) throw new KustomizeError(`${path}: patch target ${patch.apiVersion} ${resourceId(patch)} not found`);
      resources[index] = strategicMerge(resources[index], patch, resources[index].kind) as Resource;
    }
  }

  if (k.namespace !== undefined) {
    if (typeof k.namespace !== 'string') throw new KustomizeError(`${file}: namespace: expected a name`);
    const namespace = k.namespace;
    resources = resources.map((r) => (CLUSTER_SCOPED.has(r.kind) ? r : { ...r, metadata: { ...r.metadata, namespace } }));
  }

  for (const image of (k.images as unknown[] | undefined) ?? []) {
    if (!isObj(image) || typeof image.name !== 'string') throw new KustomizeError(`${file}: images: each entry needs a name`);
    for (const key of Object.keys(image)) {
      if (!SUPPORTED_IMAGE_FIELDS.includes(key)) throw new KustomizeError(`${file}: images: field "${key}" is not supported`);
    }
    resources = resources.map((r) => setImage(r, image as { name: string; newName?: string; newTag?: string; digest?: string }));
  }
  return resources;
}

/** Splits `registry:5000/a/b:tag@sha256:…` into name, tag and digest (a colon after the last slash starts the tag). */
export function parseImage(image: string): { name: string; tag?: string; digest?: string } {
  const [rest, digest] = image.split('@');
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  return colon > slash ? { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest } : { name: rest, digest };
}

function setImage(resource: Resource, image: { name: string; newName?: string; newTag?: string; digest?: string }): Resource {
  const copy = structuredClone(resource);
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (isObj(node)) {
      for (const field of ['containers', 'initContainers']) {
        const list = node[field];
        if (!Array.isArray(list)) continue;
        for (const container of list) {
          if (!isObj(container) || typeof container.image !== 'string') continue;
          const current = parseImage(container.image);
          if (current.name !== image.name) continue;
          const name = image.newName ?? current.name;
          if (image.digest) container.image = `${name}@${image.digest}`;
          else {
            const tag = image.newTag ?? current.tag;
            container.image = `${name}${tag ? `:${tag}` : ''}${current.digest && !image.newTag ? `@${current.digest}` : ''}`;
          }
        }
      }
      Object.values(node).forEach(visit);
    }
  };
  visit(copy);
  return copy;
}

function mergeKeyOf(kind: string, path: string[]): string | undefined {
  const field = path[path.length - 1];
  if (field === 'ports') {
    if (kind === 'Service' && path.join('.') === 'spec.ports') return 'port';
    if (path[path.length - 2] === 'containers' || path[path.length - 2] === 'initContainers') return 'containerPort';
    return undefined;
  }
  return MERGE_KEYS[field];
}

/** Applies a strategic-merge patch to an object of `kind` (the subset described at the top of this file). */
export function strategicMerge(target: unknown, patch: unknown, kind: string, path: string[] = []): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const directive = patch.$patch;
  if (directive !== undefined && directive !== 'replace' && directive !== 'delete') {
    throw new KustomizeError(`${path.join('.') || 'patch'}: $patch: ${String(directive)} is not supported`);
  }
  if (directive === 'replace') {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  const out: Obj = isObj(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new KustomizeError(`${[...path, key].join('.')}: directive ${key} is not supported`);
    const here = [...path, key];
    if (value === null) delete out[key];
    else if (isObj(value) && value.$patch === 'delete') {
      if (Object.keys(value).length !== 1) throw new KustomizeError(`${here.join('.')}: $patch: delete on a map takes no other keys`);
      delete out[key];
    } else if (Array.isArray(value)) out[key] = mergeList(out[key], value, kind, here);
    else if (isObj(value)) out[key] = strategicMerge(out[key], value, kind, here);
    else out[key] = value;
  }
  return out;
}

function mergeList(target: unknown, patch: unknown[], kind: string, path: string[]): unknown[] {
  const mergeKey = mergeKeyOf(kind, path);
  const where = path.join('.');
  if (!mergeKey) {
    if (patch.some((item) => isObj(item) && '$patch' in item)) throw new KustomizeError(`${where}: $patch in a list without a merge key`);
    return structuredClone(patch);
  }
  const out = Array.isArray(target) ? structuredClone(target) : [];
  for (const item of patch) {
    if (!isObj(item) || item[mergeKey] === undefined) throw new KustomizeError(`${where}: every element needs its merge key "${mergeKey}"`);
    const index = out.findIndex((existing) => isObj(existing) && existing[mergeKey] === item[mergeKey]);
    if (item.$patch === 'delete') {
      if (index < 0) throw new KustomizeError(`${where}: nothing to delete with ${mergeKey}=${String(item[mergeKey])}`);
      out.splice(index, 1);
    } else if (index >= 0) out[index] = strategicMerge(out[index], item, kind, path);
    else out.push(strategicMerge(undefined, item, kind, path));
  }
  return out;
}
