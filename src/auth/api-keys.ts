import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const SCOPES = ['infer', 'jobs', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who is calling: with auth off everyone holds every scope and no key. */
export interface AuthContext {
  enabled: boolean;
  /** A short stable id of the key (never the key itself): owner of the jobs it submits. */
  keyId: string | null;
  scopes: ReadonlySet<Scope>;
}

interface KeyEntry {
  digest: Buffer;
  keyId: string;
  scopes: ReadonlySet<Scope>;
}

const digest = (key: string) => createHash('sha256').update(key).digest();

/**
 * API keys from `key=scope+scope,key2=scope` (API_KEYS) and/or a file with one
 * such entry per line (API_KEYS_FILE; `#` starts a comment). Keys are kept
 * only as SHA-256 digests and compared in constant time.
 */
export class ApiKeys {
  private constructor(private readonly entries: KeyEntry[]) {}

  static parse(spec: string | undefined, file?: string | undefined): ApiKeys {
    const parts: string[] = [];
    if (spec) parts.push(...spec.split(','));
    if (file) parts.push(...readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '')));
    const entries: KeyEntry[] = [];
    for (const raw of parts.map((p) => p.trim()).filter(Boolean)) {
      const eq = raw.lastIndexOf('=');
      if (eq <= 0) throw new Error(`API key entry "${raw.slice(0, 4)}…" needs the form key=scope+scope`);
      const key = raw.slice(0, eq);
      const scopes = raw.slice(eq + 1).split('+').map((s) => s.trim());
      const unknown = scopes.filter((s) => !SCOPES.includes(s as Scope));
      if (unknown.length > 0 || scopes.length === 0) throw new Error(`API key scopes must be among ${SCOPES.join(', ')}; got "${unknown.join(', ')}"`);
      if (key.length < 8) throw new Error('API keys must have at least 8 characters');
      const d = digest(key);
      entries.push({ digest: d, keyId: d.toString('hex').slice(0, 12), scopes: new Set(scopes as Scope[]) });
    }
    return new ApiKeys(entries);
  }

  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The context for a presented key; null when auth is on and the key is missing or unknown. */
  authenticate(presented: string | null | undefined): AuthContext | null {
    if (!this.enabled) return { enabled: false, keyId: null, scopes: new Set(SCOPES) };
    if (!presented) return null;
    const d = digest(presented);
    const entry = this.entries.find((e) => timingSafeEqual(e.digest, d));
    return entry ? { enabled: true, keyId: entry.keyId, scopes: entry.scopes } : null;
  }
}

/** The key from `Authorization: Bearer …` (or a bare value). */
export function bearer(header: string | null | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return (match ? match[1]! : header).trim() || null;
}
