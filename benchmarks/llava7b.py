"""A LLaVA-1.5-7B-shaped generator with random bf16 weights, built on the GPU (no download)."""
from __future__ import annotations

import time

import torch

from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import TinyLlava
from genixer.tasks import CommonVQA, TemplatePool
from genixer.tasks.templates import TEMPLATES_DIR

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
NEW_TOKENS = 128
VOCAB = 32064  # llava-hf/llava-1.5-7b-hf's text vocabulary (Vicuna's 32000 + added tokens, padded)
LLAVA_7B = dict(  # CLIP ViT-L/14-336 + Vicuna-7B
    image_size=336, vocab_size=4000, max_length=2048,
    vision=dict(patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
    text=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=32),
)


def build_llava_7b(device: str = "cuda"):
    """(model, codec, task): the tokenizer is trained locally; the LM's vocabulary is resized to Vicuna's."""
    pool = TemplatePool(TEMPLATES_DIR / "generic_instructions.json")
    task = CommonVQA("common_vqa", "\nThis is the Common VQA task.", pool)
    backbone = TinyLlava(Conversation("vicuna_v1", SYSTEM), **LLAVA_7B)
    codec = backbone.codec([SYSTEM, *pool.templates, task.suffix] * 10)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = backbone.build(codec).eval()
        model.resize_token_embeddings(VOCAB, mean_resizing=False)
    torch.set_default_dtype(torch.float32)
    return model, codec, task


def copy_bandwidth(gib: int = 4) -> float:
    """Device-to-device copy, bytes read + written per second (the roofline's bandwidth)."""
    src = torch.empty(gib << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    return 2 * src.numel() * 10 / (time.perf_counter() - start)
