"""MLLM judge: P(Yes) that a generated QA pair is true for its image, from one forward pass.

The original (docs/original.md §4) sampled up to 10 tokens from Fuyu-8B at batch 1 and reported the
confidence of whatever it said. Here the next-token distribution right after the prompt
gives ``P(Yes) = mass(Yes forms) / (mass(Yes forms) + mass(No forms))``: deterministic, batched
(left padding), and a confident "No" scores low. ``yes_no_mass`` says how much of the
distribution the two answers take (low mass: the judge did not understand the question).
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

import torch
from torch import nn
from transformers import FuyuForCausalLM, FuyuProcessor

from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import PretrainedLlava
from genixer.data.images import load_rgb
from genixer.filtering.fuyu_inputs import FuyuInputs
from genixer.filtering.scorer import Scorer

# The original's Fuyu prompt (docs/original.md, the filters), filled with "Question: {q} Answer: {a}".
FUYU_PROMPT = "Here is a question and answer pair. Is '{}' true for this image?\nPlease answer this question with Yes or No.\n"
YES, NO = ("Yes", "yes", "YES"), ("No", "no", "NO")
# Fuyu's patch input was renamed across transformers versions (image_patches -> pixel_values).
FUYU_PATCHES = "image_patches" if "image_patches" in inspect.signature(FuyuForCausalLM.forward).parameters else "pixel_values"


def judge_text(prompt: str, question: str, answer: str) -> str:
    """The judge's input text for one pair: ``prompt`` filled with ``Question: {q} Answer: {a}``."""
    return prompt.format(f"Question: {question} Answer: {answer}")


def single_token_ids(tokenizer, words: Iterable[str]) -> list[int]:
    """Ids of the words and their leading-space forms that are one token ("Yes", "▁Yes", " Yes", ...)."""
    vocab, ids = tokenizer.get_vocab(), set()
    for word in words:
        ids.update(vocab[form] for form in (word, "▁" + word) if form in vocab)
        for text in (word, " " + word):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1:
                ids.add(encoded[0])
    ids.discard(tokenizer.unk_token_id)
    return sorted(ids)


def compile_decoder_layers(model: nn.Module) -> int:
    """``torch.compile`` each decoder layer in place, with dynamic shapes (one compile serves every batch size and
    length, and every layer: they share the code): it fuses the eager layer's norms, rotary and activation around
    the matmuls. Returns how many layers; the model's own forward (masks, image scatter) stays eager."""
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


class Judge(Scorer):
    """Judge base: items, P(Yes) scoring and summaries; subclasses load the model and build the prompt ids.

    Judges every row's ``qa_pairs`` (only rows of ``families``, when given). ``prompt``: a template
    with one ``{}``. ``dtype``: load dtype (None: torch's default, which ``bf16-true`` precision sets
    to bf16 while the model is built). ``compile_layers``: ``compile_decoder_layers`` on the built model (on
    an H200 at Fuyu-8B shape: forward 63.5 -> 82.6 judgements/s, ~15 s of compile in the first batch).
    """

    def __init__(self, path: str, prompt: str = FUYU_PROMPT, families: Iterable[str] | None = None,
                 name: str = "judge", max_pixels: int | None = None, dtype: str | None = None,
                 compile_layers: bool = False) -> None:
        super().__init__(name)
        self.compile_layers = compile_layers
        if prompt.count("{}") != 1:
            raise ValueError(f"the judge prompt needs exactly one '{{}}' placeholder: {prompt!r}")
        self.path, self.prompt = str(path), prompt
        self.families = tuple(families) if families is not None else None
        self.max_pixels, self.dtype = max_pixels, dtype

    # items ---------------------------------------------------------------------------------
    def items(self, row: dict) -> list[dict]:
        if row.get("status") != "ok" or (self.families is not None and row["family"] not in self.families):
            return []
        return [{"id": f"{row['id']}#{k}", "row_id": row["id"], "image": row["image"], "question": pair["question"],
                 "answer": pair["answer"], "pair": k} for k, pair in enumerate(row["qa_pairs"])]

    def text(self, item: dict) -> str:
        return judge_text(self.prompt, item["question"], item["answer"])

    def image(self, item: dict, image_root: Path):
        return load_rgb(Path(image_root) / item["image"], self.max_pixels)  # an absolute image path wins

    # batching and scoring --------------------------------------------------------------------
    image_key = "pixel_values"  # the model's image argument

    @property
    def tokenizer(self):
        """The tokenizer of the prompt ids (loaded lazily: in each worker, and once for ``score``)."""
        raise NotImplementedError

    def collate(self, loaded: list[dict]) -> dict:
        """Left-pad the prompts, so the last position is every row's last real token; join the images."""
        width = max(len(x["input_ids"]) for x in loaded)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(loaded), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(loaded), width), dtype=torch.long)
        for i, x in enumerate(loaded):
            n = len(x["input_ids"])
            input_ids[i, width - n :], attention_mask[i, width - n :] = x["input_ids"], 1
        images = torch.cat([x["image"] for x in loaded])
        return {"input_ids": input_ids, "attention_mask": attention_mask, self.image_key: images}

    @cached_property
    def answer_ids(self) -> tuple[list[int], list[int]]:
        """Single-token ids of Yes and of No; an error if the tokenizer has either missing."""
        yes, no = single_token_ids(self.tokenizer, YES), single_token_ids(self.tokenizer, NO)
        if not yes or not no:
            raise ValueError(f"{self.path}: the tokenizer has no single-token {'Yes' if not yes else 'No'} "
                             f"(tried {YES if not yes else NO} with and without a leading space)")
        return yes, no

    @torch.no_grad()
    def score(self, model: nn.Module, batch: dict, meta: list[dict]) -> list[dict]:
        # One forward, no cache (building one copies every layer's K/V). Positions count real tokens only, as
        # generate does (RoPE is shift-invariant: this keeps the numbers of a padded row identical to scoring it alone).
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        logits = model(**batch, position_ids=positions, logits_to_keep=1, use_cache=False).logits[:, -1]
        logp = logits.float().log_softmax(-1)
        yes_ids, no_ids = self.answer_ids
        yes, no = logp[:, yes_ids].logsumexp(-1), logp[:, no_ids].logsumexp(-1)
        p_yes = torch.sigmoid(yes - no).tolist()  # = P(yes) / (P(yes) + P(no)), stable when both are tiny
        mass = torch.logaddexp(yes, no).exp().tolist()
        return [{**m, "p_yes": p, "verdict": "Yes" if p >= 0.5 else "No", "yes_no_mass": s}
                for m, p, s in zip(meta, p_yes, mass)]

    def flops(self, model: nn.Module, batch: dict) -> float:
        """2 x parameters x the real tokens of the batch (image tokens included, padding not)."""
        return 2.0 * sum(p.numel() for p in model.parameters()) * float(batch["attention_mask"].sum())

    def summarize(self, lines: list[dict]) -> dict:
        """Per pair ``p_yes`` / ``verdict`` (None where the pair failed), their minimum, the first failure."""
        p_yes = [line.get("p_yes") for line in lines]
        scored = [p for p in p_yes if p is not None]
        out = {"p_yes": p_yes, "verdict": [line.get("verdict") for line in lines],
               "p_yes_min": min(scored) if scored else None, "pairs": len(lines)}
        failed = next((line for line in lines if "status" in line), None)
        if failed:
            out.update(status=failed["status"], reason=failed["reason"])
        return out

    def compiled(self, model: nn.Module) -> nn.Module:
        """``model`` with its decoder layers compiled when ``compile_layers`` (refused if it has none)."""
        if self.compile_layers and not compile_decoder_layers(model):
            raise ValueError(f"{self.path}: compile_layers found no *DecoderLayer modules to compile")
        return model

    def config(self) -> dict:
        return {"architecture": type(self).__name__, "model": self.path, "prompt": self.prompt,
                "max_pixels": self.max_pixels, "families": self.families}

    def check(self) -> None:
        """The checkpoint dir exists and its tokenizer has one-token Yes and No (no weights loaded)."""
        if not Path(self.path).is_dir():
            raise FileNotFoundError(f"judge checkpoint {self.path} not found")
        self.answer_ids  # noqa: B018


class FuyuJudge(Judge):
    """Fuyu (``FuyuForCausalLM`` + ``FuyuProcessor`` from a local dir), the original's judge.

    The processor appends ``<0x04>`` (beginning of answer), so the next token is the answer.
    ``fast_inputs``: build the processor's exact inputs without its padded 1080x1920 canvas
    (``FuyuInputs``); off: call the processor itself (the reference).
    """

    image_key = FUYU_PATCHES

    def __init__(self, path: str, prompt: str = FUYU_PROMPT, families: Iterable[str] | None = None,
                 name: str = "judge", max_pixels: int | None = None, dtype: str | None = None,
                 fast_inputs: bool = True, compile_layers: bool = False) -> None:
        super().__init__(path, prompt, families, name, max_pixels, dtype, compile_layers)
        self.fast_inputs, self.fast_checked = fast_inputs, False

    @cached_property
    def processor(self) -> FuyuProcessor:
        return FuyuProcessor.from_pretrained(self.path)  # it sets pad_token_id = 0 on its own tokenizer

    @cached_property
    def inputs(self) -> FuyuInputs:
        return FuyuInputs(self.processor)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def load(self, item: dict, image_root: Path) -> dict:
        image = self.image(item, image_root)
        if not self.fast_inputs:
            return self.processor_inputs(image, self.text(item))
        input_ids, patches = self.inputs(image, self.text(item))
        if not self.fast_checked:   # once per process: the fast path must still equal this transformers' processor
            reference = self.processor_inputs(image, self.text(item))
            if not (torch.equal(reference["input_ids"], input_ids) and torch.equal(reference["image"], patches)):
                raise RuntimeError("FuyuInputs differ from this transformers version's FuyuProcessor: set the judge's "
                                   "fast_inputs=false (filter.scorers.judge.scorer.fast_inputs=false)")
            self.fast_checked = True
        return {"input_ids": input_ids, "image": patches}

    def processor_inputs(self, image, text: str) -> dict:
        """The reference: ``FuyuProcessor`` itself."""
        out = self.processor(images=image, text=text, return_tensors="pt")
        patches = out["image_patches"] if "image_patches" in out else out["pixel_values"]
        if isinstance(patches, list):  # legacy nesting: a list per image
            patches = torch.cat([torch.as_tensor(p).reshape(-1, p.shape[-1]) for p in patches])
        return {"input_ids": out["input_ids"][0], "image": patches.reshape(-1, patches.shape[-1])}

    def build(self) -> nn.Module:
        self.answer_ids  # noqa: B018 - fail before loading weights when Yes/No are not single tokens
        dtype = getattr(torch, self.dtype) if self.dtype else None
        return self.compiled(FuyuForCausalLM.from_pretrained(self.path, dtype=dtype))


class LlavaJudge(Judge):
    """A LLaVA-style checkpoint dir (ours, or llava-hf with ``conversation`` given) judging in its own template.

    The prompt is the first human turn with the image, ending where the assistant's answer starts.
    """

    def __init__(self, path: str, conversation: Conversation | None = None, prompt: str = FUYU_PROMPT,
                 families: Iterable[str] | None = None, name: str = "judge", max_pixels: int | None = None,
                 dtype: str | None = None, compile_layers: bool = False) -> None:
        super().__init__(path, prompt, families, name, max_pixels, dtype, compile_layers)
        self.backbone = PretrainedLlava(self.path, conversation, self.dtype)

    @cached_property
    def codec(self):
        return self.backbone.codec()

    @property
    def tokenizer(self):
        return self.codec.tokenizer

    def load(self, item: dict, image_root: Path) -> dict:
        return {"input_ids": self.codec.encode_prompt(self.text(item)),
                "image": self.codec.image(self.image(item, image_root))[None]}

    def build(self) -> nn.Module:
        self.answer_ids  # noqa: B018 - fail before loading weights when Yes/No are not single tokens
        return self.compiled(self.backbone.build())
