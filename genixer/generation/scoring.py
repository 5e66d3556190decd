"""How likely a generator finds its own outputs: the score ``generation.best_of`` ranks candidates by."""
from __future__ import annotations

import torch


@torch.no_grad()
def output_logprobs(model, prompts: list[torch.Tensor], pixel_values: torch.Tensor, outputs: list[torch.Tensor],
                    eos_token_id: int, pad_token_id: int) -> list[tuple[float, int]]:
    """``(log p(output | image, prompt), tokens scored)`` per row under the model itself (no temperature, no
    warpers): the sum over the output's tokens up to and including its first EOS (all of them when it has none).

    One teacher-forced forward: prompts left-padded (positions from the mask, as generation has them), outputs
    right-padded after them, and only the logits that predict output tokens computed.
    """
    outputs = [until_eos(o.cpu(), eos_token_id) for o in outputs]
    width, length = max(len(p) for p in prompts), max(max(len(o) for o in outputs), 1)
    ids = torch.full((len(prompts), width + length), pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (p, o) in enumerate(zip(prompts, outputs, strict=True)):
        ids[row, width - len(p):width], mask[row, width - len(p):width] = p.cpu(), 1
        ids[row, width:width + len(o)], mask[row, width:width + len(o)] = o, 1
    device = pixel_values.device
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   pixel_values=pixel_values, logits_to_keep=length + 1).logits[:, :length].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, width:].to(device)[..., None])[..., 0]
    scored = mask[:, width:].to(device).bool()
    return [(float(s), int(n)) for s, n in zip((logp * scored).sum(-1).tolist(), scored.sum(-1).tolist())]


def until_eos(ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """The ids up to and including the first EOS (what was generated; padding follows it)."""
    hits = (ids == eos_token_id).nonzero()
    return ids[: int(hits[0]) + 1] if len(hits) else ids
