"""The PyTorch eager ceiling for bench/gpu/run.sh: SD-Turbo's architecture (sd_turbo_arch.py), fp16, random weights,
on the same card in the same run as Atelier's figures. One JSON line per batch size, `"bench": "torch_eager"`.

NEVER RUN ON A GPU YET: written on a CPU-only machine without torch; checked only with `python3 -m py_compile`.

  python3 bench/gpu/torch_ceiling.py --batch-sizes 1,4,8,16 [--size 512 --steps 1 --iterations 10]

One image's work, as Atelier's pass does it (so the two are comparable): the text encoder on the batch's token
ids, `steps` UNet runs with the Euler (trailing) update between them, the VAE decoder, and the pixels as uint8 RGB
copied to host memory. PNG encoding is not in it (Atelier's PNG threads run beside the GPU, not before it).
No classifier-free guidance: SD-Turbo runs at guidance 0. Attention is diffusers' default (PyTorch SDPA).
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd_turbo_arch as arch  # noqa: E402


def euler_trailing_sigmas(steps):
    """EulerDiscreteScheduler sigmas for scaled_linear betas (0.00085..0.012) and trailing spacing, then 0."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, dim=0)
    train_sigmas = ((1 - alphas) / alphas) ** 0.5
    timesteps = [round(1000 - i * 1000 / steps) - 1 for i in range(steps)]
    return timesteps, [float(train_sigmas[t]) for t in timesteps] + [0.0]


@torch.inference_mode()
def one_batch(nets, batch, size, steps, device):
    text, unet, vae = nets
    ids = torch.ones((batch, arch.TEXT_POSITIONS), dtype=torch.int32, device=device)
    ids[:, 0], ids[:, 6] = 0, arch.EOS_TOKEN_ID
    context = text(ids)[0]
    timesteps, sigmas = euler_trailing_sigmas(steps)
    latents = torch.randn(batch, arch.LATENT_CHANNELS, size // 8, size // 8, device=device, dtype=context.dtype)
    latents = latents * sigmas[0]
    for i, t in enumerate(timesteps):
        scaled = latents / math.sqrt(sigmas[i] ** 2 + 1)
        timestep = torch.full((batch,), float(t), device=device)
        eps = unet(scaled, timestep, context, return_dict=False)[0]
        latents = latents + eps * (sigmas[i + 1] - sigmas[i])
    image = vae.decode(latents / arch.VAE_SCALING_FACTOR, return_dict=False)[0]
    pixels = ((image / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return pixels.cpu()


def measure(nets, batch, size, steps, iterations, device):
    for _ in range(3):
        one_batch(nets, batch, size, steps, device)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iterations):
        one_batch(nets, batch, size, steps, device)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return batch * iterations / elapsed, elapsed / iterations * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    text, unet, vae, text_label = arch.build(device, torch.float16)
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        images_per_s, pass_ms = measure((text, unet, vae), batch, args.size, args.steps, args.iterations, device)
        line = {
            "bench": "torch_eager",
            "batch": batch,
            "resolution": f"{args.size}x{args.size}",
            "steps": args.steps,
            "images_per_s": round(images_per_s, 3),
            "pass_ms": round(pass_ms, 2),
            "text_encoder": text_label,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0),
            "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
