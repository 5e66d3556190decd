"""Per-sample sampling: each sequence draws its randomness from its own seed.

HF ``generate`` samples every row from one global RNG, so a sample's text would depend on
which other samples share its batch (and so on the number of GPUs). Instead we decode
greedily over ``logits / temperature`` (top-k / top-p filtered) plus Gumbel noise keyed by (sample
seed, generated-token index): the argmax of that is an exact draw from the filtered softmax (the
Gumbel-max trick), and it depends only on the sample.

Two noise sources (``generation.noise``), both independent of batch and rank:
  mt19937  a CPU ``torch.Generator``'s stream per sample and step (the default; every published sampled run used
           it). With logits on a GPU the same uniforms are computed there (``genixer.generation.mt19937``, bit for
           bit), so nothing is drawn on the host and the decode engine captures it in its CUDA graphs; the GPU's
           log may round the Gumbel transform an ulp apart from the CPU's.
  counter  a counter-based hash of (seed, step, token), computed where the logits are (``genixer.generation.counter``:
           on a GPU one kernel): the same bits on CPU and GPU. Its draws differ from mt19937's (another stream), not
           its distribution.
"""
from __future__ import annotations

import hashlib

import torch
from transformers import (LogitsProcessorList, MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

from genixer.generation.counter import counter_gumbel
from genixer.generation.mt19937 import cpu_uniform, mt19937_uniform, uses_kernel

NOISES = ("mt19937", "counter")


def sample_seed(seed: int, sample_id: str) -> int:
    """A 63-bit seed from the run seed and the sample id (never from rank or position)."""
    digest = hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def mt19937_gumbel(seed: int, step: int, size: int) -> torch.Tensor:
    """Gumbel noise for one sample and step from a CPU generator (the original noise of our sampler)."""
    return _gumbel(cpu_uniform(torch.tensor([(seed + 1_000_003 * step) % (2**63)]), size)[0])


def mt19937_gumbel_rows(seeds: torch.Tensor, steps: torch.Tensor, size: int) -> torch.Tensor:
    """``mt19937_gumbel`` of every row (int64 ``seeds``, ``steps``) at once, on their device. The generator keeps
    the low 32 bits of its seed, which int64 wrap-around leaves as the unbounded sum has them."""
    return _gumbel(mt19937_uniform(seeds + 1_000_003 * steps, size))


def _gumbel(uniform: torch.Tensor) -> torch.Tensor:
    return -torch.log(-torch.log(uniform.clamp_(1e-10, 1.0)))


def box_marks(tokenizer, vocab_size: int | None = None) -> torch.Tensor:
    """Per token id: 1 if the token leaves a box open (its last bracket is "["), 2 if it closes one ("]"), else
    0. Learnt vocabularies merge brackets into words ("▁circle[", "]."), so the last bracket is what counts.
    ``vocab_size``: the model's, when its head is padded past the tokenizer (those ids mark nothing)."""
    marks = torch.zeros(max(len(tokenizer), vocab_size or 0), dtype=torch.long)
    for text, index in tokenizer.get_vocab().items():
        opened, closed = text.rfind("["), text.rfind("]")
        if opened != closed:
            marks[index] = 1 if opened > closed else 2
    return marks


def inside_box(marks: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """Whether each row of ``generated`` token ids (rows, steps) ends inside an open box: its last bracket opens."""
    before = torch.zeros(len(generated), 1, dtype=marks.dtype, device=generated.device)   # column 0: no token yet
    mark = torch.cat([before, marks[generated]], 1)
    last = torch.where(mark > 0, torch.arange(mark.shape[1], device=mark.device), 0).amax(1)
    return mark.gather(1, last[:, None]).flatten() == 1


def next_box_state(marks: torch.Tensor, state: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The box state (open or not) of each row after it emits ``tokens``."""
    mark = marks[tokens]
    return torch.where(mark > 0, mark == 1, state)


def word_groups(tokenizer, groups: list[list[str]], vocab_size: int | None = None) -> list[torch.Tensor]:
    """The token ids of each group of words (``word_groups`` of the sampler): every vocabulary entry that is one of the
    group's words, with or without the word-start mark ("▁red", "red"). A word that is no token, or two groups
    sharing one, is an error: the group would be sampled by a token that also writes something else."""
    vocab, size = tokenizer.get_vocab(), max(len(tokenizer), vocab_size or 0)
    owner: dict[int, int] = {}
    tables = []
    for g, words in enumerate(groups):
        ids = []
        for word in words:
            found = [vocab[t] for t in (f"\u2581{word}", word) if t in vocab and vocab[t] < size]
            if not found:
                raise ValueError(f"generation.word_groups: {word!r} is not one token of this tokenizer "
                                 f"({tokenizer.tokenize(' ' + word)}); a group's words must be single tokens")
            for index in found:
                if owner.setdefault(index, g) != g:
                    raise ValueError(f"generation.word_groups: {word!r} is in two groups")
            ids += found
        tables.append(torch.tensor(sorted(set(ids)), dtype=torch.long))
    return tables


class PerSampleSampler:
    """A ``LogitsProcessor`` for ``generate(do_sample=False)`` that makes greedy decoding sample.

    Temperature, top-k, top-p and min-p are transformers' own logits warpers; only the noise is ours.
    ``sample_tokens``: sample only the first n generated tokens (the opening that decides what kind of
    sample it is), then decode greedily; None samples every token. ``noise``: one of ``NOISES``.
    ``box_marks`` (``box_marks(tokenizer)``): tokens inside a box ("[0.250,...]") are decoded greedily, the
    words around them sampled: variety in what is said, the model's best coordinates for it.
    ``word_groups`` (``word_groups(tokenizer, groups)``): a group of words (colours, sizes, ...) is sampled as one
    choice, with the summed probability of its words, and the word written is the group's most likely one: which
    kind of thing is said is sampled, the value said is the model's best (an exact draw of the group: Gumbel-max
    over the groups' log-masses, each with the noise of its first token).
    """

    def __init__(self, seeds: list[int], prompt_length: int, temperature: float = 1.0,
                 top_p: float | None = None, top_k: int | None = None, min_p: float | None = None,
                 sample_tokens: int | None = None,
                 noise: str = "mt19937", box_marks: torch.Tensor | None = None,
                 word_groups: list[torch.Tensor] | None = None) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be > 0 for sampling (use do_sample=false for greedy)")
        if sample_tokens is not None and (isinstance(sample_tokens, bool) or not isinstance(sample_tokens, int)
                                          or sample_tokens < 1):
            raise ValueError(f"sample_tokens must be a positive integer or None, got {sample_tokens!r}")
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
        self.seeds, self.prompt_length, self.sample_tokens, self.noise = seeds, prompt_length, sample_tokens, noise
        self.box_marks, self.word_groups = box_marks, word_groups or []
        # HF's order (temperature, top-k, top-p, min-p) and its filter value, -inf.
        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        if min_p:  # keep the tokens at least min_p times as likely as the most likely one
            self.warpers.append(MinPLogitsWarper(min_p))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length  # generated tokens so far: padding-independent
        if self.sample_tokens is not None and step >= self.sample_tokens:
            return scores  # past the sampled opening: greedy
        sampled = self.sample_scores(scores, self.gumbel(self.seeds, [step] * len(self.seeds), scores))
        if self.box_marks is None:
            return sampled
        boxed = inside_box(self.box_marks.to(input_ids.device), input_ids[:, self.prompt_length:])
        return self.greedy_in_boxes(sampled, scores, boxed)

    def greedy_in_boxes(self, sampled: torch.Tensor, scores: torch.Tensor, boxed: torch.Tensor | None) -> torch.Tensor:
        """``sampled`` scores, but the raw ``scores`` (greedy) for rows inside a box."""
        return sampled if boxed is None else torch.where(boxed[:, None], scores.float(), sampled)

    def sample_scores(self, scores: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Scores whose argmax is the sampled token: warped ``scores`` plus ``noise``; a word group stands as one
        choice, its log-mass plus its first token's noise, on its most likely word (every other word -inf)."""
        warped = self.warp(scores)
        sampled = warped + noise
        for ids in self.word_groups:
            ids = ids.to(scores.device)
            mass = torch.logsumexp(warped[:, ids], 1) + noise[:, ids[:1]].squeeze(1)   # no host sync: CUDA graphs
            best = ids[scores[:, ids].argmax(1)]
            sampled.index_fill_(1, ids, float("-inf"))
            sampled.scatter_(1, best[:, None], mass[:, None])
        return sampled

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        """Temperature, top-k, top-p, min-p (HF's warpers ignore their ``input_ids``)."""
        return self.warpers(None, scores.float())

    def gumbel(self, seeds: list[int] | torch.Tensor, steps: list[int] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The noise of rows (``seeds``, ``steps``), shaped and placed like ``like``, computed on its device (device
        tensors in, nothing leaves the device); mt19937 noise off a GPU is drawn on the CPU per row."""
        as_tensor = lambda v: torch.as_tensor(v, dtype=torch.long, device=like.device)  # noqa: E731
        if self.noise == "counter":
            return counter_gumbel(as_tensor(seeds), as_tensor(steps), like.shape[-1])
        if uses_kernel(like.device):
            return mt19937_gumbel_rows(as_tensor(seeds), as_tensor(steps), like.shape[-1])
        rows = [mt19937_gumbel(int(seed), int(step), like.shape[-1]) for seed, step in zip(seeds, steps)]
        return torch.stack(rows).to(like.device)
