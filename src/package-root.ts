import { fileURLToPath } from 'node:url';

/**
 * The package's own folder, where templates, package.json and the audit's Vitest suite are read
 * at run time. It is resolved from this file, one level below it, and the bundled CLI
 * (dist/recon.mjs, see scripts/build.mjs) sits one level below it too, so the same expression
 * holds whether the sources run as they are or bundled.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
