/** See sources.mjs. */
export function sourcesDigest(root: string): string;
