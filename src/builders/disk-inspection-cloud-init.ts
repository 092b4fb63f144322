// Inter-VM disk mounting, the IDS VM's side: cloud-init that mounts each server disk hot-plugged
// into the IDS VM (found by its serial) at <mountPath>/<volume>, read-only and without journal
// replay, and re-mounts it on a timer so a file-integrity checker sees current files. Pure: strings
// in, strings out; the controller decides where the user data goes (see docs/disk-inspection.md).
//
// Why each step of the mount script (checked in test/host/disk/ on two real QEMUs):
// - `blockdev --setro` first: the kernel then refuses any write to the device, whatever mounts it.
//   A hot-plugged `readonly: true` disk is already read-only at the virtio level; this is the
//   second lock for a disk plugged without it, and it is what makes a plain `ro` ext4 or xfs mount
//   refuse journal/log recovery instead of writing it.
// - ext2/3/4: `ro,noload` (never replay the journal of a file system the server has mounted);
//   xfs: `ro,norecovery,nouuid` (nouuid: a snapshot copy, or an IDS booted from the same image,
//   carries the same UUID); others: `ro`. Always nosuid,nodev,noexec: the server is untrusted.
// - Live refresh = umount, then `blockdev --flushbufs` and mount. A mounted read-only view does not
//   follow the device; a re-mount could be served stale blocks the guest cached before the server
//   changed them if they survived the umount (possible while anything else holds the device
//   open). ext4's umount drops them itself (ext4_put_super -> invalidate_bdev, seen on 6.1); the
//   flush is for file systems and kernels that do not.
// - A busy mount (a checker still running) is left alone until the next tick.
import { createHash } from 'node:crypto';
import { isMap, isSeq, parseDocument, stringify, type Document } from 'yaml';

export type DiskInspectionMode = 'Live' | 'Snapshot';

/** A server volume plugged into the IDS VM, and the disk serial it was plugged with. */
export interface InspectedDisk {
  volumeName: string;
  serial: string;
}

export interface DiskInspectionCloudInitInput {
  disks: InspectedDisk[];
  /** Absolute path in the IDS VM; each volume is mounted at <mountPath>/<volumeName>. */
  mountPath: string;
  mode: DiskInspectionMode;
  /** How often the timer re-mounts (Live) or checks for a rotated copy (Snapshot). */
  remountIntervalSeconds: number;
}

export interface CloudInitWriteFile {
  path: string;
  permissions: string;
  owner: string;
  content: string;
}

/** The pieces to merge into the IDS VM's user data, and the mount script on its own. */
export interface DiskInspectionCloudInit {
  mountScript: string;
  writeFiles: CloudInitWriteFile[];
  runcmd: string[][];
}

export const MOUNT_SCRIPT_PATH = '/usr/local/sbin/hyperspector-serverfs';
export const REMOUNT_UNIT = 'hyperspector-serverfs';
/** Where the refresh loop logs on an image with neither systemd nor cron. */
export const REMOUNT_LOOP_LOG = '/var/log/hyperspector-serverfs.log';
/** virtio-blk's serial field (VIRTIO_BLK_ID_BYTES); longer serials are cut by QEMU. */
export const VIRTIO_SERIAL_MAX = 20;
/** KubeVirt refuses inline cloudInitNoCloud.userData above this; larger goes in a Secret (userDataSecretRef). */
export const KUBEVIRT_INLINE_USER_DATA_MAX_BYTES = 2048;
export const MIN_REMOUNT_INTERVAL_SECONDS = 10;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SERIAL = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/**
 * The serial of the disk that carries `volume` of MonitoredServer `msName` into its IDS VM:
 * `hs-` + up to 6 characters of the volume name + `-` + 40 bits of SHA-256 over both names.
 * Deterministic, at most 20 characters (virtio's limit), only [a-z0-9-] so the guest's udev names
 * it /dev/disk/by-id/virtio-<serial> unchanged. The same for every snapshot copy of a volume, so
 * the guest finds a rotated copy under the same name.
 */
export function diskSerialForVolume(msName: string, volume: string): string {
  const hash = createHash('sha256').update(`${msName}\0${volume}`).digest('hex').slice(0, 10);
  const hint = volume.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 6);
  return hint ? `hs-${hint}-${hash}` : `hs-${hash}`;
}

/** Single-quotes a string for POSIX sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function validate(input: DiskInspectionCloudInitInput): void {
  if (!input.mountPath.startsWith('/') || input.mountPath.split('/').some((s) => s === '.' || s === '..') || input.mountPath.includes('\0')) {
    throw new Error(`disk inspection: mountPath ${JSON.stringify(input.mountPath)} must be an absolute path without . or .. segments`);
  }
  if (!Number.isInteger(input.remountIntervalSeconds) || input.remountIntervalSeconds < MIN_REMOUNT_INTERVAL_SECONDS) {
    throw new Error(`disk inspection: remountIntervalSeconds must be an integer >= ${MIN_REMOUNT_INTERVAL_SECONDS}, got ${input.remountIntervalSeconds}`);
  }
  const seen = new Set<string>();
  for (const d of input.disks) {
    if (!DNS_LABEL.test(d.volumeName)) throw new Error(`disk inspection: volume name ${JSON.stringify(d.volumeName)} is not a DNS label`);
    if (!SERIAL.test(d.serial) || d.serial.length > VIRTIO_SERIAL_MAX) {
      throw new Error(`disk inspection: serial ${JSON.stringify(d.serial)} of volume ${d.volumeName} must be 1-${VIRTIO_SERIAL_MAX} characters of [A-Za-z0-9_-]`);
    }
    for (const key of [`v:${d.volumeName}`, `s:${d.serial}`]) {
      if (seen.has(key)) throw new Error(`disk inspection: duplicate ${key.startsWith('v:') ? 'volume' : 'serial'} ${key.slice(2)}`);
      seen.add(key);
    }
  }
}

/** The mount script (POSIX sh; runs under busybox too). Usage: <script> mount|refresh|umount. */
export function buildMountScript(input: DiskInspectionCloudInitInput): string {
  validate(input);
  const disks = input.disks.map((d) => `${d.serial} ${d.volumeName}`).join('\n');
  return `#!/bin/sh
# hyperspector-serverfs (generated by HyperSpector): mounts the server VM's disks, plugged into this
# IDS VM read-only, at <mount root>/<volume>. Never opens a server disk for writing: the device is
# set read-only first, then mounted ro without journal replay.  Usage: $0 mount|refresh|umount
set -u
MOUNT_ROOT=${shQuote(input.mountPath)}
MODE=${input.mode}
DISKS='${disks}'
LOCK=/run/hyperspector-serverfs.lock
[ -d /run ] || LOCK=/tmp/hyperspector-serverfs.lock

log() { echo "hyperspector-serverfs: $*" >&2; }

# The device whose disk serial is $1: udev's by-id names (virtio, then QEMU scsi-hd), else sysfs.
find_device() {
  for l in "/dev/disk/by-id/virtio-$1" "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_$1"; do
    if [ -b "$l" ]; then readlink -f "$l"; return 0; fi
  done
  for s in /sys/block/*/serial; do
    [ -r "$s" ] && [ "$(cat "$s")" = "$1" ] || continue
    d=\${s%/serial}; echo "/dev/\${d##*/}"; return 0
  done
  return 1
}

# Bytes $3 at offset $2 of device $1, as hex.
magic() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \\n'; }

fs_type() {
  t=$(blkid -p -s TYPE -o value "$1" 2>/dev/null) || t=
  if [ -z "$t" ]; then
    if [ "$(magic "$1" 1080 2)" = 53ef ]; then t=ext4
    elif [ "$(magic "$1" 0 4)" = 58465342 ]; then t=xfs
    else t=unknown; fi
  fi
  echo "$t"
}

# The device mounted at $1, or nothing (/proc/self/mounts writes a space as \\040).
mounted_device() { awk -v d="$1" '{ m = $2; gsub(/\\\\040/, " ", m); if (m == d) print $1 }' /proc/self/mounts | tail -n 1; }

mount_disk() { # serial volume
  dir="$MOUNT_ROOT/$2"
  dev=$(find_device "$1") || { log "volume $2: no disk with serial $1 (not plugged yet)"; return 1; }
  [ -n "$(mounted_device "$dir")" ] && return 0
  mkdir -p "$dir"
  blockdev --setro "$dev" || { log "volume $2: cannot set $dev read-only; not mounting"; return 1; }
  case $(fs_type "$dev") in
    ext2|ext3|ext4) t=ext4; o=ro,noload ;;
    xfs) t=xfs; o=ro,norecovery,nouuid ;;
    *) t=auto; o=ro ;;
  esac
  # Drop the device's cached blocks, or this mount may read what the server has since changed.
  blockdev --flushbufs "$dev" 2>/dev/null || true
  if mount -t "$t" -o "$o,nosuid,nodev,noexec" "$dev" "$dir"; then
    log "volume $2: mounted $dev at $dir ($t $o)"
  else
    log "volume $2: mounting $dev ($t $o) failed"; return 1
  fi
}

umount_disk() { # serial volume
  dir="$MOUNT_ROOT/$2"
  dev=$(mounted_device "$dir")
  [ -z "$dev" ] && return 0
  umount "$dir" || { log "volume $2: $dir is busy; left mounted until the next refresh"; return 1; }
}

refresh_disk() { # serial volume
  dev=$(mounted_device "$MOUNT_ROOT/$2")
  if [ -n "$dev" ] && [ "$MODE" = Snapshot ] && [ "$(find_device "$1")" = "$dev" ]; then return 0; fi
  umount_disk "$1" "$2" && mount_disk "$1" "$2"
}

case \${1:-} in
  mount|refresh|umount) ;;
  *) echo "usage: $0 mount|refresh|umount" >&2; exit 2 ;;
esac
mkdir "$LOCK" 2>/dev/null || { log "another run holds $LOCK"; exit 0; }
trap 'rmdir "$LOCK"' EXIT
rc=0
while read -r serial volume; do
  [ -n "$serial" ] || continue
  "\${1}_disk" "$serial" "$volume" || rc=1
done <<EOF
$DISKS
EOF
exit $rc
`;
}

/** The script, its systemd timer (cron where systemd is absent), and the runcmd that starts them. */
export function buildDiskInspectionCloudInit(input: DiskInspectionCloudInitInput): DiskInspectionCloudInit {
  const mountScript = buildMountScript(input);
  const every = input.remountIntervalSeconds;
  const cronMinutes = Math.max(1, Math.ceil(every / 60));
  const service = `[Unit]
Description=HyperSpector: re-mount the server's disks read-only (${input.mode})
After=local-fs.target

[Service]
Type=oneshot
ExecStart=${MOUNT_SCRIPT_PATH} refresh
`;
  const timer = `[Unit]
Description=HyperSpector: re-mount the server's disks every ${every}s

[Timer]
OnBootSec=${every}s
OnUnitActiveSec=${every}s
AccuracySec=1s

[Install]
WantedBy=timers.target
`;
  // systemd's timer; else cron's directory (a cron daemon is installed); else (a minimal image with
  // neither: found by the test world's busybox guests) a detached loop at the same interval.
  const startTimer =
    `if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --now ${REMOUNT_UNIT}.timer; ` +
    `elif [ -d /etc/cron.d ]; then echo '*/${cronMinutes} * * * * root ${MOUNT_SCRIPT_PATH} refresh' > /etc/cron.d/${REMOUNT_UNIT}; ` +
    `else mkdir -p /var/log && setsid sh -c 'while sleep ${every}; do ${MOUNT_SCRIPT_PATH} refresh; done' >> ${REMOUNT_LOOP_LOG} 2>&1 < /dev/null & fi`;
  return {
    mountScript,
    writeFiles: [
      { path: MOUNT_SCRIPT_PATH, permissions: '0755', owner: 'root:root', content: mountScript },
      { path: `/etc/systemd/system/${REMOUNT_UNIT}.service`, permissions: '0644', owner: 'root:root', content: service },
      { path: `/etc/systemd/system/${REMOUNT_UNIT}.timer`, permissions: '0644', owner: 'root:root', content: timer },
    ],
    runcmd: [
      [MOUNT_SCRIPT_PATH, 'mount'],
      ['sh', '-c', startTimer],
    ],
  };
}

// ---- merging into the user's user data ----

const CLOUD_CONFIG_HEADER = '#cloud-config';
/** First-line markers cloud-init knows, and the MIME type of a part holding such content. */
const PART_TYPES: Array<[string, string]> = [
  ['#cloud-config-archive', 'text/cloud-config-archive'],
  ['#cloud-config-jsonp', 'text/cloud-config-jsonp'],
  ['#cloud-boothook', 'text/cloud-boothook'],
  ['#part-handler', 'text/part-handler'],
  ['#include-once', 'text/x-include-once-url'],
  ['#include', 'text/x-include-url'],
  ['#upstart-job', 'text/upstart-job'],
  ['#!', 'text/x-shellscript'],
];
/** Our cloud-config when it is one part among others: append to lists, never replace the user's. */
const MERGE_HOW = [
  { name: 'list', settings: ['append'] },
  { name: 'dict', settings: ['no_replace', 'recurse_list'] },
];

function ourCloudConfig(pieces: DiskInspectionCloudInit): Record<string, unknown> {
  return { write_files: pieces.writeFiles, runcmd: pieces.runcmd };
}

function mergeIntoCloudConfig(userData: string, pieces: DiskInspectionCloudInit): string {
  const body = userData.slice(userData.indexOf('\n') + 1);
  // YAML 1.1 as cloud-init's PyYAML reads it (0644 stays octal, yes/no stay as written).
  const doc: Document = parseDocument(userData.includes('\n') ? body : '', { version: '1.1' });
  if (doc.errors.length > 0) throw new Error(`disk inspection: the user's #cloud-config is not valid YAML: ${doc.errors[0]!.message}`);
  if (doc.contents === null) doc.contents = doc.createNode({});
  if (!isMap(doc.contents)) throw new Error('disk inspection: the user\'s #cloud-config is not a YAML mapping');
  const userFiles = doc.get('write_files');
  if (userFiles !== undefined && !isSeq(userFiles)) throw new Error('disk inspection: the user\'s write_files is not a list');
  const userPaths = new Set((userFiles?.items ?? []).map((f) => (isMap(f) ? String(f.get('path')) : '')));
  for (const f of pieces.writeFiles) {
    if (userPaths.has(f.path)) throw new Error(`disk inspection: the user's write_files already writes ${f.path}, which HyperSpector needs`);
  }
  for (const [key, items] of [['write_files', pieces.writeFiles], ['runcmd', pieces.runcmd]] as const) {
    const existing = doc.get(key);
    if (existing === undefined || existing === null) {
      doc.set(key, doc.createNode(items));
    } else if (isSeq(existing)) {
      for (const item of items) existing.items.push(doc.createNode(item));
    } else {
      throw new Error(`disk inspection: the user's ${key} is not a list`);
    }
  }
  return `${CLOUD_CONFIG_HEADER}\n${doc.toString({ lineWidth: 0 })}`;
}

function mimePart(contentType: string, content: string): string {
  return `Content-Type: ${contentType}; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n${content.endsWith('\n') ? content : `${content}\n`}`;
}

function ourCloudConfigPart(pieces: DiskInspectionCloudInit): string {
  return mimePart('text/cloud-config', `${CLOUD_CONFIG_HEADER}\n${stringify({ merge_how: MERGE_HOW, ...ourCloudConfig(pieces) }, { lineWidth: 0 })}`);
}

function boundaryFor(content: string): string {
  const boundary = `==hyperspector-${createHash('sha256').update(content).digest('hex').slice(0, 24)}==`;
  if (content.includes(boundary)) throw new Error('disk inspection: cannot pick a MIME boundary absent from the user data');
  return boundary;
}

function addPartToMultipart(userData: string, pieces: DiskInspectionCloudInit): string {
  const header = userData.slice(0, userData.search(/\r?\n\r?\n/) + 1);
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(header)?.[1];
  if (!boundary) throw new Error('disk inspection: the user\'s multipart user data has no boundary in its header');
  const close = userData.lastIndexOf(`--${boundary}--`);
  if (close < 0) throw new Error(`disk inspection: the user's multipart user data does not end with --${boundary}--`);
  return `${userData.slice(0, close)}--${boundary}\n${ourCloudConfigPart(pieces)}--${boundary}--\n`;
}

/**
 * Merges the disk-inspection pieces into a VM's existing user data, keeping all of the user's:
 * - none or blank: a new #cloud-config;
 * - #cloud-config: our write_files and runcmd appended to the user's lists, every other key and
 *   comment kept (a write_files path we need that the user also writes is an error);
 * - MIME multipart: our cloud-config added as one more part, with merge_how list append so it
 *   extends, not replaces, the lists of the user's cloud-config parts;
 * - a shell script (#!) or another single-part format cloud-init knows (#include, #cloud-boothook,
 *   ...): turned into a MIME multipart message of the user's part, unchanged, and ours.
 * Refused with an error that names the reason: Jinja templates, gzip-compressed and unrecognized
 * user data.
 */
export function mergeDiskInspectionUserData(userData: string | undefined, pieces: DiskInspectionCloudInit): string {
  if (userData === undefined || userData.trim() === '') return `${CLOUD_CONFIG_HEADER}\n${stringify(ourCloudConfig(pieces), { lineWidth: 0 })}`;
  if (userData.startsWith('\x1f\x8b')) throw new Error('disk inspection: gzip-compressed user data cannot be merged; give it uncompressed');
  const firstLine = userData.slice(0, userData.search(/\r?\n|$/)).trim();
  if (firstLine.startsWith('## template:')) throw new Error('disk inspection: Jinja-templated user data cannot be merged safely; render it first or use a multipart message');
  if (firstLine === CLOUD_CONFIG_HEADER) return mergeIntoCloudConfig(userData, pieces);
  if (/^(content-type:\s*multipart\/|mime-version:)/i.test(firstLine)) return addPartToMultipart(userData, pieces);
  const partType = PART_TYPES.find(([marker]) => firstLine.startsWith(marker))?.[1];
  if (!partType) throw new Error(`disk inspection: unrecognized user-data format (first line ${JSON.stringify(firstLine.slice(0, 40))}); expected #cloud-config, a #! script or MIME multipart`);
  const boundary = boundaryFor(userData);
  return `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n--${boundary}\n${mimePart(partType, userData)}--${boundary}\n${ourCloudConfigPart(pieces)}--${boundary}--\n`;
}
