"""Train a small LLaMA-style BPE tokenizer locally (tiny models have no hub tokenizer)."""
from __future__ import annotations

from collections.abc import Iterable

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, image_token: str = "<image>", extra_tokens: Iterable[str] = (),
    split_punctuation: bool = False,
) -> PreTrainedTokenizerFast:
    """BPE with SentencePiece-like spaces ("▁"), one token per digit, a BOS prefix.

    Digits are split like LLaMA's tokenizer so box coordinates are read digit by digit.
    ``split_punctuation``: punctuation is its own token, so a word is one token whatever follows it
    ("squares?" and "squares." share "▁squares", as in LLaMA's vocabulary); without it a small corpus
    merges them into unrelated tokens, and a tiny model must learn to map one onto the other.
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    splits = [pre_tokenizers.Metaspace(prepend_scheme="never"), pre_tokenizers.Digits(individual_digits=True)]
    if split_punctuation:
        splits.append(pre_tokenizers.Punctuation(behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(splits)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = [*SPECIALS, image_token, *extra_tokens]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="right",
        extra_special_tokens={"image_token": image_token},
    )
