// cloud-init for real guests — a TEST DOUBLE of what a VMI's cloudInitNoCloud volume becomes in a
// guest that runs cloud-init: virt-launcher hands the user data to the guest (a NoCloud seed disk),
// cloud-init's `write_files` module writes the files (init stage), and `scripts_user` runs the user's
// shell-script parts and the script the `runcmd` module wrote (final stage), with their output in
// /var/log/cloud-init-output.log. The test guest (busybox initramfs) has no cloud-init, so the
// real-guest backend applies the same user data through the guest's serial console once it booted.
//
// The user data is read as cloud-init reads it, from the VMI spec (userData, userDataBase64, or the
// Secret of `secretRef`, key `userdata` or `userData`): a `#cloud-config` document (YAML 1.1), a
// `#!` script, or a MIME multipart message of those (cloud-config parts merged in order: a part's
// `merge_how` with `list: append` extends the lists, otherwise a later part's key replaces the
// earlier one). Only what this project's user data uses is supported (write_files with text or
// base64 content, runcmd, shell-script parts); anything else is refused with an error naming it,
// never silently dropped. Network data is not applied (the test guest's network is set up by the
// harness).
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import type { GuestConsole } from './guest-console.ts';

export interface CloudInitFile {
  path: string;
  content: Buffer;
  /** Octal, as written in write_files (default 0644). */
  permissions: string;
}

export interface CloudInitPlan {
  files: CloudInitFile[];
  /** runcmd entries as the shell lines cloud-init's runcmd script holds. */
  runcmd: string[];
  /** Shell-script parts, in order. */
  scripts: string[];
}

export interface CloudInitReport {
  plan: CloudInitPlan;
  /** Exit status of each script run (the parts, then runcmd), in order. */
  exitCodes: number[];
  /** What the scripts printed (the guest's /var/log/cloud-init-output.log). */
  output: string;
}

interface VmiVolume {
  name: string;
  cloudInitNoCloud?: { userData?: string; userDataBase64?: string; secretRef?: { name?: string } };
  cloudInitConfigDrive?: { userData?: string; userDataBase64?: string; secretRef?: { name?: string } };
}

/** The VMI's user data as virt-launcher resolves it (undefined: the VMI has none). */
export async function resolveUserData(
  volumes: VmiVolume[],
  readSecret: (name: string) => Promise<Record<string, string> | undefined>,
): Promise<string | undefined> {
  const source = volumes.map((v) => v.cloudInitNoCloud ?? v.cloudInitConfigDrive).find(Boolean);
  if (!source) return undefined;
  if (source.userData !== undefined) return source.userData;
  if (source.userDataBase64 !== undefined) return Buffer.from(source.userDataBase64, 'base64').toString('utf8');
  if (source.secretRef?.name) {
    const data = await readSecret(source.secretRef.name);
    const encoded = data?.userdata ?? data?.userData;
    if (encoded === undefined) throw new Error(`cloud-init Secret ${source.secretRef.name} has no userdata (or userData) key`);
    return Buffer.from(encoded, 'base64').toString('utf8');
  }
  return undefined;
}

/** Single-quotes a string for POSIX sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

type CloudConfig = Record<string, unknown>;

const SUPPORTED_KEYS = new Set(['write_files', 'runcmd', 'merge_how', 'merge_type']);

function appendsLists(mergeHow: unknown): boolean {
  if (typeof mergeHow === 'string') return /list\([^)]*append/.test(mergeHow);
  if (Array.isArray(mergeHow)) {
    return mergeHow.some((m) => typeof m === 'object' && m !== null && (m as { name?: string }).name === 'list' && ((m as { settings?: string[] }).settings ?? []).includes('append'));
  }
  return false;
}

function mergeCloudConfig(into: CloudConfig, part: CloudConfig): void {
  for (const key of Object.keys(part)) {
    if (!SUPPORTED_KEYS.has(key)) throw new Error(`cloud-init stand-in: cloud-config key ${key} is not supported by the test guest`);
  }
  const append = appendsLists(part.merge_how ?? part.merge_type);
  for (const key of ['write_files', 'runcmd']) {
    if (part[key] === undefined) continue;
    if (!Array.isArray(part[key])) throw new Error(`cloud-init stand-in: ${key} is not a list`);
    into[key] = append && Array.isArray(into[key]) ? [...(into[key] as unknown[]), ...(part[key] as unknown[])] : part[key];
  }
}

function parseCloudConfig(text: string): CloudConfig {
  const doc: unknown = parse(text, { version: '1.1' }) ?? {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('cloud-init stand-in: a #cloud-config that is not a mapping');
  return doc as CloudConfig;
}

/** The parts of a MIME multipart message: content type and body. */
function multipartParts(message: string): Array<{ type: string; body: string }> {
  const headerEnd = message.search(/\r?\n\r?\n/);
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(message.slice(0, headerEnd))?.[1];
  if (!boundary) throw new Error('cloud-init stand-in: a multipart message without a boundary');
  const chunks = message.split(`--${boundary}`);
  const parts: Array<{ type: string; body: string }> = [];
  for (const chunk of chunks.slice(1)) {
    if (chunk.startsWith('--')) break;
    const text = chunk.replace(/^\r?\n/, '');
    const split = text.search(/\r?\n\r?\n/);
    const headers = text.slice(0, split);
    const body = text.slice(split).replace(/^\r?\n\r?\n/, '');
    if (/content-transfer-encoding:\s*base64/i.test(headers)) throw new Error('cloud-init stand-in: base64-encoded MIME parts are not supported by the test guest');
    const type = /content-type:\s*([^;\r\n]+)/i.exec(headers)?.[1]?.trim().toLowerCase() ?? 'text/plain';
    parts.push({ type, body });
  }
  return parts;
}

function fileContent(entry: Record<string, unknown>): Buffer {
  const content = String(entry.content ?? '');
  const encoding = String(entry.encoding ?? 'text').toLowerCase();
  if (encoding === 'text') return Buffer.from(content, 'utf8');
  if (encoding === 'b64' || encoding === 'base64') return Buffer.from(content, 'base64');
  throw new Error(`cloud-init stand-in: write_files encoding ${encoding} of ${String(entry.path)} is not supported by the test guest`);
}

/** What cloud-init would do with this user data, in the modules this project uses. */
export function planCloudInit(userData: string): CloudInitPlan {
  const config: CloudConfig = {};
  const scripts: string[] = [];
  const firstLine = userData.slice(0, userData.search(/\r?\n|$/)).trim();
  if (firstLine === '#cloud-config') {
    mergeCloudConfig(config, parseCloudConfig(userData));
  } else if (/^(content-type:\s*multipart\/|mime-version:)/i.test(firstLine)) {
    for (const part of multipartParts(userData)) {
      if (part.type === 'text/cloud-config') mergeCloudConfig(config, parseCloudConfig(part.body));
      else if (part.type === 'text/x-shellscript') scripts.push(part.body);
      else throw new Error(`cloud-init stand-in: MIME part ${part.type} is not supported by the test guest`);
    }
  } else if (firstLine.startsWith('#!')) {
    scripts.push(userData);
  } else {
    throw new Error(`cloud-init stand-in: unrecognized user data (first line ${JSON.stringify(firstLine.slice(0, 40))})`);
  }
  const files = ((config.write_files as Array<Record<string, unknown>> | undefined) ?? []).map((entry) => {
    if (typeof entry?.path !== 'string') throw new Error('cloud-init stand-in: a write_files entry without a path');
    return { path: entry.path, content: fileContent(entry), permissions: String(entry.permissions ?? '0644') };
  });
  // cloud-init's runcmd module: a list entry is one command with its arguments quoted, a string is a shell line.
  const runcmd = ((config.runcmd as unknown[] | undefined) ?? []).map((item) => (Array.isArray(item) ? item.map((a) => shQuote(String(a))).join(' ') : String(item)));
  return { files, runcmd, scripts };
}

/** Base64 characters sent per console line: the guest's tty takes at most 4095 bytes per line. */
const CHUNK = 2048;
const SCRIPTS_DIR = '/var/lib/cloud/instance/scripts';
export const CLOUD_INIT_OUTPUT_LOG = '/var/log/cloud-init-output.log';

/** Writes a file into the guest through its console, checked by its md5 (a garbled line is sent again). */
export async function writeGuestFile(console: GuestConsole, path: string, content: Buffer, permissions: string): Promise<void> {
  if (!/^[0-7]{3,4}$/.test(permissions)) throw new Error(`cloud-init stand-in: permissions ${permissions} of ${path} are not octal`);
  const encoded = content.toString('base64');
  const md5 = createHash('md5').update(content).digest('hex');
  const staging = '/tmp/.hs-cloud-init.b64';
  for (let attempt = 1; ; attempt++) {
    await console.run(`rm -f ${staging}`);
    for (let i = 0; i < encoded.length; i += CHUNK) await console.run(`printf '%s' '${encoded.slice(i, i + CHUNK)}' >> ${staging}`);
    const out = await console.run(
      `touch ${staging} && mkdir -p "$(dirname ${shQuote(path)})" && base64 -d ${staging} > ${shQuote(path)} && chmod ${permissions} ${shQuote(path)} && rm -f ${staging} && md5sum ${shQuote(path)}`,
    );
    if (out.includes(md5)) return;
    if (attempt === 3) throw new Error(`cloud-init stand-in: ${path} does not check out in the guest after 3 attempts (want md5 ${md5}):\n${out}`);
  }
}

/** Applies the plan in a booted guest: files, then the scripts (parts first, then runcmd), as cloud-init's stages do. */
export async function applyCloudInit(console: GuestConsole, plan: CloudInitPlan): Promise<CloudInitReport> {
  for (const file of plan.files) await writeGuestFile(console, file.path, file.content, file.permissions);
  const scripts = plan.scripts.map((body, i) => ({ name: `part-${String(i + 1).padStart(3, '0')}`, body }));
  if (plan.runcmd.length > 0) scripts.push({ name: 'runcmd', body: `#!/bin/sh\n${plan.runcmd.join('\n')}\n` });
  const exitCodes: number[] = [];
  await console.run(`mkdir -p /var/log && touch ${CLOUD_INIT_OUTPUT_LOG}`);
  for (const script of scripts) {
    const path = `${SCRIPTS_DIR}/${script.name}`;
    await writeGuestFile(console, path, Buffer.from(script.body, 'utf8'), '0700');
    const out = await console.run(`${path} >> ${CLOUD_INIT_OUTPUT_LOG} 2>&1; echo "@@CLOUD-INIT-EXIT=$?"`, 300_000);
    const code = /@@CLOUD-INIT-EXIT=(\d+)/.exec(out)?.[1];
    if (code === undefined) throw new Error(`cloud-init stand-in: no exit status from ${path}:\n${out}`);
    exitCodes.push(Number(code));
  }
  const output = await console.run(`cat ${CLOUD_INIT_OUTPUT_LOG} 2>/dev/null`);
  return { plan, exitCodes, output };
}
