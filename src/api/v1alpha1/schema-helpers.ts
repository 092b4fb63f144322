// Helpers that keep TypeBox schemas inside what Kubernetes accepts as a *structural* OpenAPI v3
// schema (no const/anyOf/patternProperties), while TypeBox still infers the static TypeScript type.
import { Type, type TSchema, type TUnsafe } from '@sinclair/typebox';

/** A CEL validation rule (`x-kubernetes-validations`). */
export interface CelRule {
  rule: string;
  message: string;
  /** A CEL string expression for the message; `message` is used when it fails. */
  messageExpression?: string;
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

// Labels and annotations are validated as the API server validates an object's metadata
// (k8s.io/apimachinery: IsQualifiedName, IsValidLabelValue, ValidateAnnotations), so a template the
// CRD accepts can never make the operator's apply of the VirtualMachine fail on its metadata.
// CEL regexes use [.] rather than \. so the rules need no escaping; each bound (maxProperties,
// maxLength) keeps the API server's static cost estimate of the rules within its limits.

/** Most labels, and most annotations, a VM template may carry (bounds the CEL cost). */
export const MAX_TEMPLATE_METADATA_ENTRIES = 64;
/**
 * Most bytes of keys and values a template's annotations may hold: Kubernetes allows 256 KiB on an
 * object, and 1 KiB of it stays free for the annotations HyperSpector (monitored-by, paired-with-vmi:
 * under 200 bytes) and KubeVirt (observed API versions) add to the VirtualMachine.
 */
export const MAX_TEMPLATE_ANNOTATIONS_BYTES = 255 * 1024;
/** A label value, and the name part of a qualified name: at most 63 characters. */
export const MAX_LABEL_VALUE_LENGTH = 63;

const DNS_SUBDOMAIN_PREFIX = '[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
// Annotation keys are checked lower-cased by Kubernetes, so their prefix may use capitals.
const CASE_INSENSITIVE_DNS_SUBDOMAIN_PREFIX = '[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*';
const QUALIFIED_NAME_NAME = '[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
// Double quotes only: the text goes into single-quoted CEL string literals.
const QUALIFIED_NAME_RULES =
  'an optional prefix that is a DNS subdomain of at most 253 characters followed by "/", then a name of at most 63 characters ' +
  'of alphanumerics, "-", "_" and "." that starts and ends with an alphanumeric (e.g. "app", "example.com/tier")';

/** CEL: `key` is a qualified name (prefix ≤ 253, a single '/', name ≤ 63); the size test first keeps huge keys cheap. */
function qualifiedNameCel(key: string, prefix: string): string {
  return `size(${key}) <= 317 && ${key}.matches('^(${prefix}/)?${QUALIFIED_NAME_NAME}$') && ${key}.indexOf('/') <= 253`;
}

/** CEL rule on a string map whose keys must be qualified names; its message quotes the offending keys (at most 80 characters each). */
function qualifiedKeysRule(what: string, prefix: string): CelRule {
  const valid = qualifiedNameCel('k', prefix);
  return {
    rule: `self.all(k, ${valid})`,
    messageExpression:
      `'${what} keys must be qualified names, not ' + ` +
      `'"' + self.filter(k, !(${valid}))[0] + '"' + ` +
      `': ${QUALIFIED_NAME_RULES}'`,
    message: `${what} keys must be qualified names: ${QUALIFIED_NAME_RULES}`,
  };
}

/** Labels of an object: qualified-name keys, values of at most 63 characters (possibly empty). */
export function LabelMap(description: string): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({
    type: 'object',
    description,
    maxProperties: MAX_TEMPLATE_METADATA_ENTRIES,
    additionalProperties: {
      type: 'string',
      maxLength: MAX_LABEL_VALUE_LENGTH,
      'x-kubernetes-validations': [
        {
          rule: `self.matches('${LABEL_VALUE}')`,
          message:
            'a label value must be empty or at most 63 characters of alphanumerics, "-", "_" and "." that start and end with an alphanumeric (e.g. "web", "v1.2_3")',
        },
      ],
    },
    'x-kubernetes-validations': [qualifiedKeysRule('label', DNS_SUBDOMAIN_PREFIX)],
  });
}

/** Annotations of a VM template: qualified-name keys, keys and values together at most 255 KiB. */
export function AnnotationMap(description: string): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({
    type: 'object',
    description,
    maxProperties: MAX_TEMPLATE_METADATA_ENTRIES,
    additionalProperties: { type: 'string', maxLength: MAX_TEMPLATE_ANNOTATIONS_BYTES },
    'x-kubernetes-validations': [
      qualifiedKeysRule('annotation', CASE_INSENSITIVE_DNS_SUBDOMAIN_PREFIX),
      {
        rule: `self.map(k, size(bytes(k)) + size(bytes(self[k]))).sum() <= ${MAX_TEMPLATE_ANNOTATIONS_BYTES}`,
        message: `annotations are too large: keys and values together must be at most ${MAX_TEMPLATE_ANNOTATIONS_BYTES} bytes (255 KiB: Kubernetes allows 256 KiB on the VM, and HyperSpector and KubeVirt add their own)`,
      },
    ],
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
