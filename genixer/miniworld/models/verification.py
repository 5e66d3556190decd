"""Yes / No verification data for a judge: true QA pairs and corrupted twins, checked against ground truth.

True pairs are the QA pairs of annotation records (short and long answers, multiple choice,
dialogue turns, image descriptions), written as the judge reads a generated sample's ``qa_pairs``
(a multiple-choice question with its lettered options, answered by the letter and its option). Each true pair gets one twin with a plausible wrong
answer in the same form: another answer of the same kind that questions of the data have (a
colour for a colour question, a count for a count question, the other of yes / no), as a word
or as the sentence a long answer would be; another option of a multiple-choice question; a
description with one object's colour or shape changed, or (a chosen share, when the oracle knows the world's
seed) its background phrase. The mini-world oracle must call the true
pair right and the twin wrong, else both are dropped: the
labels are balanced and every one is verified. Records come in twins: true pair, then its twin.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from genixer.backbones.codec import Codec
from genixer.data.images import load_rgb
from genixer.data.instructions import TrainCollator
from genixer.miniworld import COLORS, SHAPES, Oracle, Scene, normalize_answer, world_seed
from genixer.miniworld.scene import BACKGROUNDS
from genixer.miniworld.families_text import aokvqa_question
from genixer.miniworld.grammar import ANSWER_KIND
from genixer.miniworld.language import DESCRIBE_PROMPTS, captions, make_questions
from genixer.miniworld.longform import long_answer
from genixer.data.sources.coco import load_coco
from genixer.filtering.judge import FUYU_PROMPT, judge_text
from genixer.tasks.mc_vqa import LETTERS, format_mc_question

YES, NO = "Yes", "No"
# "a small red circle": an object named in a description (captions list every object).
MENTION = re.compile(rf"\b(?:(small|large) )?({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b")
BACKGROUND = re.compile(rf"\b(?P<bg>{'|'.join(BACKGROUNDS)}) background\b")  # a caption's background phrase


def qa_pairs(record: Mapping) -> list[tuple[str, str]]:
    """(question, answer) texts of an annotation record (dialogue turns, multiple choice, or one pair)."""
    if "turns" in record:
        return [(t["question"], t["answer"]) for t in record["turns"]]
    if "choices" in record:  # the options as lettered lines; the letter with its option text
        k = record["answer_index"]
        return [(format_mc_question(record["question"], record["choices"]), f"{LETTERS[k]}. {record['choices'][k]}")]
    return [(record["question"], record["answer"])]


def mentions(text: str) -> list[re.Match]:
    return list(MENTION.finditer(text.lower()))


class Corruptor:
    """Writes a wrong twin for a true pair and confirms both with the oracle; None when it cannot."""

    def __init__(self, oracle: Oracle, pools: Mapping[str, Sequence[str]], tries: int = 20,
                 background_twins: float = 0.0) -> None:
        self.oracle, self.pools, self.tries, self.background_twins = oracle, pools, tries, background_twins

    def pairs(self, image_id: int, record: dict, rng: np.random.Generator) -> Iterator[tuple[str, str, str, str]]:
        """(question, true answer, wrong answer, kind) for each checkable pair of a record."""
        if "choices" in record:
            wrong = self.option(image_id, record, rng)
            if wrong is not None:
                (question, answer), = qa_pairs(record)
                yield question, answer, f"{LETTERS[wrong]}. {record['choices'][wrong]}", "mc"
            return
        for question, answer in qa_pairs(record):
            twin = self.answer(image_id, question, answer, rng)
            if twin is not None:
                yield question, answer, *twin

    def answer(self, image_id: int, question: str, answer: str, rng: np.random.Generator) -> tuple[str, str] | None:
        """(wrong answer, kind): a short or long answer of the same kind, or a changed description."""
        verdict = self.oracle.check_qa(image_id, question, answer)
        if verdict.correct and verdict.qtype == "caption":
            return self.description(image_id, question, answer, rng)
        if not verdict.correct:
            return None
        short = normalize_answer(answer) == verdict.truth
        pool = self.pools[ANSWER_KIND[verdict.qtype]]
        for _ in range(self.tries):
            word = pool[rng.integers(len(pool))]
            if word == verdict.truth:
                continue
            wrong = word if short else long_answer(question, word)
            if self.oracle.check_qa(image_id, question, wrong).status == "incorrect":
                return wrong, "short" if short else "long"
        return None

    def option(self, image_id: int, record: dict, rng: np.random.Generator) -> int | None:
        """A false option of a multiple-choice question whose keyed option is the one true option."""
        question, choices = record["question"], record["choices"]
        if not self.oracle.check_mc(image_id, question, choices, record["answer_index"]).correct:
            return None
        false = [k for k in range(len(choices)) if self.oracle.check_mc(image_id, question, choices, k).status == "incorrect"]
        return int(false[rng.integers(len(false))]) if false else None

    def description(self, image_id: int, question: str, text: str, rng: np.random.Generator) -> tuple[str, str]:
        """(wrong description, kind): one mentioned object gets another colour or shape ("description"), so the
        named objects no longer match; or, for a share ``background_twins`` of the captions that name the image's
        background (known to an oracle with the world's seed), another background ("background")."""
        named = BACKGROUND.search(text.lower()) if self.background_twins else None
        if named and named["bg"] == self.oracle.background(image_id) and rng.random() < self.background_twins:
            wrong, kind = swap(text, named, "bg", BACKGROUNDS, rng), "background"
        else:
            m = mentions(text)[rng.integers(len(mentions(text)))]
            group, vocab = (2, COLORS) if rng.random() < 0.5 else (3, SHAPES)
            wrong, kind = swap(text, m, group, vocab, rng), "description"
        assert self.oracle.check_qa(image_id, question, wrong).status == "incorrect"
        return wrong, kind


def swap(text: str, m: re.Match, group: int | str, vocab: Sequence[str], rng: np.random.Generator) -> str:
    """``text`` with match group ``group`` replaced by another word of ``vocab``, drawn at random."""
    others = [v for v in vocab if v != m[group]]
    start, end = m.span(group)
    return text[:start] + others[rng.integers(len(others))] + text[end:]


def answer_pools(records: Iterable[dict], oracle: Oracle) -> dict[str, list[str]]:
    """True short answers of the data by answer kind (colour, shape, size, number, yes/no), with repeats."""
    pools: dict[str, list[str]] = defaultdict(list)
    for record in records:
        image_id = oracle.image_id(record["image"])
        for question, answer in qa_pairs(record) if "choices" not in record else ():
            verdict = oracle.check_qa(image_id, question, answer)
            if verdict.correct and verdict.qtype in ANSWER_KIND:  # captions have no answer word
                pools[ANSWER_KIND[verdict.qtype]].append(verdict.truth)
    return {kind: sorted(words) for kind, words in pools.items()}


def verification_records(records: Sequence[tuple[str, dict]], oracle: Oracle, seed: int,
                         background_twins: float = 0.0) -> list[dict]:
    """Balanced Yes / No records from (source name, annotation record) pairs; draws depend on (seed, index)."""
    corruptor = Corruptor(oracle, answer_pools((r for _, r in records), oracle), background_twins=background_twins)
    out = []
    for i, (source, record) in enumerate(records):
        rng = np.random.default_rng([seed, i])
        image_id = oracle.image_id(record["image"])
        for question, answer, wrong, kind in corruptor.pairs(image_id, record, rng):
            base = {"image": record["image"], "image_id": image_id, "question": question, "source": source, "kind": kind}
            out += [{**base, "answer": answer, "label": YES}, {**base, "answer": wrong, "label": NO}]
    return out


def heldout_annotations(instances: str, image_root: str, seed: int, world_seed: int | None = None) -> list[tuple[str, dict]]:
    """Fresh annotations for images that have none (the held-out split), with the world's own language:
    its questions with short and sentence answers, one multiple-choice question per image and, given the
    world's seed (which draws the backgrounds), one description per image."""
    coco = load_coco(instances)
    oracle, out, described = Oracle.from_coco(coco, world_seed), [], []
    for image in coco.imgs.values():
        objects = oracle.objects(image["id"])
        scene = Scene("heldout", image["id"], image["width"], image["height"], None, objects)  # questions need no background
        rng = np.random.default_rng([seed, image["id"]])
        base = {"image": str(Path(image_root) / image["file_name"])}
        for k, qa in enumerate(make_questions(scene, rng)):
            answer = long_answer(qa.question, qa.answer) if k % 2 else qa.answer
            out.append(("qa", {**base, "question": qa.question, "answer": answer}))
        mc = aokvqa_question(scene, rng)
        if mc is not None:
            out.append(("mc", {**base, "question": mc["question"], "choices": mc["choices"],
                               "answer_index": mc["correct_choice_idx"]}))
        if world_seed is not None:
            rng = np.random.default_rng([seed, image["id"], 1])
            prompt = DESCRIBE_PROMPTS[rng.integers(len(DESCRIBE_PROMPTS))]
            caption = captions(oracle.scene(image["id"]), rng, 1)[0]
            described.append(("description", {**base, "question": prompt, "answer": caption}))
    return out + described  # last, with their own draws: the other records (and their twins) stay as without them


class VerificationDataset(Dataset):
    """One human turn (image + the judge's prompt for the pair) and the reply ``Yes`` or ``No``."""

    def __init__(self, records: list[dict], codec: Codec, prompt: str) -> None:
        self.records, self.codec, self.prompt = records, codec, prompt

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        turn = (self.codec.human_message(judge_text(self.prompt, record["question"], record["answer"])), record["label"])
        input_ids, labels = self.codec.encode_train([turn])
        return {"input_ids": input_ids, "labels": labels, "pixel_values": self.codec.image(load_rgb(record["image"]))}


class TwinSampler(Sampler[int]):
    """Shuffles true / corrupted twins (records 2k, 2k+1) as units, so a batch holds both of each pair:
    their image and question then cancel out of the gradient, leaving the answer's effect (the only
    signal there is: by construction neither the question nor the answer alone predicts the label,
    so training starts on a 50/50 plateau)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        for k in torch.randperm(self.n // 2, generator=self.generator).tolist():
            yield from (2 * k, 2 * k + 1)


class VerificationDataModule(L.LightningDataModule):
    """Verification records of annotation ``sources`` (checked by the oracle of ``instances``), encoded
    by the judge's ``codec`` (the generator it is fine-tuned from).

    ``prompt`` is the judge's (one ``{}``); texts render with ``judge_text``, so training and
    scoring see the same words. ``twins``: batches hold both records of each pair (``TwinSampler``;
    an even ``batch_size``). ``background_twins``: the share of description twins that name another background
    (the oracle redraws backgrounds from ``world_file``'s seed, the world's ``world.json``).
    """

    def __init__(self, sources: Mapping | Sequence, instances: str, codec: Codec, batch_size: int,
                 num_workers: int = 0, seed: int = 0, prompt: str = FUYU_PROMPT, twins: bool = True,
                 world_file: str | None = None, background_twins: float = 0.0) -> None:
        super().__init__()
        self.sources = dict(sources) if isinstance(sources, Mapping) else {f"source{k}": s for k, s in enumerate(sources)}
        self.instances, self.codec, self.prompt = instances, codec, prompt
        self.world_file, self.background_twins = world_file, background_twins
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        if twins and batch_size % 2:
            raise ValueError(f"twin batches need an even batch_size, got {batch_size}")
        self.twins = twins
        self._records: list[dict] | None = None

    @property
    def records(self) -> list[dict]:
        if self._records is None:
            annotations = [(name, r) for name, source in self.sources.items() for r in source.load()]
            oracle = Oracle.from_instances(self.instances, world_seed(self.world_file))
            self._records = verification_records(annotations, oracle, self.seed, self.background_twins)
        return self._records

    def train_dataloader(self) -> DataLoader:
        dataset = VerificationDataset(self.records, self.codec, self.prompt)
        order = {"sampler": TwinSampler(len(dataset), self.seed)} if self.twins else {
            "shuffle": True, "generator": torch.Generator().manual_seed(self.seed)}
        return DataLoader(
            dataset, batch_size=self.batch_size, num_workers=self.num_workers, **order,
            collate_fn=TrainCollator(self.codec.tokenizer.pad_token_id), drop_last=len(dataset) >= self.batch_size,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )

