"""A batched decode loop over a static KV cache (the ``cache: static`` generation option).

HF ``generate``'s default dynamic cache concatenates every layer's keys and values at every step,
which copies the whole cache per token (about three times the bytes attention itself reads). Here the
cache is allocated once for prompt + new tokens and written in place; finished rows emit padding, and
the loop checks for "all finished" only every ``sync_every`` steps, so the GPU never waits for the host.
Greedy by default; a ``LogitsProcessor`` (e.g. the per-sample sampler) can reshape the scores.
Consecutive rows with the same prompt and image (``generation.best_of``'s candidates) share one prefill.
"""
from __future__ import annotations

import torch
from transformers import StaticCache


@torch.no_grad()
def decode_static(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                  max_new_tokens: int, eos_token_id: int, pad_token_id: int, min_new_tokens: int = 0,
                  logits_processor=None, sync_every: int = 16, return_logprobs: bool = False, share_prefill: bool = True):
    """New token ids ``(batch, <= max_new_tokens)`` for left-padded prompts; pad after each row's EOS.
    ``return_logprobs``: also each row's ``log p(new ids | image, prompt)`` under the model itself (no temperature, no
    processor), summed up to and including its EOS: what ``scoring.output_logprobs`` computes, without a forward.
    ``share_prefill=False`` prefills every row (benchmarks/best_of.py compares the two)."""
    batch, prompt = input_ids.shape
    cache = StaticCache(config=model.config, max_cache_len=prompt + max_new_tokens)
    mask = torch.cat([attention_mask, attention_mask.new_ones(batch, max_new_tokens)], dim=1)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)
    first, row_of = same_as_previous(input_ids, attention_mask, pixel_values) if share_prefill else (None, None)
    shared = first is not None and len(first) < batch
    rows = first if shared else slice(None)   # the rows prefilled (a slice: every row, no copy)
    logits = model(input_ids=input_ids[rows], pixel_values=pixel_values[rows], attention_mask=mask[rows, :prompt],
                   position_ids=positions[rows], past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    if shared:   # each row reads its prompt's prefill
        cache.reorder_cache(row_of)
        logits = logits[row_of]
    tokens = input_ids.new_full((batch, max_new_tokens), pad_token_id)
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    logprobs = torch.zeros(batch, dtype=torch.float32, device=input_ids.device)
    next_position = positions[:, -1:] + 1
    for step in range(max_new_tokens):
        scores = logits.float()
        if return_logprobs:
            own = torch.log_softmax(scores, -1)
        if step < min_new_tokens:
            scores[:, eos_token_id] = float("-inf")
        if logits_processor is not None:
            scores = logits_processor(torch.cat([input_ids, tokens[:, :step]], dim=1), scores)
        chosen = torch.where(finished, pad_token_id, scores.argmax(-1))
        if return_logprobs:
            logprobs += torch.where(finished, 0.0, own.gather(-1, chosen[:, None])[:, 0])
        tokens[:, step] = chosen
        finished |= chosen == eos_token_id
        if step + 1 == max_new_tokens or ((step + 1) % sync_every == 0 and bool(finished.all())):
            tokens = tokens[:, :step + 1]
            break
        logits = model(input_ids=chosen[:, None], attention_mask=mask[:, :prompt + step + 1],
                       position_ids=next_position + step, past_key_values=cache, use_cache=True).logits[:, -1]
    return (tokens, logprobs) if return_logprobs else tokens


def same_as_previous(input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor):
    """``(rows to prefill, each row's index among them)``: a row equal to the one before it (prompt, mask and
    image) reads that row's prefill."""
    repeat = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
    if len(input_ids) > 1:
        repeat[1:] = ((input_ids[1:] == input_ids[:-1]).all(-1) & (attention_mask[1:] == attention_mask[:-1]).all(-1)
                      & (pixel_values[1:] == pixel_values[:-1]).flatten(1).all(-1))
    row_of = (~repeat).long().cumsum(0) - 1
    return (~repeat).nonzero()[:, 0], row_of
