// The repository's root directory (with a trailing slash), for paths to its files.
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
