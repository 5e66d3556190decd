"""A deeper copy of a LLaVA-shaped checkpoint that computes the same function (depth up-scaling).

After each decoder layer of the language model comes a copy of it whose output projections (attention ``o_proj``,
MLP ``down_proj``) are zero: the copy adds nothing to the residual stream, so the deeper model's logits equal the
source's, and fine-tuning starts from the source's quality with the new layers' capacity to learn. The copy's other
weights are the layer's own, so its attention and MLP read features the source already computes.

    python -m genixer.training.deepen SRC DST   # every layer followed by its zeroed copy: twice as deep
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from transformers import LlavaForConditionalGeneration

# the source's description and results (and its *.jsonl samples), not the deeper model's
NOT_COPIED = {"config.json", "model.safetensors", "RECIPE.md", "metrics.json", "train_config.yaml"}
ZEROED = ("self_attn.o_proj.", "mlp.down_proj.")


def deepen(model: LlavaForConditionalGeneration) -> LlavaForConditionalGeneration:
    """``model`` with each language-model layer followed by a copy whose output projections are zero."""
    config = model.config
    layers = config.text_config.num_hidden_layers
    config.text_config.num_hidden_layers = 2 * layers
    if getattr(config.text_config, "layer_types", None):   # per-layer attention kinds: each copy as its layer
        config.text_config.layer_types = [kind for kind in config.text_config.layer_types for _ in range(2)]
    deeper = LlavaForConditionalGeneration(config).to(model.dtype)
    prefix = "model.language_model.layers."
    state = {}
    for name, tensor in model.state_dict().items():
        if not name.startswith(prefix):
            state[name] = tensor
            continue
        index, rest = name[len(prefix):].split(".", 1)
        state[f"{prefix}{2 * int(index)}.{rest}"] = tensor
        copy = torch.zeros_like(tensor) if rest.startswith(ZEROED) else tensor.clone()
        state[f"{prefix}{2 * int(index) + 1}.{rest}"] = copy
    missing, unexpected = deeper.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"deepen: weights not mapped: missing {sorted(set(missing) - tied)}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        deeper.tie_weights()
    return deeper.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a checkpoint directory (from_pretrained)")
    parser.add_argument("target", type=Path, help="where the deeper checkpoint goes (must not exist)")
    args = parser.parse_args(argv)
    if args.target.exists():
        raise SystemExit(f"deepen: {args.target} exists; refusing to overwrite it")
    model = LlavaForConditionalGeneration.from_pretrained(args.source)
    deeper = deepen(model)
    deeper.save_pretrained(args.target)
    for path in args.source.iterdir():   # tokenizer, codec, processor, conversation, vision config
        if path.is_file() and path.name not in NOT_COPIED and path.suffix != ".jsonl" and not (args.target / path.name).exists():
            shutil.copy2(path, args.target / path.name)
    layers = deeper.config.text_config.num_hidden_layers
    print(f"{args.target}: {layers} layers ({layers // 2} zeroed copies), "
          f"{sum(p.numel() for p in deeper.parameters()) / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
