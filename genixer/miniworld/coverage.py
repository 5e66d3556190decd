"""Coverage of generated data: which kinds of samples a generator writes, beside its training data.

A row's *kinds*: for QA families the question type of each question (``grammar.parse_question``: color,
shape, size, count, exist, relation, what; one per MD turn), for REC / REG / PointQA-V7W the slots its
referring expression uses ("color+shape", "size+color+shape+position", "pronoun", ...); "other" outside
the grammar. The training reference is the same kinds on the generator's training mixture, rendered and
parsed by the same tasks. Per family: kind shares (generated vs training), accuracy per kind, distinct
question forms (attribute words masked) and distinct-1 / distinct-2 of the generated texts.
"""
from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

from genixer.data.instructions import InstructionDataset
from genixer.data.mixture import Mixture

from .captions import is_describe_prompt
from .evaluator import FAMILIES
from .grammar import EXPRESSION, V7W_PATTERNS, normalize_question, parse_question
from .grounding import split_groups
from .language import NUMBER_WORDS, POSITIONS
from .scene import COLORS, SHAPES

# family -> the patterns its referring expression is read with (every other family: question types)
EXPRESSION_FAMILIES = {"rec": [EXPRESSION], "reg": [EXPRESSION], "pointqa_v7w": V7W_PATTERNS}
SLOTS = (("size", "size"), ("color", "color"), ("shape", "shape"), ("pos", "position"))
# Attribute words -> masks; "one" stays a word ("this one", "which one").
_MASKS = [(re.compile(rf"\b(?:{words})\b"), mask) for words, mask in (
    ("|".join(POSITIONS), "<pos>"), ("|".join(COLORS), "<color>"), ("|".join(f"{s}s?" for s in SHAPES), "<shape>"),
    ("small|large|big", "<size>"), ("|".join(["\\d+", *NUMBER_WORDS[2:], "zero"]), "<n>"))]
Check = Callable[[dict], tuple[bool, bool, str]]


def texts(row: Mapping) -> list[str]:
    """What a row's kinds are read from, marks and coordinates stripped: its questions (one per MD turn),
    a REC / REG expression (a REC question when no template matched), a V7W question."""
    p = row["parsed"]
    if row["family"] in ("rec", "reg"):
        raw = [r["expression"] or p["question"] for r in row["regions"]]
    elif "turns" in p:
        raw = [t["question"] for t in p["turns"]]
    else:
        raw = [p["question"]] if "question" in p else []
    return [" ".join(split_groups(t)[0].split()) for t in raw]


def kind(family: str, text: str) -> str:
    """The question type of a QA text ("caption" for a description prompt), or the slots of a referring
    expression; "other" outside the grammar."""
    q = normalize_question(text)
    if family not in EXPRESSION_FAMILIES and is_describe_prompt(q):
        return "caption"
    if family not in EXPRESSION_FAMILIES:
        parsed = parse_question(q)
        return parsed[0] if parsed else "other"
    m = next((m for rx in EXPRESSION_FAMILIES[family] if (m := rx.fullmatch(q))), None)
    if m is None:
        return "other"
    if m.group("apron"):
        return "pronoun"
    return "+".join(name for slot, name in SLOTS if m.group(f"a{slot}")) or "object"


def kinds(row: Mapping) -> list[str]:
    """The kind(s) of one accepted row (one per MD turn)."""
    return [kind(row["family"], t) for t in texts(row)]


def row_kind(row: Mapping) -> str:
    """One accepted row's kinds as one label (``candidate_kinds`` of ``generation.best_of``)."""
    return "|".join(kinds(row))


def form(text: str) -> str:
    """The normalized text with attribute words masked: 'what color is the <size> <shape> <pos>'."""
    text = normalize_question(split_groups(text)[0])
    for rx, mask in _MASKS:
        text = rx.sub(mask, text)
    return text


def distinct_n(items: Iterable[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the texts (lowercased words); 0.0 without any n-gram."""
    grams = [tuple(w[i:i + n]) for t in items for w in [re.findall(r"\w+", t.lower())] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def shares(counts: Counter) -> dict[str, float]:
    total = sum(counts.values())
    return {k: c / total for k, c in counts.items()} if total else {}


def share_ratios(gen: Mapping[str, float], train: Mapping[str, float], min_train_share: float) -> dict[str, float]:
    """gen share / training share of every training kind with at least ``min_train_share`` (absent: 0)."""
    return {k: gen.get(k, 0.0) / t for k, t in train.items() if t >= min_train_share}


class Coverage:
    """Kind shares of generated rows vs the generator's training data, per family.

    ``references``: name -> training ``Mixture``; a family's reference is the first that ``prefer`` names for the
    generator (a glob on its name) and that has it, else the one mixture that has it. When no preferred one has the
    family and several others do, there is none: the comparison would depend on the order of the list (a REC
    generator compared with another generator's REC rows), so the family says which ones and reports no ratio
    until ``prefer`` names the generator. A kind is covered at >= ``covered_ratio`` of its
    training share; kinds under ``min_train_share`` of the training data are not required.
    """

    def __init__(self, references: Mapping[str, Mixture], prefer: Mapping[str, str] | None = None,
                 min_train_share: float = 0.02, covered_ratio: float = 0.5) -> None:
        self.references, self.prefer = dict(references), dict(prefer or {})
        unknown = set(self.prefer.values()) - set(self.references)
        if unknown:
            raise ValueError(f"coverage.prefer names unknown references {sorted(unknown)}")
        self.min_train_share, self.covered_ratio = min_train_share, covered_ratio
        self._train: dict[tuple[str, str], tuple[Counter, set[str]]] = {}

    def having(self, family: str) -> list[str]:
        """The reference mixtures that have ``family``, in their order."""
        return [r for r, mixture in self.references.items() if family in {t.family for t in mixture.tasks.values()}]

    def reference(self, generator: str, family: str) -> str | None:
        """The first mixture ``prefer`` names for the generator that has ``family``, else the only one that has it."""
        having = self.having(family)
        preferred = [ref for glob, ref in self.prefer.items() if fnmatch.fnmatchcase(generator, glob) and ref in having]
        return (preferred or having)[0] if preferred or len(having) == 1 else None

    def training(self, ref: str, family: str) -> tuple[Counter, set[str]]:
        """(kind counts, forms) of ``family`` in a reference mixture: its targets as training renders them."""
        if (ref, family) not in self._train:
            counts, forms = Counter(), set()
            for row in training_rows(self.references[ref], family):
                counts.update(kinds(row))
                forms.update(map(form, texts(row)))
            self._train[ref, family] = counts, forms
        return self._train[ref, family]

    def evaluate_run(self, rows: list[dict], generator: str, check: Check | None = None) -> dict[str, dict]:
        """Per family of the accepted rows: kind shares / accuracy, forms, distinct-n, share ratios."""
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r["status"] == "ok":
                groups.setdefault(r["family"], []).append(r)
        return {family: self.family(family, group, generator, check) for family, group in groups.items()}

    def family(self, family: str, rows: list[dict], generator: str, check: Check | None) -> dict:
        verdicts = [v for r in rows for v in checked(r, check if family in FAMILIES else None)]
        counts = Counter(k for k, _ in verdicts)
        gen = shares(counts)
        all_texts = [t for r in rows for t in texts(r)]
        ref, having = self.reference(generator, family), self.having(family)
        ambiguous = having if ref is None and len(having) > 1 else []
        train_counts, train_forms = self.training(ref, family) if ref else (Counter(), set())
        train = shares(train_counts)
        types = {}
        for k in sorted(set(gen) | set(train), key=lambda k: (-train.get(k, 0.0), -gen.get(k, 0.0), k)):
            graded = [c for kk, c in verdicts if kk == k and c is not None]
            types[k] = {"share": gen.get(k, 0.0), **({"train_share": train.get(k, 0.0)} if ref else {}),
                        "accuracy": sum(graded) / len(graded) if graded else None, "n": counts[k]}
        ratios = share_ratios(gen, train, self.min_train_share)
        worst = min(ratios, key=lambda k: (ratios[k], -train[k])) if ratios else None   # ties: the most trained
        return {
            "n": len(rows), "reference": ref, **({"ambiguous": ambiguous} if ambiguous else {}), "types": types,
            "forms": len(set(map(form, all_texts))), "train_forms": len(train_forms) if ref else None,
            "distinct_1": distinct_n(all_texts, 1), "distinct_2": distinct_n(all_texts, 2),
            "min_share_ratio": ratios[worst] if worst else None, "worst": worst,
            "covered": ratios[worst] >= self.covered_ratio if worst else None,
        }


def training_rows(mixture: Mixture, family: str | None = None) -> Iterator[dict]:
    """The fields of ``family``'s (None: every family's) training targets in ``mixture``, rendered and parsed as
    training renders them."""
    items = mixture.items()
    dataset = InstructionDataset(items, mixture.tasks, codec=None, seed=mixture.seed)
    for i, (name, _) in enumerate(items):
        task = mixture.tasks[name]
        if family is None or task.family == family:
            parsed = task.parse(dataset.render(i)[0][1])
            if parsed.ok:
                yield (parsed.task or task).fields(parsed.record)


def training_shares(mixture: Mixture) -> dict[str, dict[str, float]]:
    """family -> row kind (``row_kind``) -> its share of the family's training rows in ``mixture``: the shares
    ``generation.best_of`` keeps each family's kinds at (``candidate_shares``)."""
    counts: dict[str, Counter] = {f: Counter() for f in sorted({task.family for task in mixture.tasks.values()})}
    for row in training_rows(mixture):   # one pass over the mixture for every family
        counts[row["family"]][row_kind(row)] += 1
    return {f: shares(c) for f, c in counts.items()}


def checked(row: dict, check: Check | None) -> list[tuple[str, bool | None]]:
    """(kind, oracle-correct or None) per kind of a row; an MD turn is checked as its own QA row (not graded
    when unverifiable, as MD's own check)."""
    ks = kinds(row)
    if check is None:
        return [(k, None) for k in ks]
    if "turns" in row["parsed"]:
        pairs = [check({"family": "common_vqa", "image": row["image"], "parsed": t, "qa_pairs": [t], "regions": []})
                 for t in row["parsed"]["turns"]]
        return [(k, None if status == "unverifiable" else correct) for k, (correct, _, status) in zip(ks, pairs)]
    correct = check(row)[0]
    return [(k, correct) for k in ks]
