"""A batched decode loop over a static KV cache (the ``cache: static`` generation option).

HF ``generate``'s default dynamic cache concatenates every layer's keys and values at every step,
which copies the whole cache per token (about three times the bytes attention itself reads). Here the
cache is allocated once for prompt + new tokens and written in place; finished rows emit padding, and
the loop checks for "all finished" only every ``sync_every`` steps, so the GPU never waits for the host.
Greedy by default; a ``LogitsProcessor`` (e.g. the per-sample sampler) can reshape the scores.
"""
from __future__ import annotations

import torch
from transformers import StaticCache


@torch.no_grad()
def decode_static(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                  max_new_tokens: int, eos_token_id: int, pad_token_id: int, min_new_tokens: int = 0,
                  logits_processor=None, sync_every: int = 16) -> torch.Tensor:
    """New token ids ``(batch, <= max_new_tokens)`` for left-padded prompts; pad after each row's EOS."""
    batch, prompt = input_ids.shape
    cache = StaticCache(config=model.config, max_cache_len=prompt + max_new_tokens)
    mask = torch.cat([attention_mask, attention_mask.new_ones(batch, max_new_tokens)], dim=1)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)
    logits = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=mask[:, :prompt],
                   position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    tokens = input_ids.new_full((batch, max_new_tokens), pad_token_id)
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    next_position = positions[:, -1:] + 1
    for step in range(max_new_tokens):
        scores = logits.float()
        if step < min_new_tokens:
            scores[:, eos_token_id] = float("-inf")
        if logits_processor is not None:
            scores = logits_processor(torch.cat([input_ids, tokens[:, :step]], dim=1), scores)
        chosen = torch.where(finished, pad_token_id, scores.argmax(-1))
        tokens[:, step] = chosen
        finished |= chosen == eos_token_id
        if step + 1 == max_new_tokens or ((step + 1) % sync_every == 0 and bool(finished.all())):
            return tokens[:, :step + 1]
        logits = model(input_ids=chosen[:, None], attention_mask=mask[:, :prompt + step + 1],
                       position_ids=next_position + step, past_key_values=cache, use_cache=True).logits[:, -1]
    return tokens
