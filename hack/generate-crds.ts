// Writes crds/ from the TypeScript API definitions (src/api). Run: npm run generate:crds
import { writeFileSync } from 'node:fs';
import { renderCrdYaml, CRD_FILE } from '../src/api/v1alpha1/crd-file.ts';

writeFileSync(CRD_FILE, renderCrdYaml());
console.log(`wrote ${CRD_FILE}`);
