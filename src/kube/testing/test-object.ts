// For tests of the generic kube runtime: any object with metadata always present and free-form fields.
import type { KubeObject, ObjectMeta } from '../client/objects.ts';

export type TestObject = KubeObject & { metadata: ObjectMeta; [field: string]: unknown };
