"""Per-sample sampling: each sequence draws its randomness from its own seed.

HF ``generate`` samples every row from one global RNG, so a sample's text would depend on
which other samples share its batch (and so on the number of GPUs). Instead we decode
greedily over ``logits / temperature`` (top-k / top-p filtered) plus Gumbel noise drawn from a
generator seeded by (sample seed, generated-token index): the argmax of that is an exact draw
from the filtered softmax (the Gumbel-max trick), and it depends only on the sample.
"""
from __future__ import annotations

import hashlib

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper


def sample_seed(seed: int, sample_id: str) -> int:
    """A 63-bit seed from the run seed and the sample id (never from rank or position)."""
    digest = hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class PerSampleSampler:
    """A ``LogitsProcessor`` for ``generate(do_sample=False)`` that makes greedy decoding sample.

    Temperature, top-k and top-p are transformers' own logits warpers; only the noise is ours.
    ``sample_tokens``: sample only the first n generated tokens (the opening that decides what kind of
    sample it is), then decode greedily; None samples every token.
    """

    def __init__(self, seeds: list[int], prompt_length: int, temperature: float = 1.0,
                 top_p: float | None = None, top_k: int | None = None, sample_tokens: int | None = None) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be > 0 for sampling (use do_sample=false for greedy)")
        if sample_tokens is not None and (isinstance(sample_tokens, bool) or not isinstance(sample_tokens, int)
                                          or sample_tokens < 1):
            raise ValueError(f"sample_tokens must be a positive integer or None, got {sample_tokens!r}")
        self.seeds, self.prompt_length, self.sample_tokens = seeds, prompt_length, sample_tokens
        # HF's order (temperature, then top-k, then top-p) and its filter value, -inf.
        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length  # generated tokens so far: padding-independent
        if self.sample_tokens is not None and step >= self.sample_tokens:
            return scores  # past the sampled opening: greedy
        logits = self.warpers(input_ids, scores.float())
        noise = torch.stack([self._gumbel(seed, step, logits.shape[-1]) for seed in self.seeds]).to(logits.device)
        return logits + noise

    @staticmethod
    def _gumbel(seed: int, step: int, size: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed((seed + 1_000_003 * step) % (2**63))
        uniform = torch.rand(size, generator=generator).clamp_(1e-10, 1.0)
        return -torch.log(-torch.log(uniform))
