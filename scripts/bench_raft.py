#!/usr/bin/env python3
"""Time a RAFT export with onnxruntime's Python API on the pair benches/flow_raft.rs uses
(tests/data/flow/pairs/shift_*, 256x256, BGR in [-1, 1] as Deforum feeds torchvision's RAFT).

    python3 -m venv venv && venv/bin/pip install numpy pillow onnxruntime
    venv/bin/python scripts/bench_raft.py [MODEL_DIR]     # default models/tiny-raft
"""
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

root = Path(__file__).resolve().parent.parent
model = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "models" / "tiny-raft"
sess = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
x = [np.asarray(Image.open(root / f"tests/data/flow/pairs/shift_{s}.png").convert("RGB"))[..., ::-1]
     for s in "ab"]
x = [((i.astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy() for i in x]
feed = {"image1": x[0], "image2": x[1]}
sess.run(None, feed)
times = []
for _ in range(10):
    t = time.perf_counter()
    sess.run(None, feed)
    times.append(time.perf_counter() - t)
print(f"{model.name}: median {np.median(times) * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms over 10 runs")
