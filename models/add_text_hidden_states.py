#!/usr/bin/env python3
"""Gives the tiny text encoder the `hidden_states.{i}` outputs that optimum writes when a text encoder is
exported with `output_hidden_states=True` (SDXL exports, or `--model-kwargs '{"output_hidden_states": true}'`):
hidden_states.0 is the embeddings' output, hidden_states.{i} the output of layer i (before the final layer norm),
as transformers' CLIPTextModel returns them. The weights and the existing outputs are untouched, so every reference
made from the encoder stays valid; anim's clip_skip needs these outputs.

Usage:  /work/venv-torch/bin/python models/add_text_hidden_states.py [models/tiny-sd]
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import onnx
from onnx import helper


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "tiny-sd"
    path = root / "text_encoder" / "model.onnx"
    model = onnx.load(str(path))
    g = model.graph
    if any(o.name.startswith("hidden_states.") for o in g.output):
        print(f"{path} already has hidden_states outputs")
        return
    layers = sorted({n.name.split("/")[2] for n in g.node if n.name.startswith("/encoder/layers.")},
                    key=lambda s: int(s.split(".")[1]))
    # residual stream: the embeddings' sum, then each layer's last Add
    tensors = ["/embeddings/Add_output_0"] + [f"/encoder/{layer}/Add_1_output_0" for layer in layers]
    produced = {o for n in g.node for o in n.output}
    for t in tensors:
        assert t in produced, f"{path}: no tensor {t}"
    last = g.output[0]
    dims = [d for d in last.type.tensor_type.shape.dim]
    for i, t in enumerate(tensors):
        name = f"hidden_states.{i}"
        g.node.append(helper.make_node("Identity", [t], [name], name=f"/hidden_states_{i}"))
        out = helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        for d in dims:
            nd = out.type.tensor_type.shape.dim.add()
            nd.CopyFrom(d)
        g.output.append(out)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        data = path.read_bytes()
        manifest["files"]["text_encoder/model.onnx"] = dict(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"{path}: added {len(tensors)} hidden_states outputs")


if __name__ == "__main__":
    main()
