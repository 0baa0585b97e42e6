import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';

/** A Hugging Face tokenizer.json, loaded with @huggingface/tokenizers. */
export class TextTokenizer {
  private constructor(private readonly tokenizer: Tokenizer) {}

  static async load(tokenizerPath: string, configPath: string | null): Promise<TextTokenizer> {
    const json = JSON.parse(await readFile(tokenizerPath, 'utf8'));
    const config = configPath ? JSON.parse(await readFile(configPath, 'utf8')) : {};
    return new TextTokenizer(new Tokenizer(json, config));
  }

  /** Token ids of `text`, with the special tokens the tokenizer's post-processor adds (BOS). */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }
}
