import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { REPO_ROOT } from '../../../testenv/repo-root.ts';

/** The modules a file imports for their values (`import type` and all-type specifier lists are erased). */
function valueImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?([\s\S]*?)\s*from\s+'([^']+)'/gm)) {
    const [, typeOnly, clause = '', source = ''] = m;
    if (typeOnly) continue;
    const braces = /^\{([\s\S]*)\}$/.exec(clause.trim());
    const specifiers = braces ? (braces[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean) : [clause];
    if (braces && specifiers.every((s) => s.startsWith('type '))) continue;
    out.push(source);
  }
  return out;
}

/** Every file the entry point loads at start (static imports; a dynamic import is loaded only when called). */
function staticGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (file: string) => {
    if (graph.has(file)) return;
    const imports = valueImports(file);
    graph.set(file, imports);
    for (const source of imports) if (source.startsWith('.')) visit(resolve(dirname(file), source));
  };
  visit(entry);
  return graph;
}

describe("the operator's memory: what it imports", () => {
  it("never loads @kubernetes/client-node's index at start (its generated API costs about 50 MiB resident)", () => {
    const graph = staticGraph(join(REPO_ROOT, 'src', 'main.ts'));
    assert.ok(graph.size > 20, `walked the operator's imports (${graph.size} files)`);
    const offenders = [...graph].filter(([, imports]) => imports.includes('@kubernetes/client-node')).map(([file]) => file.slice(REPO_ROOT.length + 1));
    assert.deepEqual(offenders, [], 'import Watch, RequestContext and the kubeconfig from their own modules (src/kube/client/light-kubeconfig.ts)');
  });
});
