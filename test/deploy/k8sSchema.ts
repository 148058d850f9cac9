import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { Resource } from './kustomize';

/**
 * Offline validation of Kubernetes objects, in two layers:
 * 1. the JSON schemas of Kubernetes 1.27 compiled into kubernetes-models (types, required fields, enums, formats),
 *    and of the Prometheus Operator and KEDA custom resources from the same project's packages;
 * 2. unknown fields: those schemas allow any extra key (as the API's OpenAPI does), so a misspelt `imagePullPolcy` or a
 *    key at the wrong level would pass. The same packages' TypeScript declarations are exact, so each object is
 *    type-checked as an object literal of its type: TypeScript's excess-property check rejects every unknown key at
 *    any depth, like `kubectl apply --validate=strict`.
 * A kind without a schema package is an error, not a skip.
 */

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

/** Custom resource groups and the package that has their schemas; every other group is in kubernetes-models. */
const CRD_PACKAGES: Record<string, string> = {
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
  'keda.sh': '@kubernetes-models/keda',
};

/** The module with the model of apiVersion/kind, e.g. kubernetes-models/apps/v1/Deployment. */
export function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (!/^[A-Za-z0-9]+$/.test(kind) || !/^[a-z0-9]+$/.test(version) || !/^[a-z0-9.-]*$/.test(group)) {
    throw new Error(`odd apiVersion/kind ${apiVersion} ${kind}`);
  }
  const pkg = CRD_PACKAGES[group] ?? 'kubernetes-models';
  return `${pkg}/${group ? `${group}/` : ''}${version}/${kind}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Schema errors of one object (empty when valid). */
export async function schemaErrors(obj: Resource): Promise<string[]> {
  let Model: ModelClass | undefined;
  try {
    const mod = (await import(modelModule(obj.apiVersion, obj.kind))) as Record<string, ModelClass>;
    Model = mod[obj.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

export interface Located {
  obj: Resource;
  /** Where the object comes from, for messages: file and document, or overlay. */
  where: string;
}

let previous: ts.Program | undefined;

/** Unknown fields and wrong types of many objects, checked in one TypeScript program; one message per problem. */
export function typeErrors(items: Located[]): string[] {
  const fileName = join(ROOT, 'test', 'deploy', '__manifests__.ts');
  const imports: string[] = [];
  const bodies: string[] = [];
  items.forEach(({ obj }, i) => {
    imports.push(`import type { I${obj.kind} as T${i} } from '${modelModule(obj.apiVersion, obj.kind)}';`);
    bodies.push(`export const r${i}: T${i} = ${JSON.stringify(obj, null, 2)};\n`);
  });
  const head = `${imports.join('\n')}\n`;
  const starts: number[] = [];
  let offset = head.length;
  for (const body of bodies) {
    starts.push(offset);
    offset += body.length;
  }
  const source = head + bodies.join('');

  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === fileName ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === fileName || fileExists(name);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  const program = ts.createProgram([fileName], options, host, previous);
  previous = program;
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(fileName)!;
  const errors: string[] = [];
  const at = (index: number) => `${items[index].where}: ${items[index].obj.kind}/${items[index].obj.metadata.name}`;

  // Unknown keys, every one of them (the compiler's own excess-property error stops at the first per literal).
  const walk = (node: ts.Expression, path: string, index: number): void => {
    if (ts.isArrayLiteralExpression(node)) node.elements.forEach((element, i) => walk(element, `${path}[${i}]`, index));
    if (!ts.isObjectLiteralExpression(node)) return;
    const type = checker.getContextualType(node);
    const members = type ? (type.isUnion() ? type.types : [type]) : [];
    const open = members.length === 0 || members.some((t) => checker.getIndexInfosOfType(t).length > 0 || t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown));
    const known = new Set(members.flatMap((t) => checker.getPropertiesOfType(t).map((p) => p.name)));
    for (const property of node.properties) {
      if (!ts.isPropertyAssignment(property)) continue;
      const name = ts.isStringLiteral(property.name) ? property.name.text : property.name.getText(file);
      const here = path ? `${path}.${name}` : name;
      if (!open && !known.has(name)) {
        errors.push(`${at(index)}: unknown field ${here} (${checker.typeToString(checker.getNonNullableType(type!))} has no "${name}")`);
      }
      else walk(property.initializer, here, index);
    }
  };
  file.statements.forEach((statement) => {
    if (!ts.isVariableStatement(statement)) return;
    for (const declaration of statement.declarationList.declarations) {
      const index = Number(declaration.name.getText(file).slice(1));
      if (declaration.initializer) walk(declaration.initializer, '', index);
    }
  });

  // Wrong types (a string where a number belongs, …): the compiler's diagnostics, less the excess-property ones above.
  const EXCESS_PROPERTY = 2353;
  for (const d of [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]) {
    if (d.code === EXCESS_PROPERTY) continue;
    const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    const start = d.start ?? 0;
    let index = -1;
    while (index + 1 < starts.length && starts[index + 1] <= start) index++;
    const line = source.slice(source.lastIndexOf('\n', start) + 1, source.indexOf('\n', start)).trim();
    errors.push(index < 0 ? `import: ${text}` : `${at(index)}: ${text} (at ${line})`);
  }
  return errors;
}

/** Both layers for many objects. */
export async function validateAll(items: Located[]): Promise<string[]> {
  const errors: string[] = [];
  const typed: Located[] = [];
  for (const item of items) {
    const messages = await schemaErrors(item.obj);
    errors.push(...messages.map((message) => `${item.where}: ${item.obj.kind}/${item.obj.metadata.name}: ${message}`));
    // A kind without a schema package has no type declarations either: reported once, above.
    if (!messages.some((m) => m.startsWith('no schema for'))) typed.push(item);
  }
  if (typed.length > 0) errors.push(...typeErrors(typed));
  return errors;
}
