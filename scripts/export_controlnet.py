#!/usr/bin/env python3
"""Export a diffusers ControlNet and its base model's UNet to ONNX in the layout anim reads as
"separate ControlNets": OUT/controlnet/ (the unit's `model`) and OUT/unet_controlnet/ (copy it into
the optimum export of the same base model, beside unet/).

    python3 -m venv venv && venv/bin/pip install torch diffusers transformers onnx
    venv/bin/python scripts/export_controlnet.py lllyasviel/control_v11p_sd15_canny \
        stable-diffusion-v1-5/stable-diffusion-v1-5 out
    venv/bin/python scripts/export_controlnet.py diffusers/controlnet-canny-sdxl-1.0 \
        stabilityai/stable-diffusion-xl-base-1.0 out-xl sdxl

Arguments: CONTROLNET BASE OUT [sdxl]; CONTROLNET and BASE are Hugging Face ids or local folders.
The ControlNet takes sample, timestep, encoder_hidden_states (SDXL: text_embeds, time_ids),
controlnet_cond (RGB in [0, 1]) and conditioning_scale, and returns
down_block_{i}_additional_residual and mid_block_additional_residual; the UNet takes the same
names. One unet_controlnet/ serves every ControlNet made for that base model. A UNet over 2 GB is
written with its weights in separate files beside model.onnx: keep the folder together.
The same wrappers made the tiny test models (models/make_tiny_controlnet.py).
"""
import os
import sys

import torch
from diffusers import ControlNetModel, UNet2DConditionModel


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    cn_id, base, out = sys.argv[1], sys.argv[2], sys.argv[3]
    sdxl = len(sys.argv) == 5 and sys.argv[4] == "sdxl"
    cn = ControlNetModel.from_pretrained(cn_id).eval()
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet").eval()
    names = [f"down_block_{i}_additional_residual" for i in range(len(cn.controlnet_down_blocks))]
    names += ["mid_block_additional_residual"]
    extra = ["text_embeds", "time_ids"] if sdxl else []

    class ControlNet(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, sample, timestep, encoder_hidden_states, *rest):
            added = dict(zip(extra, rest[: len(extra)])) if sdxl else None
            cond, scale = rest[len(extra):]
            down, mid = self.m(sample, timestep, encoder_hidden_states, cond, scale,
                               added_cond_kwargs=added, return_dict=False)
            return (*down, mid)

    class UNet(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, sample, timestep, encoder_hidden_states, *rest):
            added = dict(zip(extra, rest[: len(extra)])) if sdxl else None
            res = rest[len(extra):]
            return self.m(sample, timestep, encoder_hidden_states, added_cond_kwargs=added,
                          down_block_additional_residuals=res[:-1],
                          mid_block_additional_residual=res[-1], return_dict=False)[0]

    s = unet.config.sample_size
    x, t = torch.randn(2, 4, s, s), torch.tensor([999])
    e = torch.randn(2, 77, unet.config.cross_attention_dim)
    added = []
    if sdxl:
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        added = [torch.randn(2, pooled), torch.tensor([[8.0 * s, 8 * s, 0, 0, 8 * s, 8 * s]] * 2)]
    c = torch.rand(2, 3, 8 * s, 8 * s)
    axes = {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "steps"},
            "encoder_hidden_states": {0: "batch", 1: "tokens"}, "text_embeds": {0: "batch"},
            "time_ids": {0: "batch"}, "controlnet_cond": {0: "batch", 2: "image_height", 3: "image_width"},
            "out_sample": {0: "batch", 2: "height", 3: "width"}}
    axes.update({n: {0: "batch", 2: f"{n}_h", 3: f"{n}_w"} for n in names})
    os.makedirs(f"{out}/controlnet", exist_ok=True)
    os.makedirs(f"{out}/unet_controlnet", exist_ok=True)
    with torch.no_grad():
        res = ControlNet(cn)(x, t, e, *added, c, torch.tensor(1.0))
        torch.onnx.export(ControlNet(cn), (x, t, e, *added, c, torch.tensor(1.0)),
                          f"{out}/controlnet/model.onnx",
                          input_names=["sample", "timestep", "encoder_hidden_states", *extra,
                                       "controlnet_cond", "conditioning_scale"],
                          output_names=names, dynamic_axes=axes, opset_version=17, dynamo=False)
        torch.onnx.export(UNet(unet), (x, t, e, *added, *res), f"{out}/unet_controlnet/model.onnx",
                          input_names=["sample", "timestep", "encoder_hidden_states", *extra, *names],
                          output_names=["out_sample"], dynamic_axes=axes, opset_version=17, dynamo=False)
    cn.save_config(f"{out}/controlnet")
    unet.save_config(f"{out}/unet_controlnet")


if __name__ == "__main__":
    main()
