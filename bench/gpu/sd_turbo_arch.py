"""SD-Turbo's architecture with random weights, for bench/gpu/run.sh (export and PyTorch ceiling share it).

NEVER RUN ON A GPU YET: written on a CPU-only machine without torch, checked only with `python3 -m py_compile`
and against the diffusers 0.42.1 source (pip download diffusers --no-deps).

sd-turbo is Stable Diffusion 2.1's architecture (stabilityai/sd-turbo's unet/, vae/ and text_encoder/ configs):
- UNet2DConditionModel: the SD 2.x v2-inference.yaml as diffusers' convert_from_ckpt.create_unet_diffusers_config
  turns it into a config: model_channels 320 x channel_mult [1, 2, 4, 4] -> block_out_channels [320, 640, 1280,
  1280]; attention_resolutions [4, 2, 1] -> three CrossAttn down blocks then a plain one (mirrored going up);
  num_head_channels 64 -> attention_head_dim [5, 10, 20, 20] (diffusers' name for the head count here);
  use_linear_in_transformer -> use_linear_projection True; context_dim 1024; 2 resnets a block.
- AutoencoderKL: block_out_channels [128, 256, 512, 512], 4 latent channels, scaling_factor 0.18215.
- Text encoder: OpenCLIP ViT-H/14's text tower as SD 2.x uses it (penultimate layer): width 1024, 16 heads,
  23 layers, MLP 4096, GELU, 77 positions, vocabulary 49408. transformers' CLIPTextModel when importable; otherwise
  the same computation written out below (pre-LN causal transformer, final LayerNorm), so the host needs no
  transformers package.
Weights are random (seeded): the figures are of the architecture, never of images.
"""

import math

import torch
from torch import nn

TEXT_HIDDEN = 1024
TEXT_LAYERS = 23
TEXT_HEADS = 16
TEXT_MLP = 4096
TEXT_POSITIONS = 77
TEXT_VOCAB = 49408
EOS_TOKEN_ID = 2
LATENT_CHANNELS = 4
VAE_SCALING_FACTOR = 0.18215

UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    only_cross_attention=False,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True,
    upcast_attention=False,
)

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=LATENT_CHANNELS,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=VAE_SCALING_FACTOR,
)

# diffusers' EulerDiscreteScheduler as sd-turbo ships it: trailing spacing, so 1-4 steps start at t=999.
SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "trailing",
    "use_karras_sigmas": False,
}


class ClipTextLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(TEXT_HIDDEN)
        self.attn = nn.MultiheadAttention(TEXT_HIDDEN, TEXT_HEADS, batch_first=True)
        self.norm2 = nn.LayerNorm(TEXT_HIDDEN)
        self.fc1 = nn.Linear(TEXT_HIDDEN, TEXT_MLP)
        self.fc2 = nn.Linear(TEXT_MLP, TEXT_HIDDEN)

    def forward(self, x, causal):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class ClipTextEncoder(nn.Module):
    """CLIPTextModel's computation for OpenCLIP ViT-H (SD 2.x), when transformers is not installed."""

    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(TEXT_VOCAB, TEXT_HIDDEN)
        self.position_embedding = nn.Embedding(TEXT_POSITIONS, TEXT_HIDDEN)
        self.layers = nn.ModuleList(ClipTextLayer() for _ in range(TEXT_LAYERS))
        self.final_norm = nn.LayerNorm(TEXT_HIDDEN)

    def forward(self, input_ids):
        seq = input_ids.shape[1]
        positions = torch.arange(seq, device=input_ids.device)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)
        causal = torch.full((seq, seq), -math.inf, device=x.device, dtype=x.dtype).triu(1)
        for layer in self.layers:
            x = layer(x, causal)
        hidden = self.final_norm(x)
        # CLIP's pooled output: the hidden state at the end-of-text token.
        eos = (input_ids == EOS_TOKEN_ID).int().argmax(dim=-1)
        pooled = hidden[torch.arange(hidden.shape[0], device=x.device), eos]
        return hidden, pooled


def text_encoder():
    """(module, label): transformers' CLIPTextModel with SD 2.x's config, or ClipTextEncoder."""
    try:
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError:
        return ClipTextEncoder(), "atelier ClipTextEncoder (transformers not installed)"
    config = CLIPTextConfig(
        vocab_size=TEXT_VOCAB,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=TEXT_MLP,
        projection_dim=512,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=TEXT_HEADS,
        max_position_embeddings=TEXT_POSITIONS,
        hidden_act="gelu",
        bos_token_id=0,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=1,
    )

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = CLIPTextModel(config)

        def forward(self, input_ids):
            out = self.model(input_ids=input_ids, return_dict=False)
            return out[0], out[1]

    return Wrapped(), "transformers CLIPTextModel"


def build(device, dtype, seed=1234):
    """The three networks in eval mode on `device` in `dtype`, with seeded random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    vae = AutoencoderKL(**VAE_CONFIG)
    text, text_label = text_encoder()
    nets = [m.to(device=device, dtype=dtype).eval() for m in (text, unet, vae)]
    return nets[0], nets[1], nets[2], text_label
