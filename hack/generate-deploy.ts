// Writes the generated packaging files (see hack/packaging.ts). Run: npm run generate:deploy
import { writeFileSync } from 'node:fs';
import { CRD_TEMPLATE, DEPLOY_MANIFEST, renderCrdTemplate, renderDeployManifest } from './packaging.ts';

writeFileSync(CRD_TEMPLATE, renderCrdTemplate());
console.log(`wrote ${CRD_TEMPLATE}`);
writeFileSync(DEPLOY_MANIFEST, renderDeployManifest());
console.log(`wrote ${DEPLOY_MANIFEST}`);
