"""Exports SD-Turbo's architecture with random weights (sd_turbo_arch.py) in the diffusers ONNX layout Atelier loads.

NEVER RUN ON A GPU YET: written on a CPU-only machine without torch; checked only with `python3 -m py_compile`.

  python3 bench/gpu/export_sd_turbo.py --out DIR --tokenizer models/tiny-sd/tokenizer [--device cuda]

Layout: model_index.json, scheduler/scheduler_config.json, tokenizer/ (copied: only token ids matter to a random
network, and the host has no network to fetch CLIP's), text_encoder/model.onnx, unet/model.onnx (+ external weight
files), vae_decoder/model.onnx and vae_decoder/config.json. Names, dtypes and ranks as Atelier's pipeline expects:
  text_encoder: input_ids int32 [batch, 77] -> last_hidden_state [batch, 77, 1024], pooler_output [batch, 1024]
  unet: sample [batch, 4, h, w], timestep [batch], encoder_hidden_states [batch, 77, 1024] -> out_sample
  vae_decoder: latent_sample [batch, 4, h, w] -> sample [batch, 3, 8h, 8w]
Weights and every computation inside are fp16; inputs and outputs are float32, cast at the graph's edges, because
Atelier's pipeline keeps latents and embeddings in float32 on the host (inference/onnx/tensors.ts). Batch is dynamic;
height and width are fixed at --size (512: 64x64 latents), which lets onnxruntime plan memory once per batch size.
"""

import argparse
import json
import os
import shutil
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd_turbo_arch as arch  # noqa: E402

OPSET = 18


class Fp32Edges(nn.Module):
    """Runs `inner` in its own dtype on float32 inputs (other dtypes pass through) and returns float32 outputs."""

    def __init__(self, inner, dtype, call):
        super().__init__()
        self.inner = inner
        self.dtype = dtype
        self.call = call

    def forward(self, *inputs):
        cast = [x.to(self.dtype) if x.is_floating_point() else x for x in inputs]
        outputs = self.call(self.inner, *cast)
        if isinstance(outputs, torch.Tensor):
            return outputs.float()
        return tuple(o.float() for o in outputs)


def unet_call(unet, sample, timestep, context):
    return unet(sample, timestep, context, return_dict=False)[0]


def vae_call(vae, latents):
    return vae.decode(latents, return_dict=False)[0]


def text_call(text, input_ids):
    return text(input_ids)


def export(module, inputs, path, input_names, output_names, batch_axes):
    """torch.onnx.export with a dynamic batch: the TorchScript exporter (as diffusers' own ONNX conversion script
    uses), else the dynamo exporter where this torch has dropped the former."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    dynamic_axes = {name: {0: "batch"} for name in batch_axes}
    try:
        torch.onnx.export(
            module,
            inputs,
            path,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        return "torchscript"
    except Exception as err:  # noqa: BLE001 - any failure: try the other exporter, report both if it fails too
        print(f"TorchScript exporter failed for {path} ({err!r}); trying dynamo=True", file=sys.stderr)
    batch = torch.export.Dim("batch", min=1, max=256)
    shapes = tuple({0: batch} if name in batch_axes else None for name in input_names)
    program = torch.onnx.export(
        module,
        inputs,
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes=shapes,
        opset_version=OPSET,
        dynamo=True,
        external_data=True,
    )
    program.save(path, external_data=True)
    return "dynamo"


def write_layout(out, tokenizer_dir):
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(arch.SCHEDULER_CONFIG, f, indent=2)
    os.makedirs(os.path.join(out, "vae_decoder"), exist_ok=True)
    with open(os.path.join(out, "vae_decoder", "config.json"), "w") as f:
        json.dump({"scaling_factor": arch.VAE_SCALING_FACTOR}, f)
    shutil.copytree(tokenizer_dir, os.path.join(out, "tokenizer"), dirs_exist_ok=True)
    index = {
        "_class_name": "OnnxStableDiffusionPipeline",
        "_comment": "SD-Turbo architecture, random fp16 weights, bench/gpu/export_sd_turbo.py",
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["diffusers", "OnnxRuntimeModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "OnnxRuntimeModel"],
        "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
    }
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokenizer", required=True, help="a CLIP tokenizer folder, e.g. models/tiny-sd/tokenizer")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    text, unet, vae, text_label = arch.build(args.device, dtype)
    latent = args.size // 8
    device = args.device
    ids = torch.full((2, arch.TEXT_POSITIONS), 1, dtype=torch.int32, device=device)
    ids[:, 0], ids[:, 5] = 0, arch.EOS_TOKEN_ID
    sample = torch.randn(2, arch.LATENT_CHANNELS, latent, latent, device=device)
    timestep = torch.full((2,), 999.0, device=device)
    context = torch.randn(2, arch.TEXT_POSITIONS, arch.TEXT_HIDDEN, device=device)
    exporters = {}
    with torch.inference_mode(False), torch.no_grad():
        exporters["text_encoder"] = export(
            Fp32Edges(text, dtype, text_call),
            (ids,),
            os.path.join(args.out, "text_encoder", "model.onnx"),
            ["input_ids"],
            ["last_hidden_state", "pooler_output"],
            ["input_ids", "last_hidden_state", "pooler_output"],
        )
        exporters["unet"] = export(
            Fp32Edges(unet, dtype, unet_call),
            (sample, timestep, context),
            os.path.join(args.out, "unet", "model.onnx"),
            ["sample", "timestep", "encoder_hidden_states"],
            ["out_sample"],
            ["sample", "timestep", "encoder_hidden_states", "out_sample"],
        )
        exporters["vae_decoder"] = export(
            Fp32Edges(vae, dtype, vae_call),
            (sample[:1],),
            os.path.join(args.out, "vae_decoder", "model.onnx"),
            ["latent_sample"],
            ["sample"],
            ["latent_sample", "sample"],
        )
    write_layout(args.out, args.tokenizer)
    print(json.dumps({"export": args.out, "dtype": str(dtype), "text_encoder": text_label, "exporters": exporters}))


if __name__ == "__main__":
    main()
