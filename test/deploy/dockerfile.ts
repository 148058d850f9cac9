import { DockerfileParser, ModifiableInstruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';

/**
 * Dockerfile checks without a Docker engine: dockerfile-utils (the linter of the VS Code Docker extension: unknown
 * instructions, bad flags, malformed EXPOSE/HEALTHCHECK/… arguments) plus the properties our images promise.
 */

/** dockerfile-utils' diagnostics (syntax and argument errors), one line each. */
export function lintProblems(text: string): string[] {
  return validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
}

export interface ImageExpectations {
  /** The ports EXPOSEd by the runtime stage, as written (`2121`, `30000-30099`). */
  exposes: string[];
  /** The workspace the build stage builds (`npm run build --workspace NAME`). */
  workspace: string;
  /** The bundle the runtime stage copies from the build stage. */
  bundle: string;
}

/**
 * The properties of our images: every base image pinned to a major version; a multi-stage build whose runtime stage
 * copies only the bundle from the build stage; a non-root USER; no ADD of URLs; ENTRYPOINT in exec form (node is PID
 * 1 and receives SIGTERM itself; the shell form would put /bin/sh in between, which does not pass it on); the
 * expected EXPOSE ports.
 */
export function imageProblems(text: string, expect: ImageExpectations): string[] {
  const problems: string[] = [];
  const instructions = DockerfileParser.parse(text).getInstructions();
  const args = (i: (typeof instructions)[number]) => i.getArguments().map((a) => a.getValue());
  const stages: string[] = [];
  let final: typeof instructions = [];
  for (const instruction of instructions) {
    const keyword = instruction.getKeyword();
    if (keyword === 'FROM') {
      const [image, as, name] = args(instruction);
      if (!stages.includes(image)) {
        const tag = /^[^@]+:([^:/@]+)(@.*)?$/.exec(image)?.[1];
        if (!tag || !/^\d+/.test(tag)) problems.push(`FROM ${image}: pin the base image to a major version (e.g. node:20-bookworm-slim)`);
      }
      if (as?.toUpperCase() === 'AS' && name) stages.push(name);
      final = [];
    }
    final.push(instruction);
    if (keyword === 'ADD' && args(instruction).some((a) => /^(https?|git|ftp):\/\//i.test(a) || a.startsWith('git@'))) {
      problems.push(`ADD ${args(instruction).join(' ')}: no downloads in the build (COPY local files; fetch with a package manager)`);
    }
  }
  if (stages.length < 1) problems.push('build in a separate stage (multi-stage): the runtime image carries no compiler or sources');

  const user = final.filter((i) => i.getKeyword() === 'USER').map((i) => args(i)[0]).pop();
  if (!user) problems.push('the runtime stage needs a USER (the base image runs as root)');
  else if (/^(root|0)(:|$)/.test(user)) problems.push(`USER ${user}: run as a non-root user`);
  else if (!/^[1-9]\d*(:\d+)?$/.test(user)) problems.push(`USER ${user}: use a numeric user, which Kubernetes can check against runAsNonRoot`);

  const entry = final.filter((i) => ['ENTRYPOINT', 'CMD'].includes(i.getKeyword())).pop();
  if (!entry || !/^\s*\[/.test(entry.getRawArgumentsContent() ?? '')) problems.push('ENTRYPOINT in exec form (["node", …]) so that node receives SIGTERM');

  const exposed = final.filter((i) => i.getKeyword() === 'EXPOSE').flatMap(args).sort();
  const expected = [...expect.exposes].sort();
  if (JSON.stringify(exposed) !== JSON.stringify(expected)) problems.push(`EXPOSE ${exposed.join(' ')}: expected ${expected.join(' ')}`);

  const command = `npm run build --workspace ${expect.workspace}`;
  const builds = instructions.some((i) => i.getKeyword() === 'RUN' && (i.getRawArgumentsContent() ?? '').includes(command));
  if (!builds) problems.push(`the build stage must run npm run build --workspace ${expect.workspace}`);
  const fromStage = (i: (typeof instructions)[number]) =>
    i instanceof ModifiableInstruction && i.getFlags().some((f) => f.getName() === 'from' && stages.includes(f.getValue() ?? ''));
  const copiesBundle = final.some((i) => i.getKeyword() === 'COPY' && fromStage(i) && args(i).some((a) => a.endsWith(expect.bundle)));
  if (!copiesBundle) problems.push(`the runtime stage must COPY --from=<build stage> ${expect.bundle}`);
  return problems;
}

/** The paths the first stage COPYs from the build context (sources of COPY without --from). */
export function buildStageSources(text: string): string[] {
  const instructions = DockerfileParser.parse(text).getInstructions();
  const sources: string[] = [];
  for (const i of instructions.slice(1)) {
    if (i.getKeyword() === 'FROM') break;
    if (i.getKeyword() !== 'COPY' || (i instanceof ModifiableInstruction && i.getFlags().some((f) => f.getName() === 'from'))) continue;
    sources.push(...i.getArguments().slice(0, -1).map((a) => a.getValue().replace(/^\.\//, '').replace(/\/$/, '')));
  }
  return sources;
}

/** Whether .dockerignore leaves `path` out of the build context (its patterns: `**`, `*`, plain paths; a match on a folder covers its contents). */
export function dockerignored(path: string, dockerignore: string): boolean {
  const patterns = dockerignore.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (patterns.some((p) => p.startsWith('!'))) throw new Error('.dockerignore exceptions (!) are not supported by this check');
  const escape = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  const toRegExp = (p: string) => new RegExp(`^${p.split('**/').map((part) => part.split('*').map(escape).join('[^/]*')).join('(?:.*/)?')}$`);
  const regexps = patterns.map(toRegExp);
  const parts = path.split('/');
  return parts.some((_, i) => regexps.some((r) => r.test(parts.slice(0, i + 1).join('/'))));
}
