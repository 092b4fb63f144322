// Helpers that keep TypeBox schemas inside what Kubernetes accepts as a *structural* OpenAPI v3
// schema (no const/anyOf/patternProperties), while TypeBox still infers the static TypeScript type.
import { Type, type TSchema, type TUnsafe } from '@sinclair/typebox';

/** A CEL validation rule (`x-kubernetes-validations`). */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** A string restricted to the given values, rendered as an OpenAPI `enum`. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string; default?: T[number] } = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** A map of string to string, as used by labels and annotations. */
export function StringMap(description: string): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({
    type: 'object',
    additionalProperties: { type: 'string' },
    description,
  });
}

/** An object whose content is validated elsewhere (e.g. by KubeVirt's own CRD), typed as T. */
export function Opaque<T>(description: string): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description });
}

/** Attaches CEL rules to a schema. */
export function withRules<S extends TSchema>(schema: S, rules: CelRule[]): S {
  return { ...schema, 'x-kubernetes-validations': rules };
}

/** An RFC 1123 DNS label: what Kubernetes requires of most object and volume names. */
export function DnsLabel(description: string): ReturnType<typeof Type.String> {
  return Type.String({
    description,
    minLength: 1,
    maxLength: 63,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  });
}

/** An RFC 1123 DNS subdomain: the name of a ConfigMap, VirtualMachine, ... */
export function DnsSubdomain(description: string): ReturnType<typeof Type.String> {
  return Type.String({
    description,
    minLength: 1,
    maxLength: 253,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  });
}
