#!/usr/bin/env python3
"""A1111 "Original" emphasis references on a text encoder whose final layer norm is not the identity.

The tiny model's text encoder (tiny-sd/text_encoder) has a final layer norm with weight 1 and bias 0, so each
token vector has mean 0 and A1111's "Original" re-normalisation (z * mean_before / mean_after) divides rounding
noise by rounding noise (see tests/data/sd-ref-a1111/README.md). This script makes a second encoder that keeps
that one's weights but gives the final layer norm a seeded random weight (about 1 +- 0.4) and bias (about
0.5 +- 0.3), so the means are well away from 0, and runs AUTOMATIC1111's own code on it (imported from a checkout
given on the command line through make_a1111_refs.a1111_modules, never copied here: A1111 is AGPL).

Writes:
  models/tiny-text-ln/model.onnx   the tiny-sd text encoder ONNX (with its hidden_states.* outputs) with
                                   1. the final layer norm's weight and bias replaced, and
                                   2. the 49408 x 32 token embedding stored as the rows of the tokens the
                                      prompts below use plus one zero row for every other token, expanded in
                                      the graph (ScatterElements + Gather), so the file stays small.
  models/tiny-text-ln/config.json  tiny-sd's text_encoder/config.json
  tests/data/sd-ref-a1111-ln/
    prompts.json      per prompt: text and the file names below
    embed_<i>.npy     A1111's cond, emphasis "Original", CLIP_stop_at_last_layers = 1 (every prompt)
    embed_<i>_skip2.npy  the same with clip skip 2 (hidden_states[-2] + final_layer_norm), for the prompts in
                      SKIP2

A test swaps models/tiny-text-ln into a copy of the tiny pipeline as its text_encoder/. The torch encoder is
rebuilt from the tiny model's seed as make_reference.py does, then given the same layer norm and embedding; the
script checks that ONNX Runtime on the new file matches it.

Usage:  VENV/bin/python models/make_a1111_ln_refs.py --a1111 /path/to/stable-diffusion-webui
(VENV: numpy, torch, transformers, onnx, onnxruntime at the versions in tiny-sd/manifest.json)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_a1111_refs as mar  # noqa: E402
import make_tiny_sd as mts  # noqa: E402

LN_SEED = 20240611
SKIP2 = [2, 3, 4, 8, 10]  # prompts with emphasis (one of them two chunks) also checked at clip skip 2


def versions():
    import onnx
    import onnxruntime
    import tokenizers
    import transformers

    return dict(python=sys.version.split()[0], torch=torch.__version__, transformers=transformers.__version__,
                tokenizers=tokenizers.__version__, onnx=onnx.__version__, onnxruntime=onnxruntime.__version__,
                numpy=np.__version__)


def layer_norm_params(dim: int):
    rng = np.random.default_rng(LN_SEED)
    weight = (1.0 + 0.4 * rng.standard_normal(dim)).astype(np.float32)
    bias = (0.5 + 0.3 * rng.standard_normal(dim)).astype(np.float32)
    return weight, bias


def used_token_ids(tokenizer) -> list[int]:
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id}
    for text in mar.PROMPTS:
        # every piece A1111's parser cuts the prompt into is tokenised on its own
        pp = sys.modules.get("modules.prompt_parser")
        pieces = [t for t, _ in pp.parse_prompt_attention(text)] if pp else [text]
        for piece in pieces + [text]:
            ids.update(tokenizer(piece, add_special_tokens=False)["input_ids"])
    return sorted(ids)


def make_onnx(src: Path, dst: Path, weight, bias, ids: list[int]):
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    assert any(o.name.startswith("hidden_states.") for o in g.output), f"{src}: run add_text_hidden_states.py first"
    # 1. the final layer norm: its weight and bias are Identity copies of shared initializers
    for name, value in [("final_layer_norm.weight", weight), ("final_layer_norm.bias", bias)]:
        producers = [n for n in g.node if name in n.output]
        assert len(producers) == 1 and producers[0].op_type == "Identity", name
        g.node.remove(producers[0])
        g.initializer.append(numpy_helper.from_array(value, name))
    # 2. the token embedding: rows of the used tokens, zeros elsewhere
    emb_name = "embeddings.token_embedding.weight"
    emb_init = next(i for i in g.initializer if i.name == emb_name)
    table = numpy_helper.to_array(emb_init)
    g.initializer.remove(emb_init)
    rows = np.concatenate([np.zeros((1, table.shape[1]), np.float32), table[ids]]).astype(np.float32)
    g.initializer.extend([
        numpy_helper.from_array(rows, "ln_fixture.rows"),
        numpy_helper.from_array(np.array(ids, np.int64), "ln_fixture.ids"),
        numpy_helper.from_array(np.arange(1, len(ids) + 1, dtype=np.int64), "ln_fixture.slots"),
        numpy_helper.from_array(np.array([table.shape[0]], np.int64), "ln_fixture.vocab"),
    ])
    nodes = [
        helper.make_node("ConstantOfShape", ["ln_fixture.vocab"], ["ln_fixture.zeros"], name="/ln_fixture/Zeros",
                         value=numpy_helper.from_array(np.zeros(1, np.int64))),
        helper.make_node("ScatterElements", ["ln_fixture.zeros", "ln_fixture.ids", "ln_fixture.slots"],
                         ["ln_fixture.row_of_token"], name="/ln_fixture/Scatter", axis=0),
        helper.make_node("Gather", ["ln_fixture.rows", "ln_fixture.row_of_token"], [emb_name],
                         name="/ln_fixture/Gather", axis=0),
    ]
    for k, n in enumerate(nodes):
        g.node.insert(k, n)
    onnx.checker.check_model(m)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))
    return table, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", type=Path, required=True, help="a stable-diffusion-webui checkout")
    ap.add_argument("--fixture", type=Path, default=HERE / "tiny-sd")
    ap.add_argument("--model-out", type=Path, default=HERE / "tiny-text-ln")
    ap.add_argument("--out", type=Path, default=HERE.parent / "tests" / "data" / "sd-ref-a1111-ln")
    args = ap.parse_args()
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    manifest = json.loads((args.fixture / "manifest.json").read_text())
    mts.TEXT_CFG.update(manifest["configs"]["text"])
    tokenizer = CLIPTokenizer.from_pretrained(str(args.fixture / "tokenizer"))
    mar.a1111_modules(args.a1111, 1, "Original")  # loads A1111's prompt parser for used_token_ids
    ids = used_token_ids(tokenizer)
    weight, bias = layer_norm_params(mts.TEXT_CFG["hidden_size"])
    onnx_path = args.model_out / "model.onnx"
    table, rows = make_onnx(args.fixture / "text_encoder" / "model.onnx", onnx_path, weight, bias, ids)
    shutil.copy(args.fixture / "text_encoder" / "config.json", args.model_out / "config.json")

    # the torch twin: the tiny encoder from its seed (as make_tiny_sd.build_models builds it), same changes
    torch.manual_seed(manifest["seed"])
    te = CLIPTextModel(CLIPTextConfig(**mts.TEXT_CFG, attn_implementation="eager")).eval()
    tm = getattr(te, "text_model", te)  # transformers 5 has no .text_model
    assert np.array_equal(tm.embeddings.token_embedding.weight.detach().numpy(), table), "seed does not rebuild tiny-sd"
    index = np.zeros(table.shape[0], np.int64)
    index[ids] = np.arange(1, len(ids) + 1)
    with torch.no_grad():
        tm.embeddings.token_embedding.weight.copy_(torch.from_numpy(rows[index]))
        tm.final_layer_norm.weight.copy_(torch.from_numpy(weight))
        tm.final_layer_norm.bias.copy_(torch.from_numpy(bias))

    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for text in mar.PROMPTS[:4]:
        tok = tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt")["input_ids"]
        got = sess.run(["last_hidden_state"], {"input_ids": tok.numpy().astype(np.int32)})[0]
        with torch.no_grad():
            want = te(input_ids=tok).last_hidden_state.numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst < 1e-5, f"ONNX Runtime vs torch: {worst}"
    print(f"{onnx_path}: {onnx_path.stat().st_size} bytes, {len(ids)} token rows, ONNX vs torch max diff {worst:.2e}")

    wrapped = types.SimpleNamespace(tokenizer=tokenizer, transformer=mar.TransformerShim(te))
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    records = [dict(text=t, embed=f"embed_{i}.npy") for i, t in enumerate(mar.PROMPTS)]
    for skip, suffix, which in [(1, "", range(len(mar.PROMPTS))), (2, "_skip2", SKIP2)]:
        _, hc = mar.a1111_modules(args.a1111, skip, "Original")
        emb = hc.FrozenCLIPEmbedderWithCustomWords(wrapped, mar.Hijack())
        for i in which:
            with torch.no_grad():
                z = emb([mar.PROMPTS[i]])
            np.save(args.out / f"embed_{i}{suffix}.npy", z.numpy().astype(np.float32))
            if suffix:
                records[i]["embed_skip2"] = f"embed_{i}{suffix}.npy"
    (args.out / "prompts.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(__doc__.split("Usage:")[0] + "\nVersions: " + json.dumps(versions()) + "\n")
    print(f"{len(records)} prompts -> {args.out}")


if __name__ == "__main__":
    main()
