"""Generation settings (``generate.yaml``'s ``generation:`` block), validated before any model loads."""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import GenerationConfig

from genixer.generation.sampling import NOISES

CACHES = ("dynamic", "static", "engine")  # HF generate; our static-cache loop; our continuous-batching engine
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "sample_tokens", "noise", "greedy_boxes",
            "word_groups")  # used only when do_sample is true
OURS = {"sample_tokens", "noise", "greedy_boxes", "word_groups"}  # sampling settings of our sampler that HF's GenerationConfig does not have
STATIC_KWARGS = {"max_new_tokens", "min_new_tokens"}  # what the static-cache loop and the engine implement
SET_BY_THE_CODEC = {"pad_token_id", "eos_token_id", "bos_token_id"}


def _auto_flag(kwargs: dict[str, Any], key: str) -> bool | None:
    """Pop an engine switch: true, false, or auto (None: decided by the device)."""
    value = kwargs.pop(key, "auto")
    if value not in ("auto", None, True, False):
        raise ValueError(f"generation.{key} must be auto, true or false, got {value!r}")
    return None if value == "auto" else value


@dataclass(frozen=True)
class Decoding:
    """How to decode: the cache option, greedy or per-sample sampling, and HF ``generate`` kwargs."""

    cache: str = "dynamic"
    do_sample: bool = False
    slots: int | str = "auto"  # the engine's concurrent sequences: a count, or "auto" (from free GPU memory)
    compile_prefill: bool | None = None  # the engine's prefill through compiled decoder layers (None: on a GPU)
    compile_decode: bool | None = None  # its decode steps too, inside their CUDA graphs (None: on a GPU)
    best_of: int = 1  # sampled candidates per sample; > 1: each sample keeps one (``genixer.generation.best_of``)
    best_of_overall: float = 0.0  # the share of the z-score over all candidates in that choice, beside the kind's
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature / top_p / top_k / min_p
    kwargs: dict[str, Any] = field(default_factory=dict)  # max_new_tokens, min_new_tokens, ...

    @classmethod
    def from_config(cls, generation: Mapping[str, Any]) -> Decoding:
        """Check every key against ``GenerationConfig`` (a misspelling fails here, not after the model loads)."""
        kwargs = dict(generation)
        cache, do_sample = kwargs.pop("cache", "dynamic"), bool(kwargs.pop("do_sample", False))
        slots = kwargs.pop("slots", "auto")
        if slots != "auto" and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
            raise ValueError(f"generation.slots must be a positive integer or 'auto', got {slots!r}")
        compile_prefill, compile_decode = (_auto_flag(kwargs, k) for k in ("compile_prefill", "compile_decode"))
        best_of = kwargs.pop("best_of", 1)
        if isinstance(best_of, bool) or not isinstance(best_of, int) or best_of < 1:
            raise ValueError(f"generation.best_of must be a positive integer, got {best_of!r}")
        overall = kwargs.pop("best_of_overall", 0.0)
        if isinstance(overall, bool) or not isinstance(overall, (int, float)) or overall < 0:
            raise ValueError(f"generation.best_of_overall must be a number >= 0, got {overall!r}")
        if best_of > 1 and not do_sample:
            raise ValueError("generation.best_of > 1 picks among sampled candidates: set generation.do_sample=true "
                             "(greedy candidates would all be the same text)")
        if cache not in CACHES:
            raise ValueError(f"generation.cache must be one of {CACHES}, got {cache!r}")
        known = set(GenerationConfig().to_dict()) - SET_BY_THE_CODEC - {"transformers_version", "_from_model_config"}
        for key in kwargs:
            if key not in known | OURS:
                close = difflib.get_close_matches(key, sorted(known), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"generation.{key} is not a generation setting{hint}")
        if kwargs.get("num_beams", 1) == 1:   # the default: no beam search
            kwargs.pop("num_beams", None)
        elif do_sample:
            raise ValueError("generation.num_beams > 1 searches beams greedily; with do_sample=true HF would sample "
                             "them from one global RNG, which our per-sample sampler does not allow")
        sampling = {k: kwargs.pop(k) for k in SAMPLING if k in kwargs}
        new = kwargs.get("max_new_tokens")
        if not isinstance(new, int) or isinstance(new, bool) or new < 1:
            raise ValueError(f"generation.max_new_tokens must be a positive integer, got {new!r}")
        if do_sample and not (sampling.get("temperature") or 0) > 0:
            raise ValueError(f"sampling needs generation.temperature > 0, got {sampling.get('temperature')!r}")
        if (sampling.get("noise") or "mt19937") not in NOISES:
            raise ValueError(f"generation.noise must be one of {NOISES}, got {sampling['noise']!r}")
        if not isinstance(sampling.get("greedy_boxes", False), bool):
            raise ValueError(f"generation.greedy_boxes must be true or false, got {sampling['greedy_boxes']!r}")
        if not sampling.get("greedy_boxes"):   # false: as before the option existed (the same provenance)
            sampling.pop("greedy_boxes", None)
        groups = sampling.pop("word_groups", None)
        if groups:   # none or empty: as before the option existed
            if not isinstance(groups, Sequence) or isinstance(groups, str) or not all(
                    isinstance(g, Sequence) and not isinstance(g, str) and g and all(isinstance(w, str) and w for w in g)
                    for g in groups):
                raise ValueError(f"generation.word_groups must be a list of non-empty lists of words, got {groups!r}")
            sampling["word_groups"] = [list(g) for g in groups]
        if cache in ("static", "engine") and set(kwargs) - STATIC_KWARGS:
            raise ValueError(f"generation.cache={cache} decodes greedily or with the per-sample sampler; "
                             f"unsupported: {sorted(set(kwargs) - STATIC_KWARGS)}")
        sampling = {k: v for k, v in sampling.items() if v is not None} if do_sample else {}
        return cls(cache, do_sample, slots, compile_prefill, compile_decode, best_of, float(overall), sampling, kwargs)

    def settings(self) -> dict[str, Any]:
        """What decides the generated text (the cache is only a speed option: both give the same tokens)."""
        best_of = {"best_of": self.best_of} if self.best_of > 1 else {}   # 1: as before the option existed
        if self.best_of > 1 and self.best_of_overall:
            best_of["best_of_overall"] = self.best_of_overall
        return {"do_sample": self.do_sample, **self.sampling, **self.kwargs, **best_of}
