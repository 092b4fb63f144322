// Loaded kernel modules, as /proc/modules lists them (the kernel's `modules` list of struct
// module), and modules hidden from that list: every loaded module also has a kobject in
// module_kset (/sys/module/<name>), which a rootkit that unlinks itself from `modules` usually
// keeps. A module_kobject whose module is not on the list is hidden. (Built-in modules have
// kobjects for their parameters too, with no struct module: those are skipped.)
import type { KernelProfile } from './kernel-profile.ts';
import type { AddressSpace } from './page-table.ts';

export interface GuestModule {
  name: string;
  /** MODULE_STATE_*: Live, Coming, Going, Unformed. */
  state: string;
  /** Kernel virtual address of its struct module. */
  address: string;
}

const MAX_MODULES = 65536;
const STATES = ['Live', 'Coming', 'Going', 'Unformed'];

/** Walks a circular list_head from `head`, bounded and cycle-checked; undefined when torn. */
function listEntries(kernel: AddressSpace, head: bigint): bigint[] | undefined {
  const out: bigint[] = [];
  const seen = new Set<bigint>();
  let prev = head;
  for (let node = kernel.readU64(head); node !== head; node = kernel.readU64(node)) {
    if (node === undefined || seen.has(node) || seen.size >= MAX_MODULES) return undefined;
    if (kernel.readU64(node + 8n) !== prev) return undefined; // changed under us
    seen.add(node);
    out.push(node);
    prev = node;
  }
  return out;
}

function readModule(kernel: AddressSpace, profile: KernelProfile, module: bigint): GuestModule | undefined {
  const d = profile.details!;
  const name = kernel.read(module + BigInt(d.module__name), 56);
  const state = kernel.read(module + BigInt(d.module__state), 4)?.readUInt32LE(0);
  if (!name || state === undefined) return undefined;
  const nul = name.indexOf(0);
  const text = name.toString('latin1', 0, nul < 0 ? name.length : nul);
  if (!/^[\w-]+$/.test(text)) return undefined;
  return { name: text, state: STATES[state] ?? String(state), address: `0x${module.toString(16)}` };
}

/** The `modules` list (runtime address of the list head). */
export function listModules(kernel: AddressSpace, profile: KernelProfile, modulesHead: bigint): GuestModule[] | undefined {
  const d = profile.details;
  if (!d) return undefined;
  const nodes = listEntries(kernel, modulesHead);
  if (!nodes) return undefined;
  const out: GuestModule[] = [];
  for (const node of nodes) {
    const m = readModule(kernel, profile, node - BigInt(d.module__list));
    if (!m) return undefined;
    out.push(m);
  }
  return out;
}

/** Modules with a kobject in module_kset but not on the `modules` list. */
export function findHiddenModules(kernel: AddressSpace, profile: KernelProfile, moduleKsetPointer: bigint, listed: readonly GuestModule[]): GuestModule[] | undefined {
  const d = profile.details;
  if (!d) return undefined;
  const kset = kernel.readU64(moduleKsetPointer);
  if (!kset) return undefined;
  const entries = listEntries(kernel, kset + BigInt(d.kset__list));
  if (!entries) return undefined;
  const known = new Set(listed.map((m) => m.address));
  const hidden: GuestModule[] = [];
  for (const entry of entries) {
    // kobject.entry → the module_kobject (its kobj is first) → its struct module, if any.
    const moduleKobject = entry - BigInt(d.kobject__entry);
    const module = kernel.readU64(moduleKobject + BigInt(d.module_kobject__mod));
    if (module === undefined) return undefined;
    if (module === 0n) continue; // built-in
    // The module's own mkobj must be this kobject: otherwise the pointer is not a module.
    if (module + BigInt(d.module__mkobj) !== moduleKobject) continue;
    if (known.has(`0x${module.toString(16)}`)) continue;
    const m = readModule(kernel, profile, module);
    if (m) hidden.push(m);
  }
  return hidden;
}
