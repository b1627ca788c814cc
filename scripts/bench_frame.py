#!/usr/bin/env python3
"""Per-frame img2img time: anim (examples/bench_frame.rs) against diffusers' OnnxStableDiffusionImg2ImgPipeline,
same tiny model (models/tiny-sd), same sampler (DDIM), 10 steps at strength 0.6 (6 UNet calls, batch 2 for CFG),
64x64, ONNX Runtime CPU provider with default threads on both sides. Rounds alternate between the two so that
machine load hits both alike; each round times `--frames` frames after warm-up; the figures are the medians of the
per-round medians. anim also reports the share of its frame time spent outside ONNX Runtime's session runs.

Usage:  /work/venv-torch/bin/python scripts/bench_frame.py [--rounds 5] [--frames 30] [--threads N] [--size 64]
            [--provider cpu|cuda] [--exe PATH]
        (builds the example with `cargo build --release --example bench_frame` first unless --exe names a built one;
        CARGO_TARGET_DIR is honoured; scripts/device/ runs it with --provider cuda on a lent GPU machine)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
warnings.filterwarnings("ignore")


def diffusers_pipeline(threads, size, provider):
    import make_reference as mr
    from diffusers import DDIMScheduler, OnnxRuntimeModel, OnnxStableDiffusionImg2ImgPipeline
    from transformers import CLIPTokenizer

    import onnxruntime as ort

    folder = ROOT / "models" / "tiny-sd"
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads

    providers = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}[provider]

    def sess(part):
        s = ort.InferenceSession(str(folder / part / "model.onnx"), so, providers=providers)
        if s.get_providers()[0] != providers[0]:
            sys.exit(f"diffusers side: {providers[0]} did not start for {part} (got {s.get_providers()})")
        return s

    lat = size // 8
    enc_noise = mr.rng_normal((1, 4, lat, lat), 5)
    cfg = {k: v for k, v in json.loads((folder / "scheduler" / "scheduler_config.json").read_text()).items()
           if not k.startswith("_")}
    pipe = OnnxStableDiffusionImg2ImgPipeline(
        # the tiny export's encoder returns latent_parameters; the ONNX pipeline wants a sample
        vae_encoder=mr.SampledVaeEncoder(sess("vae_encoder"), enc_noise),
        vae_decoder=OnnxRuntimeModel(model=sess("vae_decoder")),
        text_encoder=OnnxRuntimeModel(model=sess("text_encoder")),
        tokenizer=CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
        unet=OnnxRuntimeModel(model=sess("unet")),
        scheduler=DDIMScheduler.from_config(cfg),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    # the 64x64 test image, each pixel repeated (size / 64) times both ways, as the Rust side does
    k = size // 64
    init = mr.pil_from_uint8(np.repeat(np.repeat(mr.make_init_image(), k, 0), k, 1))
    noise = mr.rng_normal((1, 4, lat, lat), 6)

    def frame():
        pipe(prompt="a red fox sitting in the snow, highly detailed", image=init, strength=0.6, num_inference_steps=10,
             guidance_scale=7.5, eta=0.0, generator=mr.FixedNumpyGenerator(noise), output_type="np")

    return frame


def time_diffusers(frame, frames):
    for _ in range(3):
        frame()
    ts = []
    for _ in range(frames):
        t = time.perf_counter()
        frame()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads on both sides (0: default)")
    ap.add_argument("--size", type=int, default=64, help="frame side, a multiple of 64 (the test image is scaled up)")
    ap.add_argument("--provider", choices=["cpu", "cuda"], default="cpu", help="ONNX Runtime provider on both sides")
    ap.add_argument("--exe", type=Path, help="a built bench_frame example (default: build it with cargo)")
    args = ap.parse_args()
    exe = args.exe
    if exe is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "bench_frame"], cwd=ROOT, check=True)
        exe = target / "release" / "examples" / "bench_frame"
    frame = diffusers_pipeline(args.threads, args.size, args.provider)
    anim, diff, share, ort_ms = [], [], [], []
    for r in range(args.rounds):
        out = subprocess.run([str(exe), str(ROOT / "models" / "tiny-sd"), str(args.frames), args.provider, "DDIM", "10", str(args.threads), "auto", str(args.size)], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        a = json.loads(out)
        if a["deterministic"] is not True:
            sys.exit(f"anim: seed 0 gave different bytes before and after the timed frames: {a}")
        anim.append(a["anim_frame_median_ms"])
        share.append(a["anim_outside_ort_share"])
        ort_ms.append(a["anim_ort_mean_ms"])
        diff.append(time_diffusers(frame, args.frames))
        print(f"round {r}: anim {anim[-1]:.2f} ms, diffusers {diff[-1]:.2f} ms, anim outside ORT {100 * share[-1]:.2f} %",
              file=sys.stderr)
    res = dict(anim_frame_ms=statistics.median(anim), diffusers_onnx_frame_ms=statistics.median(diff),
               speedup=statistics.median(diff) / statistics.median(anim),
               anim_outside_ort_share=statistics.median(share), anim_ort_ms=statistics.median(ort_ms),
               provider=args.provider, anim_provider=a["provider"],
               anim_cuda_graph=os.environ.get("ANIM_CUDA_GRAPH") == "1", rounds=args.rounds, frames_per_round=args.frames, threads=args.threads or "default", size=args.size, cpu_count=os.cpu_count(),
               load_average=os.getloadavg())
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
