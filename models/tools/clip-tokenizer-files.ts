// Builds a tiny CLIP-style byte-level BPE tokenizer (the layout of openai/clip-vit-* tokenizers: 256 byte symbols,
// the same 256 with the `</w>` end-of-word suffix, learned merges, then <|startoftext|> and <|endoftext|>) and writes
// it in both forms a diffusers export may ship: tokenizer.json (the `tokenizers` library format) and the
// vocab.json + merges.txt pair of the slow CLIPTokenizer.

export const BOS_TOKEN = '<|startoftext|>';
export const EOS_TOKEN = '<|endoftext|>';
export const MODEL_MAX_LENGTH = 77;

/** The prompts the merges are learned from: enough shared sub-words that typical test prompts merge. */
const CORPUS = [
  'a photo of an astronaut riding a horse on the moon',
  'a watercolor painting of a red fox in a snowy forest',
  'a cat sitting on a windowsill at sunset, highly detailed',
  'portrait of a dog wearing sunglasses, studio lighting',
  'a lighthouse on a rocky coast during a storm, oil painting',
  'a bowl of fruit on a wooden table, still life',
  'a futuristic city skyline at night with neon lights',
  'an ancient castle on a hill surrounded by fog',
  'a cozy cabin in the mountains, digital art',
  'blurry, low quality, distorted, ugly, watermark, text',
];

/** GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest to code points from 256 up. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = '!'.charCodeAt(0); b <= '~'.charCodeAt(0); b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

/** The order CLIP's vocab lists the byte symbols in: printable ones first, then the remapped ones. */
function byteSymbolOrder(table: string[]): string[] {
  return [...table].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
}

function corpusWords(): string[][] {
  const table = bytesToUnicode();
  const words: string[][] = [];
  // CLIP's pre-tokenizer pattern: letter runs, single digits, runs of other non-space characters.
  for (const line of CORPUS) {
    for (const m of line.toLowerCase().matchAll(/\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/gu)) {
      const bytes = Array.from(new TextEncoder().encode(m[0]), (b) => table[b] as string);
      bytes[bytes.length - 1] += '</w>';
      words.push(bytes);
    }
  }
  return words;
}

/** Greedy BPE: merge the most frequent adjacent pair (ties broken by the pair's text) until `maxMerges` or whole words. */
function learnMerges(maxMerges: number): [string, string][] {
  const words = corpusWords();
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) {
        const key = `${w[i]} ${w[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, count] of [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (count > bestCount) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split(' ') as [string, string];
    merges.push([a, b]);
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b);
      }
    }
  }
  return merges;
}

export interface ClipTokenizerFiles {
  readonly vocab: Record<string, number>;
  readonly merges: [string, string][];
  readonly vocabSize: number;
  /** File name (relative to tokenizer/) -> contents. */
  readonly files: ReadonlyMap<string, string>;
}

export function buildClipTokenizerFiles(maxMerges = 160): ClipTokenizerFiles {
  const symbols = byteSymbolOrder(bytesToUnicode());
  const merges = learnMerges(maxMerges);
  const vocabList = [
    ...symbols,
    ...symbols.map((s) => `${s}</w>`),
    ...merges.map(([a, b]) => a + b),
    BOS_TOKEN,
    EOS_TOKEN,
  ];
  const vocab: Record<string, number> = {};
  vocabList.forEach((token, id) => {
    if (!(token in vocab)) vocab[token] = id;
  });
  const bosId = vocab[BOS_TOKEN] as number;
  const eosId = vocab[EOS_TOKEN] as number;
  const special = { single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: bosId, content: BOS_TOKEN, ...special },
      { id: eosId, content: EOS_TOKEN, ...special },
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
      sep: [EOS_TOKEN, eosId],
      cls: [BOS_TOKEN, bosId],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS_TOKEN,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    add_prefix_space: false,
    bos_token: BOS_TOKEN,
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: EOS_TOKEN,
    errors: 'replace',
    model_max_length: MODEL_MAX_LENGTH,
    pad_token: EOS_TOKEN,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: EOS_TOKEN,
  };
  const specialTokensMap = { bos_token: BOS_TOKEN, eos_token: EOS_TOKEN, pad_token: EOS_TOKEN, unk_token: EOS_TOKEN };
  const files = new Map<string, string>([
    ['tokenizer.json', JSON.stringify(tokenizerJson, null, 2) + '\n'],
    ['tokenizer_config.json', JSON.stringify(tokenizerConfig, null, 2) + '\n'],
    ['special_tokens_map.json', JSON.stringify(specialTokensMap, null, 2) + '\n'],
    ['vocab.json', JSON.stringify(vocab) + '\n'],
    ['merges.txt', ['#version: 0.2', ...merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n'],
  ]);
  return { vocab, merges, vocabSize: vocabList.length, files };
}
