import { createHash } from 'node:crypto';

/** A CSP source that allows exactly this inline text. */
function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * The Content-Security-Policy of every page recon writes (reports, incident, diff): nothing may
 * load from anywhere (`default-src 'none'`); the one inline stylesheet and, where present, the
 * one inline script are allowed by their hash.
 */
export function contentSecurityPolicy(inline: { css: string; script?: string | null }): string {
  return [
    `default-src 'none'`,
    `style-src ${sha256Source(inline.css)}`,
    `script-src ${inline.script ? sha256Source(inline.script) : `'none'`}`,
    `img-src 'none'`,
    `font-src 'none'`,
    `connect-src 'none'`,
    `base-uri 'none'`,
    `form-action 'none'`,
  ].join('; ');
}
