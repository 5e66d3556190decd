"""A small Fuyu built from config with a locally trained tokenizer (tests, benchmarks, the mini world).

Fuyu's processor writes the image as ``|SPEAKER|`` runs ending in ``|NEWLINE|``, then ``<s>``, the
prompt and ``<0x04>`` (beginning of answer). It tokenizes the image run separately and drops its
first token, expecting SentencePiece's leading ``"▁"``: so both words must be ordinary vocabulary
words, split off by the pre-tokenizer, never added (special) tokens.
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import (
    FuyuConfig,
    FuyuImageProcessor,
    FuyuProcessor,
    PreTrainedTokenizerFast,
)

SPECIALS = ("<unk>", "<s>", "</s>")
WORDS = ("|SPEAKER|", "|NEWLINE|", "<0x04>")  # image patch, end of a patch row, beginning of answer
# Fuyu-8B's rotary embedding; left unset, the text model silently takes Persimmon's theta (10000).
FUYU_ROPE = {"rope_type": "default", "rope_theta": 25000.0, "partial_rotary_factor": 0.5}


def fuyu_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """BPE with SentencePiece-like spaces; Fuyu's words and newlines are pre-tokens of their own."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    isolated = Regex("|".join(re.escape(w) for w in (*WORDS, "\n")))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(isolated, "isolated"), pre_tokenizers.Metaspace(prepend_scheme="never")]
    )
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)])
    alphabet = list(string.ascii_letters + string.digits + string.punctuation + "▁")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator([*corpus, " ".join(WORDS) * 8], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def fuyu_processor(corpus: Iterable[str], vocab_size: int, max_size: tuple[int, int] = (1080, 1920)) -> FuyuProcessor:
    """Processor with a tokenizer trained on ``corpus``; images larger than ``max_size`` (h, w) shrink."""
    tokenizer = fuyu_tokenizer(corpus, vocab_size)
    missing = [w for w in WORDS if len(tokenizer.tokenize(w)) != 2]  # "▁" + the word
    if missing:
        raise ValueError(f"the tokenizer did not learn {missing} as words: raise vocab_size")
    height, width = max_size
    return FuyuProcessor(FuyuImageProcessor(size={"height": height, "width": width}), tokenizer)


def fuyu_config(processor: FuyuProcessor, **sizes) -> FuyuConfig:
    """A flat ``FuyuConfig`` (a nested ``text_config`` mis-sizes on transformers 5.17) for ``processor``."""
    tok = processor.tokenizer
    sizes.setdefault("rope_parameters", FUYU_ROPE)
    return FuyuConfig(vocab_size=sizes.pop("vocab_size", len(tok)), image_token_id=processor.image_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      **sizes)
