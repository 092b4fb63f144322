// The data plane of HyperSpector's own providers (mirroring `tc`, IDS overlay `vxlan`), run by the
// per-node agent (see docs/dataplane.md). Everything reaches the kernel through kernel-commands.ts.
export { NsenterKernelCommands, KernelCommandError, formatCommand, type KernelCommands, type KernelCommand } from './kernel-commands.ts';
export { namedNetns, netnsExists, netnsOfPid, type NetnsRef } from './netns.ts';
export { observeLinks, type LinkTable, type ObservedLink } from './links.ts';
export { carriesOurMirror, hooksForDirection, parseIngressQdisc, type MirrorDirection, type TcMirrorSpec } from './tc-mirror-plan.ts';
export { ensureServerMirror, ensureTcMirror, removeServerMirror, removeTcMirror, observeTc, type ServerMirrorSpec } from './tc-mirror.ts';
export { overlayMtu, vxlanOverhead, VXLAN_DEFAULT_PORT, type VxlanOverlaySpec } from './vxlan-overlay-plan.ts';
export { reconcileVxlanOverlay, removeVxlanOverlay } from './vxlan-overlay.ts';
export { ensureTapIsolation, observeIsolation, removeTapIsolation } from './tc-isolation.ts';
export { carriesOurIsolation, isolationSinkName, type TapIsolationSpec } from './tc-isolation-plan.ts';
