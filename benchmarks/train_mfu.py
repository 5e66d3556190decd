"""Training throughput at LLaVA-1.5-7B shape: tokens/s per GPU and MFU of our training path.

CLIP ViT-L/14-336 (frozen) + Vicuna-7B shape, random weights, ``GeneratorModule`` (stage ``full``: projector +
LM, fp32 master weights, bf16-mixed autocast, fused AdamW, optional activation checkpointing) under a Lightning
Trainer with our ``Throughput`` callback, which measures tokens/s and MFU exactly as training runs log them
(forward + backward + optimizer step; the first batch is warm-up). Samples: 576 image tokens + ``--text`` text
tokens, of which the last ``--answer`` are supervised (LLaVA-1.5's ~800-token samples by default).

Each configuration runs in its own process (memory freed between them):
    python -m benchmarks.train_mfu --out DIR [--configs single,fsdp] [--steps 12] [--batch 8]
    python -m benchmarks.train_mfu --tiny        # CPU smoke run of the script itself (no numbers)
Writes DIR/train_mfu_<gpu>_b<batch>.json (after each configuration) with every summary and the peak memory.
"""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.llava7b import LLAVA_7B, SYSTEM, VOCAB
from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import TinyLlava, num_image_tokens
from genixer.training.generator import GeneratorModule
from genixer.training.throughput import Throughput

TINY = dict(image_size=28, vocab_size=300, max_length=256,
            vision=dict(patch_size=14, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
            text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))


class Backbone7B(TinyLlava):
    """LLaVA-1.5-7B shape with Vicuna's vocabulary size (the locally trained tokenizer is only for the codec)."""

    def build(self, codec):
        model = super().build(codec)
        model.resize_token_embeddings(self.vocab, mean_resizing=False)
        return model


class RandomBatches(Dataset):
    """Prebuilt collated batches: [image tokens][text tokens], labels on the last ``answer`` tokens only."""

    def __init__(self, config, batches: int, batch: int, text: int, answer: int, vocab: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        n_img, size = num_image_tokens(config), config.vision_config.image_size
        self.items = []
        for _ in range(batches):
            ids = torch.randint(10, vocab, (batch, n_img + text), generator=g)
            ids[:, :n_img] = config.image_token_index
            labels = torch.full_like(ids, -100)
            labels[:, -answer:] = ids[:, -answer:]
            self.items.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                               "pixel_values": torch.randn(batch, 3, size, size, generator=g)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def strategy(name: str, backbone: TinyLlava, batch: int):
    if name == "single":
        return "auto"
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy
        return FSDPStrategy(sharding_strategy="FULL_SHARD", auto_wrap_policy=set(backbone.decoder_layers),
                            state_dict_type="sharded", limit_all_gathers=True)
    if name in ("zero3", "zero2", "zero3_offload"):   # offload: optimizer states and step on the CPU (CPU Adam)
        from genixer.training.sharding import WholeInitDeepSpeed
        return WholeInitDeepSpeed(stage=int(name[4]), offload_optimizer=name.endswith("offload"),
                                  logging_batch_size_per_gpu=batch)   # batches come prebuilt
    raise ValueError(f"unknown configuration {name!r}")


def run_one(args) -> dict:
    """One configuration in this process: fit ``--steps`` batches, return the Throughput summary + memory."""
    shape = TINY if args.tiny else LLAVA_7B
    backbone = Backbone7B(Conversation("vicuna_v1", SYSTEM), **shape)
    backbone.vocab = 320 if args.tiny else VOCAB
    codec = backbone.codec([SYSTEM] * 4)
    config = backbone.build(codec).config if args.tiny else None
    if config is None:   # the 7B config without building 7B weights on the CPU
        with torch.device("meta"):
            config = backbone.build(codec).config
    fused = not args.tiny
    module = GeneratorModule(backbone, codec, optimizer=functools.partial(torch.optim.AdamW, lr=1e-5, fused=fused),
                             activation_checkpointing=args.checkpointing)
    meter = Throughput(every_n_steps=max(1, args.steps - 2))
    data = RandomBatches(config, args.steps, args.batch, args.text, args.answer, backbone.vocab)
    trainer = L.Trainer(accelerator="cpu" if args.tiny else "gpu", devices=args.devices,
                        strategy=strategy(args.config, backbone, args.batch), precision="bf16-mixed", max_steps=args.steps,
                        callbacks=[meter], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    started = time.time()
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=None, shuffle=False, pin_memory=not args.tiny))
    out = {"config": args.config, "devices": args.devices, "activation_checkpointing": args.checkpointing,
           "micro_batch": args.batch, "tokens_per_sample": num_image_tokens(config) + args.text,
           "supervised_per_sample": args.answer, "steps": args.steps, "wall_s": round(time.time() - started, 1),
           **meter.summary()}
    if torch.cuda.is_available() and not args.tiny:
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        out["device"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--configs", default="single", help="comma-separated: single, fsdp, zero2, zero3, zero3_offload")
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)   # a child process's one configuration
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--text", type=int, default=224)
    p.add_argument("--answer", type=int, default=96)
    p.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args()
    if args.config:   # child: print one JSON line
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return
    results, path = [], None
    for name in args.configs.split(","):
        cmd = [sys.executable, "-m", "benchmarks.train_mfu", "--config", name, *sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{name}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}", flush=True)
            results.append({"config": name, "error": proc.stderr[-1000:]})
            path = write(args, results)
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        results.append(result)
        print(f"{name}: {result.get('tokens_per_s_per_device', 0):.0f} tokens/s per device, "
              f"MFU {100 * result.get('mfu', 0):.1f}%, peak {result.get('peak_memory_gib', '-')} GiB, "
              f"{result['wall_s']} s", flush=True)
        path = write(args, results)   # after every configuration: a later one running out of time loses nothing
    print(f"wrote {path}")


def write(args, results: list[dict]) -> Path:
    gpu = next((r["device"] for r in results if "device" in r), "cpu").replace(" ", "_")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"train_mfu_{gpu}_b{args.batch}.json"
    path.write_text(json.dumps({"shape": "LLaVA-1.5-7B" if not args.tiny else "tiny", "results": results}, indent=1))
    return path


if __name__ == "__main__":
    main()
