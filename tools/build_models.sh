#!/bin/sh
# Rebuilds every shipped model from scratch, in order, then the manifest (about 20 minutes on 2 CPU cores).
# Needs Debian's python3-torch, python3-onnx, python3-sklearn, python3-regex and fortunes; always /usr/bin/python3.
set -eu
cd "$(dirname "$0")"
PY=/usr/bin/python3
$PY train_digits.py
$PY train_tokenizer.py
$PY train_topic.py
$PY train_lm.py
$PY manifest.py
# Compare the exported LM in onnxruntime-node with the torch logits train_lm.py wrote (needs node_modules).
if command -v node >/dev/null && [ -d ../node_modules/onnxruntime-node ]; then (cd .. && node tools/check_lm_onnx.mjs); fi
