// BTF (BPF Type Format, Documentation/bpf/btf.rst) reader: the kernel's own compact description of
// its types, embedded in the .BTF section when built with CONFIG_DEBUG_INFO_BTF (Debian, Fedora,
// Ubuntu kernels are). It is what gives us struct layouts without the -dbg package.

export class BtfError extends Error {}

const BTF_MAGIC = 0xeb9f;

export const enum BtfKind {
  Int = 1, Ptr = 2, Array = 3, Struct = 4, Union = 5, Enum = 6, Fwd = 7, Typedef = 8,
  Volatile = 9, Const = 10, Restrict = 11, Func = 12, FuncProto = 13, Var = 14, Datasec = 15,
  Float = 16, DeclTag = 17, TypeTag = 18, Enum64 = 19,
}

export interface BtfMember {
  name: string;
  typeId: number;
  /** Offset from the start of the enclosing type, in bits. */
  bitOffset: number;
  /** Non-zero for bitfields. */
  bitSize: number;
}

export interface BtfType {
  readonly id: number;
  readonly kind: BtfKind;
  readonly name: string;
  /** Byte size for Int/Struct/Union/Enum/Float/Datasec; referenced type id for Ptr/Typedef/Const/... */
  readonly sizeOrType: number;
  readonly members: BtfMember[];
  /** Array: element type id and element count. */
  readonly array?: { elementTypeId: number; count: number };
}

/** A member found through any depth of anonymous structs/unions, with its absolute offset. */
export interface ResolvedMember {
  byteOffset: number;
  size: number;
  typeId: number;
}

const MODIFIERS = new Set<BtfKind>([BtfKind.Typedef, BtfKind.Volatile, BtfKind.Const, BtfKind.Restrict, BtfKind.TypeTag]);

/**
 * One type record. Names and struct members are decoded on first use: a kernel has 100 000+ types
 * and a profile needs a few dozen, so parsing stays cheap enough to run at every attach.
 */
class LazyBtfType implements BtfType {
  private cachedName?: string;
  private cachedMembers?: BtfMember[];

  constructor(
    private readonly btf: Btf,
    readonly id: number,
    readonly kind: BtfKind,
    private readonly nameOff: number,
    readonly sizeOrType: number,
    /** Offset of the record's trailing data (members, array info) in the section. */
    private readonly dataAt: number,
    private readonly info: number,
  ) {}

  get name(): string {
    return (this.cachedName ??= this.btf.string(this.nameOff));
  }

  get members(): BtfMember[] {
    if (this.cachedMembers) return this.cachedMembers;
    const out: BtfMember[] = [];
    if (this.kind === BtfKind.Struct || this.kind === BtfKind.Union) {
      const kindFlag = (this.info >>> 31) === 1;
      const section = this.btf.section;
      for (let i = 0, p = this.dataAt; i < (this.info & 0xffff); i++, p += 12) {
        const raw = section.readUInt32LE(p + 8);
        out.push({
          name: this.btf.string(section.readUInt32LE(p)),
          typeId: section.readUInt32LE(p + 4),
          bitOffset: kindFlag ? raw & 0xffffff : raw,
          bitSize: kindFlag ? raw >>> 24 : 0,
        });
      }
    }
    return (this.cachedMembers = out);
  }

  get array(): { elementTypeId: number; count: number } | undefined {
    if (this.kind !== BtfKind.Array) return undefined;
    return { elementTypeId: this.btf.section.readUInt32LE(this.dataAt), count: this.btf.section.readUInt32LE(this.dataAt + 8) };
  }
}

export class Btf {
  private readonly types: BtfType[] = [];
  private byName?: Map<string, BtfType[]>; // structs only
  private readonly strOff: number;
  private readonly strEnd: number;

  constructor(readonly section: Buffer) {
    if (section.length < 24 || section.readUInt16LE(0) !== BTF_MAGIC) {
      throw new BtfError('no BTF: the .BTF section is missing or has a bad magic (kernel built without CONFIG_DEBUG_INFO_BTF?)');
    }
    const hdrLen = section.readUInt32LE(4);
    const typeOff = hdrLen + section.readUInt32LE(8);
    const typeLen = section.readUInt32LE(12);
    const strOff = hdrLen + section.readUInt32LE(16);
    const strLen = section.readUInt32LE(20);
    if (typeOff + typeLen > section.length || strOff + strLen > section.length) {
      throw new BtfError('truncated BTF section');
    }
    this.strOff = strOff;
    this.strEnd = strOff + strLen;
    this.types.push({ id: 0, kind: 0 as BtfKind, name: 'void', sizeOrType: 0, members: [] });
    let p = typeOff;
    const end = typeOff + typeLen;
    while (p < end) {
      const nameOff = section.readUInt32LE(p);
      const info = section.readUInt32LE(p + 4);
      const sizeOrType = section.readUInt32LE(p + 8);
      const vlen = info & 0xffff;
      const kind = ((info >>> 24) & 0x1f) as BtfKind;
      p += 12;
      this.types.push(new LazyBtfType(this, this.types.length, kind, nameOff, sizeOrType, p, info));
      switch (kind) {
        case BtfKind.Int: case BtfKind.Var: case BtfKind.DeclTag: p += 4; break;
        case BtfKind.Array: p += 12; break;
        case BtfKind.Struct: case BtfKind.Union: p += 12 * vlen; break;
        case BtfKind.Enum: case BtfKind.FuncProto: p += 8 * vlen; break;
        case BtfKind.Datasec: case BtfKind.Enum64: p += 12 * vlen; break;
        case BtfKind.Ptr: case BtfKind.Fwd: case BtfKind.Typedef: case BtfKind.Volatile: case BtfKind.Const:
        case BtfKind.Restrict: case BtfKind.Func: case BtfKind.Float: case BtfKind.TypeTag: break;
        default: throw new BtfError(`unknown BTF kind ${kind} at type id ${this.types.length - 1}`);
      }
    }
  }

  /** A NUL-terminated string of the string section. */
  string(offset: number): string {
    const start = this.strOff + offset;
    if (start >= this.strEnd) throw new BtfError(`BTF string offset ${offset} out of range`);
    return this.section.toString('latin1', start, this.section.indexOf(0, start));
  }

  private names(): Map<string, BtfType[]> {
    if (this.byName) return this.byName;
    const byName = new Map<string, BtfType[]>();
    for (const t of this.types) {
      if (t.kind !== BtfKind.Struct) continue; // all struct() needs; other names stay undecoded
      const name = t.name;
      if (!name) continue;
      const list = byName.get(name);
      if (list) list.push(t);
      else byName.set(name, [t]);
    }
    return (this.byName = byName);
  }

  get typeCount(): number {
    return this.types.length - 1;
  }

  type(id: number): BtfType {
    const t = this.types[id];
    if (!t) throw new BtfError(`BTF type id ${id} out of range`);
    return t;
  }

  /** The complete (non-forward) struct of that name. */
  struct(name: string): BtfType {
    const found = (this.names().get(name) ?? []).find((t) => t.kind === BtfKind.Struct);
    if (!found) throw new BtfError(`struct ${name} not found in BTF`);
    return found;
  }

  /** Follows typedefs and qualifiers to the underlying type. */
  resolve(id: number): BtfType {
    let t = this.type(id);
    for (let depth = 0; MODIFIERS.has(t.kind); depth++) {
      if (depth > 32) throw new BtfError(`BTF type chain too deep at id ${id}`);
      t = this.type(t.sizeOrType);
    }
    return t;
  }

  sizeOf(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case BtfKind.Ptr: return 8;
      case BtfKind.Array: return t.array!.count * this.sizeOf(t.array!.elementTypeId);
      case BtfKind.Int: case BtfKind.Struct: case BtfKind.Union: case BtfKind.Enum: case BtfKind.Enum64: case BtfKind.Float:
        return t.sizeOrType;
      default: throw new BtfError(`BTF type ${t.name || t.id} (kind ${t.kind}) has no size`);
    }
  }

  /**
   * A member of a struct by name, searching inside anonymous struct/union members too (task_struct
   * and mm_struct keep many fields in anonymous aggregates). Returns undefined when absent.
   */
  findMember(structType: BtfType, name: string): ResolvedMember | undefined {
    for (const m of structType.members) {
      if (m.name === name) {
        if (m.bitSize !== 0 || m.bitOffset % 8 !== 0) throw new BtfError(`${structType.name}.${name} is a bitfield`);
        return { byteOffset: m.bitOffset / 8, size: this.sizeOf(m.typeId), typeId: m.typeId };
      }
    }
    for (const m of structType.members) {
      if (m.name !== '') continue;
      const inner = this.resolve(m.typeId);
      if (inner.kind !== BtfKind.Struct && inner.kind !== BtfKind.Union) continue;
      const found = this.findMember(inner, name);
      if (found) return { ...found, byteOffset: found.byteOffset + m.bitOffset / 8 };
    }
    return undefined;
  }
}
