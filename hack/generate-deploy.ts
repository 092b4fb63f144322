// Writes the generated packaging files (see hack/packaging.ts). Run: npm run generate:deploy
import { writeFileSync } from 'node:fs';
import { ARGOCD_CM, CRD_TEMPLATE, DEPLOY_MANIFEST, renderArgocdCm, renderCrdTemplate, renderDeployManifest } from './packaging.ts';

writeFileSync(CRD_TEMPLATE, renderCrdTemplate());
console.log(`wrote ${CRD_TEMPLATE}`);
writeFileSync(DEPLOY_MANIFEST, renderDeployManifest());
console.log(`wrote ${DEPLOY_MANIFEST}`);
writeFileSync(ARGOCD_CM, renderArgocdCm());
console.log(`wrote ${ARGOCD_CM}`);
