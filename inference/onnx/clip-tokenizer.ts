// CLIP prompt tokenization for the text encoder, offline from the export's tokenizer/ folder. The BPE itself is
// @huggingface/tokenizers (Hugging Face's pure-JS port of `tokenizers`, no native code, no network); this wrapper
// adds what diffusers does around it: BOS/EOS, truncation to model_max_length and padding with the pad token.
// Exports made with the slow CLIPTokenizer ship vocab.json + merges.txt without tokenizer.json; for those we build
// the tokenizer.json that the fast CLIPTokenizer would have written.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };

interface TokenizerConfigFile {
  model_max_length?: number;
  bos_token?: string | { content: string };
  eos_token?: string | { content: string };
  pad_token?: string | { content: string };
}

function tokenText(token: string | { content: string } | undefined, fallback: string): string {
  if (token === undefined) return fallback;
  return typeof token === 'string' ? token : token.content;
}

/** The tokenizer.json of openai's CLIP tokenizers, with the vocabulary and merges of a slow-tokenizer export. */
export function clipTokenizerJson(
  vocab: Record<string, number>,
  merges: string[],
  bos: string,
  eos: string,
): Record<string, unknown> {
  const bosId = vocab[bos];
  const eosId = vocab[eos];
  if (bosId === undefined || eosId === undefined) throw new TypeError(`vocab.json lacks ${bos} or ${eos}`);
  const special = { single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  return {
    version: '1.0',
    added_tokens: [
      { id: bosId, content: bos, ...special },
      { id: eosId, content: eos, ...special },
    ],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex:
              "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [eos, eosId],
      cls: [bos, bosId],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: eos,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

export class ClipPromptTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    /** Sequence length the text encoder takes (77 for every SD family model). */
    readonly maxLength: number,
    readonly bosId: number,
    readonly eosId: number,
    readonly padId: number,
  ) {}

  /** Loads from `<export>/tokenizer/`: tokenizer.json when present, else vocab.json + merges.txt. */
  static async load(tokenizerDir: string): Promise<ClipPromptTokenizer> {
    const configPath = join(tokenizerDir, 'tokenizer_config.json');
    const config: TokenizerConfigFile = existsSync(configPath)
      ? (JSON.parse(await readFile(configPath, 'utf8')) as TokenizerConfigFile)
      : {};
    const bos = tokenText(config.bos_token, '<|startoftext|>');
    const eos = tokenText(config.eos_token, '<|endoftext|>');
    const pad = tokenText(config.pad_token, eos);
    const jsonPath = join(tokenizerDir, 'tokenizer.json');
    let tokenizerJson: Record<string, unknown>;
    if (existsSync(jsonPath)) {
      tokenizerJson = JSON.parse(await readFile(jsonPath, 'utf8')) as Record<string, unknown>;
    } else {
      const vocab = JSON.parse(await readFile(join(tokenizerDir, 'vocab.json'), 'utf8')) as Record<string, number>;
      const merges = (await readFile(join(tokenizerDir, 'merges.txt'), 'utf8'))
        .split('\n')
        .filter((line) => line.length > 0 && !line.startsWith('#version'));
      tokenizerJson = clipTokenizerJson(vocab, merges, bos, eos);
    }
    // The package is ES-module first; dynamic import loads it from this CommonJS build (and under tsx).
    const { Tokenizer: HfTokenizer } = await import('@huggingface/tokenizers');
    const tokenizer = new HfTokenizer(tokenizerJson, config);
    const id = (token: string): number => {
      const value = tokenizer.token_to_id(token);
      if (value === undefined) throw new TypeError(`${tokenizerDir}: the vocabulary has no ${JSON.stringify(token)}`);
      return value;
    };
    // model_max_length is a huge sentinel in some configs; CLIP text encoders have 77 positions.
    const maxLength =
      config.model_max_length !== undefined && config.model_max_length <= 1024 ? config.model_max_length : 77;
    return new ClipPromptTokenizer(tokenizer, maxLength, id(bos), id(eos), id(pad));
  }

  /** Token ids without BOS/EOS, for tests and diagnostics. */
  tokenIds(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * `[BOS, tokens..., EOS, PAD...]` of exactly `maxLength` ids, truncating long prompts as diffusers does
   * (`padding="max_length", truncation=True`), written into `out` at `offset`.
   */
  encodeInto(text: string, out: Int32Array, offset: number): void {
    const ids = this.tokenIds(text).slice(0, this.maxLength - 2);
    out[offset] = this.bosId;
    for (let i = 0; i < ids.length; i++) out[offset + 1 + i] = ids[i] as number;
    out[offset + 1 + ids.length] = this.eosId;
    out.fill(this.padId, offset + 2 + ids.length, offset + this.maxLength);
  }
}
