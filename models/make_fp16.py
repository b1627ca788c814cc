#!/usr/bin/env python3
"""A float16 copy of the tiny model's UNet and VAE (models/tiny-sd-fp16/), for anim's fp16-export path.

Like an fp16 export (optimum `--dtype fp16`), the files store float16 weights and take and return float16
tensors; unlike one, each weight and input is cast back to float32 inside the graph, so the arithmetic stays
float32 and the models run on ONNX Runtime's CPU provider (whose float16 kernels are few). What anim sees - the
input and output element types, float16 tensors to build and read - is the same. The text encoder (6 MB) and the
tokenizer are not copied: tests assemble a folder from these parts and models/tiny-sd's others.

`--sdxl` writes models/tiny-sdxl-fp16/ instead: the tiny SDXL UNet alone, with float16 `text_embeds` and
`time_ids` as well.

Usage:  /work/venv-torch/bin/python models/make_fp16.py [--sdxl]
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent


def to_fp16(src: Path, dst: Path):
    model = onnx.load(str(src))
    g = model.graph
    new_inits, casts = [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and init.name:
            arr = numpy_helper.to_array(init).astype(np.float16)
            new_inits.append(numpy_helper.from_array(arr, init.name + "_fp16"))
            casts.append(helper.make_node("Cast", [init.name + "_fp16"], [init.name], to=TensorProto.FLOAT,
                                          name=f"cast_{init.name}"))
        else:
            new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    for inp in g.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT:
            inp.type.tensor_type.elem_type = TensorProto.FLOAT16
            internal = inp.name + "_f32"
            for node in g.node:
                for i, name in enumerate(node.input):
                    if name == inp.name:
                        node.input[i] = internal
            casts.append(helper.make_node("Cast", [inp.name], [internal], to=TensorProto.FLOAT, name=f"cast_{inp.name}"))
    tail = []
    for out in g.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT:
            out.type.tensor_type.elem_type = TensorProto.FLOAT16
            internal = out.name + "_f32"
            for node in g.node:
                for i, name in enumerate(node.output):
                    if name == out.name:
                        node.output[i] = internal
            tail.append(helper.make_node("Cast", [internal], [out.name], to=TensorProto.FLOAT16, name=f"cast_{out.name}"))
    nodes = casts + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))


def main():
    import sys

    sdxl = "--sdxl" in sys.argv[1:]
    src, out = (HERE / "tiny-sdxl", HERE / "tiny-sdxl-fp16") if sdxl else (HERE / "tiny-sd", HERE / "tiny-sd-fp16")
    if out.exists():
        shutil.rmtree(out)
    # SDXL: the UNet alone (its text_embeds and time_ids become float16 too); tests take the rest from tiny-sdxl
    for part in ["unet"] if sdxl else ["unet", "vae_encoder", "vae_decoder"]:
        to_fp16(src / part / "model.onnx", out / part / "model.onnx")
        shutil.copy(src / part / "config.json", out / part / "config.json")
    readme = __doc__.split("`--sdxl`")[0]
    if sdxl:
        readme = (f"A float16 copy of the tiny SDXL model's UNet (models/tiny-sdxl/unet), made by `make_fp16.py --sdxl`: "
                  "sample, encoder_hidden_states, text_embeds and time_ids in, out_sample out, all float16, with float32 "
                  "arithmetic inside (as below). Tests assemble an SDXL folder from it and models/tiny-sdxl's other parts.\n\n"
                  + readme.split("\n\n", 1)[1].split(" The text encoder")[0] + "\n")
    (out / "README.md").write_text(readme)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
