// The committed tiny-sd test model: reproducible from its generator, in the diffusers ONNX layout with the input and
// output names, dtypes and ranks of real exports, and with a CLIP tokenizer that works offline in both the
// tokenizer.json and the vocab.json + merges.txt forms.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { ClipPromptTokenizer } from '../../inference/onnx/clip-tokenizer';
import { ModelRegistry } from '../../inference/onnx/model-registry';
import { tinySdRegistryEntry, writeTinySd } from '../../models/tools/tiny-sd';
import { REGISTRY_PATH, tempDir, TINY_SD_SOURCE } from './fixtures';

function metadata(
  session: ort.InferenceSession,
  io: 'input' | 'output',
): Record<string, { type: string; rank: number }> {
  const list = io === 'input' ? session.inputMetadata : session.outputMetadata;
  return Object.fromEntries(
    list.map((m) => [m.name, m.isTensor ? { type: m.type, rank: m.shape.length } : { type: 'non-tensor', rank: -1 }]),
  );
}

describe('tiny-sd export', () => {
  test('the committed files and registry entry are exactly what the generator writes', () => {
    const dir = tempDir('regenerated');
    try {
      const files = writeTinySd(dir.path);
      const registry = JSON.parse(readFileSync(REGISTRY_PATH, 'utf8')) as { models: Record<string, unknown>[] };
      assert.deepEqual(
        registry.models.find((m) => m.name === 'tiny-sd'),
        tinySdRegistryEntry(files),
      );
      for (const file of files) {
        const committed = readFileSync(join(TINY_SD_SOURCE, file.path));
        assert.equal(
          createHash('sha256').update(committed).digest('hex'),
          file.sha256,
          `${file.path} (regenerate with npx tsx models/generate-tiny-sd.ts)`,
        );
      }
      const total = files.reduce((n, f) => n + f.size, 0);
      assert.ok(total < 1_000_000, `tiny-sd is ${total} bytes`);
    } finally {
      dir.cleanup();
    }
  });

  test('the registry lists tiny-sd with core/models.ts defaults (64x64, 4 steps)', async () => {
    const model = (await ModelRegistry.load(REGISTRY_PATH)).get('tiny-sd');
    assert.ok(model);
    assert.deepEqual(
      { steps: model.defaults.steps, width: model.defaults.width, height: model.defaults.height },
      { steps: 4, width: 64, height: 64 },
    );
    assert.deepEqual('dir' in model.source ? model.source.dir : model.source.url, 'tiny-sd');
  });

  describe('models have the names, dtypes and ranks of a diffusers ONNX export', () => {
    const sessions: Record<string, ort.InferenceSession> = {};
    before(async () => {
      for (const name of ['text_encoder', 'unet', 'vae_decoder']) {
        sessions[name] = await ort.InferenceSession.create(join(TINY_SD_SOURCE, name, 'model.onnx'));
      }
    });
    after(async () => {
      for (const s of Object.values(sessions)) await s.release();
    });

    test('text_encoder: input_ids int32 [B, 77] -> last_hidden_state float32 [B, 77, D], pooler_output [B, D]', async () => {
      const te = sessions.text_encoder as ort.InferenceSession;
      assert.deepEqual(metadata(te, 'input'), { input_ids: { type: 'int32', rank: 2 } });
      assert.deepEqual(metadata(te, 'output'), {
        last_hidden_state: { type: 'float32', rank: 3 },
        pooler_output: { type: 'float32', rank: 2 },
      });
      const out = await te.run({ input_ids: new ort.Tensor('int32', new Int32Array(2 * 77), [2, 77]) });
      assert.deepEqual(out.last_hidden_state?.dims.slice(0, 2), [2, 77]);
    });

    test('unet: sample [B, 4, h, w], timestep float32 [B], encoder_hidden_states [B, 77, D] -> out_sample [B, 4, h, w]', async () => {
      const unet = sessions.unet as ort.InferenceSession;
      assert.deepEqual(metadata(unet, 'input'), {
        sample: { type: 'float32', rank: 4 },
        timestep: { type: 'float32', rank: 1 },
        encoder_hidden_states: { type: 'float32', rank: 3 },
      });
      assert.deepEqual(metadata(unet, 'output'), { out_sample: { type: 'float32', rank: 4 } });
      const d = (sessions.text_encoder?.outputMetadata[0] as ort.InferenceSession.TensorValueMetadata)
        .shape[2] as number;
      // Odd latent sizes (e.g. 40x56 px -> 5x7) come back at the same size.
      const out = await unet.run({
        sample: new ort.Tensor('float32', new Float32Array(3 * 4 * 5 * 7), [3, 4, 5, 7]),
        timestep: new ort.Tensor('float32', Float32Array.of(999), [1]),
        encoder_hidden_states: new ort.Tensor('float32', new Float32Array(3 * 77 * d), [3, 77, d]),
      });
      assert.deepEqual(out.out_sample?.dims, [3, 4, 5, 7]);
    });

    test('vae_decoder: latent_sample [B, 4, h, w] -> sample [B, 3, 8h, 8w]', async () => {
      const vae = sessions.vae_decoder as ort.InferenceSession;
      assert.deepEqual(metadata(vae, 'input'), { latent_sample: { type: 'float32', rank: 4 } });
      assert.deepEqual(metadata(vae, 'output'), { sample: { type: 'float32', rank: 4 } });
      const out = await vae.run({
        latent_sample: new ort.Tensor('float32', new Float32Array(2 * 4 * 4 * 6), [2, 4, 4, 6]),
      });
      assert.deepEqual(out.sample?.dims, [2, 3, 32, 48]);
    });
  });

  describe('CLIP tokenizer', () => {
    let fromJson: ClipPromptTokenizer;
    let fromVocab: ClipPromptTokenizer;
    const slow = tempDir('slow-tokenizer');
    before(async () => {
      fromJson = await ClipPromptTokenizer.load(join(TINY_SD_SOURCE, 'tokenizer'));
      // An export written by the slow CLIPTokenizer: vocab.json + merges.txt, no tokenizer.json.
      const { cpSync } = await import('node:fs');
      cpSync(join(TINY_SD_SOURCE, 'tokenizer'), slow.path, { recursive: true });
      rmSync(join(slow.path, 'tokenizer.json'));
      fromVocab = await ClipPromptTokenizer.load(slow.path);
    });
    after(() => slow.cleanup());

    const vocab = JSON.parse(readFileSync(join(TINY_SD_SOURCE, 'tokenizer', 'vocab.json'), 'utf8')) as Record<
      string,
      number
    >;
    const byId = new Map(Object.entries(vocab).map(([token, id]) => [id, token]));
    const decode = (ids: number[]): string =>
      ids
        .map((id) => byId.get(id) ?? '?')
        .join('')
        .replaceAll('</w>', ' ')
        .trim();

    test('BPE tokens spell the normalized prompt back (lower case, words end in </w>)', () => {
      const ids = fromJson.tokenIds('A Photo of an   ASTRONAUT riding a horse, 4k!');
      assert.equal(decode(ids), 'a photo of an astronaut riding a horse , 4 k !');
      assert.ok(
        ids.length < 'a photo of an astronaut riding a horse, 4k!'.length,
        'merges join characters into sub-words',
      );
    });

    test('tokenizer.json and vocab.json + merges.txt give the same ids', () => {
      for (const prompt of [
        'a photo of an astronaut riding a horse',
        'Ünïcödé prompt — with symbols #%&',
        'blurry, low quality',
        '',
      ]) {
        assert.deepEqual(fromVocab.tokenIds(prompt), fromJson.tokenIds(prompt), prompt);
      }
    });

    test('encodes to BOS, tokens, EOS, then padding, exactly 77 ids; long prompts are truncated keeping EOS', () => {
      assert.equal(fromJson.maxLength, 77);
      const ids = new Int32Array(77);
      fromJson.encodeInto('a cat', ids, 0);
      const tokens = fromJson.tokenIds('a cat');
      assert.equal(ids[0], fromJson.bosId);
      assert.deepEqual([...ids.subarray(1, 1 + tokens.length)], tokens);
      assert.equal(ids[1 + tokens.length], fromJson.eosId);
      assert.ok([...ids.subarray(2 + tokens.length)].every((id) => id === fromJson.padId));

      const long = new Int32Array(77);
      fromJson.encodeInto('astronaut '.repeat(100), long, 0);
      assert.equal(long[0], fromJson.bosId);
      assert.equal(long[76], fromJson.eosId);
      assert.ok(long.subarray(1, 76).every((id) => id !== fromJson.eosId));
    });
  });
});
