import type { TextTokenizer } from '../models/tokenizer.js';

/**
 * Incremental detokenization (the TGI way): decode a short window of recent
 * tokens and emit only what grew, holding text back while it ends in an
 * incomplete UTF-8 sequence (U+FFFD), so no client ever sees half a character.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tokenizer: TextTokenizer) {}

  push(id: number): string {
    this.ids.push(id);
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (text.length > prefix.length && !text.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return text.slice(prefix.length);
    }
    return '';
  }
}

/**
 * Stop sequences: text is held back while it could still be the start of a
 * stop sequence; when one appears, the text before it is released and the
 * stop sequence itself never is.
 */
export class StopMatcher {
  private text = '';
  private emitted = 0;
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  push(delta: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text: delta, stopped: false };
    this.text += delta;
    const from = Math.max(0, this.emitted - this.longest + 1);
    let hit = -1;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, from);
      if (at >= 0 && (hit < 0 || at < hit)) hit = at;
    }
    if (hit >= 0) {
      const out = this.text.slice(this.emitted, Math.max(this.emitted, hit));
      this.emitted = this.text.length;
      return { text: out, stopped: true };
    }
    let safe = this.text.length;
    for (let k = Math.min(this.longest - 1, this.text.length); k > 0; k--) {
      const tail = this.text.slice(this.text.length - k);
      if (this.stops.some((s) => s.startsWith(tail))) {
        safe = this.text.length - k;
        break;
      }
    }
    const out = this.text.slice(this.emitted, Math.max(this.emitted, safe));
    this.emitted = Math.max(this.emitted, safe);
    return { text: out, stopped: false };
  }

  /** Releases text held back for a stop sequence that never came. */
  flush(): string {
    const out = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return out;
  }
}
