// Checks models/fortune-lm/onnx/model.onnx in onnxruntime-node against the torch logits that
// tools/train_lm.py writes at export time (LM_EXPECTED, default /tmp/fortune-lm-expected.json; not shipped).
// Run from the repository root: node tools/check_lm_onnx.mjs [expected.json]
import * as ort from 'onnxruntime-node';
import fs from 'node:fs';

const expected = JSON.parse(fs.readFileSync(process.argv[2] ?? '/tmp/fortune-lm-expected.json', 'utf8'));
const cfg = JSON.parse(fs.readFileSync('models/fortune-lm/config.json', 'utf8'));
const session = await ort.InferenceSession.create('models/fortune-lm/onnx/model.onnx');
const n = expected.input_ids.length;
const int64 = (values, dims) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
const feeds = {
  input_ids: int64(expected.input_ids, [1, n]),
  attention_mask: int64(new Array(n).fill(1), [1, n]),
  position_ids: int64([...Array(n).keys()], [1, n]),
};
for (let i = 0; i < cfg.num_hidden_layers; i++) {
  for (const kind of ['key', 'value']) {
    feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, cfg.num_key_value_heads, 0, cfg.head_dim]);
  }
}
const logits = (await session.run(feeds)).logits.data;
const V = cfg.vocab_size;
let worst = 0;
for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(logits[(n - 1) * V + j] - expected.last_logits[j]));
let worstMean = 0;
for (let t = 0; t < n; t++) {
  let sum = 0;
  for (let j = 0; j < V; j++) sum += logits[t * V + j];
  worstMean = Math.max(worstMean, Math.abs(sum - expected.all_logits_sum[t]) / V);
}
console.log(`onnxruntime vs torch: max |diff| of the last logits ${worst.toExponential(2)}, of the mean logits ${worstMean.toExponential(2)}`);
if (!(worst < 1e-4 && worstMean < 1e-5)) process.exit(1);
