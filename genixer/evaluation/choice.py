"""Multiple-choice benchmarks read from their official files: MMBench / MMBench-CN, SEED-Bench (image), ScienceQA-IMG.

Each follows the protocol of :mod:`genixer.evaluation.benchmarks`. Prompts are LLaVA-1.5's
(``llava/eval/model_vqa_mmbench.py``, ``model_vqa_science.py``, ``docs/Evaluation.md``); layouts, metrics
and the quirks kept are in docs/benchmarks.md §1, §2 and §3.
"""
from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import os
import re
import string
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from genixer.evaluation.benchmarks import _check_known
from genixer.evaluation.metrics import choice_letter

LETTER_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
CIRCULAR = 1_000_000  # MMBench: row index k * 1e6 + i is the k-th circular copy (options shifted) of question i
_OPTIONS = "ABCD"     # LLaVA's MMBench letters
# pandas.read_table's default NA strings: LLaVA reads the TSV with pandas, so these cells are NaN for it.
_PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
_UPLOAD_DROP = ("hint", "category", "source", "image", "comment", "l2-category")  # LLaVA's submission drops these


def load_json(path: Path, what: str) -> object:
    """A JSON file, with errors that name it (``what`` says which official file it should be)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({what}): {err}") from None


def _need(item: Mapping, keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in item]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# MMBench (docs/benchmarks.md §1)
# --------------------------------------------------------------------------------------------

def _is_none(value: str | None) -> bool:
    """LLaVA's ``is_none`` on a cell pandas has read: NaN (pandas' NA strings) or 'nan' / 'none', any case."""
    return value is None or value in _PANDAS_NA or value.lower() in ("nan", "none")


def _read_tsv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """(row number, columns, row) for each row of an MMBench TSV."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the official MMBench TSV)")
    csv.field_size_limit(2**31 - 1)  # base64 images are far longer than csv's default field limit
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        columns = list(reader.fieldnames or [])
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} (MMBench TSV columns: index, question, hint, "
                             "A, B, C, D, answer (not in test), category, l2-category, image)")
        for k, row in enumerate(reader, 1):
            yield k, columns, row


def _image_suffix(raw: bytes) -> str | None:
    for magic, suffix in ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp")):
        if raw.startswith(magic):
            return suffix
    return ".webp" if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP" else None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MMBenchBenchmark:
    """MMBench or MMBench-CN from its official TSV, scored with MMBench's CircularEval.

    Every TSV row is one question (question_id = its ``index``). The official files already hold the circular
    passes: row ``k * 1e6 + i`` is question ``i`` with its options shifted ``k`` times (and its own ``answer``);
    question ``i`` counts as correct only if every one of its rows is answered correctly (MMBench's rule).
    Answers are read with :func:`~genixer.evaluation.metrics.choice_letter` over the row's letters; the
    MMBench server extracts letters more leniently (and asks ChatGPT), so this local dev score can be lower.

    Base64 images are decoded once into ``image_cache`` (the ``image_root``), one file per distinct image,
    named by a hash of its base64 text, written atomically and reused (EN and CN can share one cache). A TSV
    without an ``answer`` column (the test splits) is scored by the server: ``score`` returns ``score`` None
    and ``upload`` writes the file LLaVA submits (an .xlsx).
    """

    def __init__(self, name: str, tsv: str, image_cache: str, prompt_suffix: str = LETTER_SUFFIX) -> None:
        self.name, self.tsv, self.image_root, self.prompt_suffix = name, Path(tsv), Path(image_cache), prompt_suffix
        self._questions: list[dict] | None = None
        self._table: tuple[list[str], list[dict]] | None = None

    def rows(self) -> tuple[list[str], list[dict]]:
        """The TSV's columns and rows, every column but ``image``, ``index`` as an int (read once)."""
        if self._table is None:
            columns, rows = [], []
            for k, columns, row in _read_tsv(self.tsv, ("index", "question", "hint", *_OPTIONS)):
                rows.append({c: v for c, v in row.items() if c != "image"} | {"index": self._index(row, k)})
            if not rows:
                raise ValueError(f"{self.tsv}: no rows")
            seen: set[int] = set()
            for r in rows:
                if r["index"] in seen:
                    raise ValueError(f"{self.tsv}: index {r['index']} appears twice")
                seen.add(r["index"])
            self._table = columns, rows
        return self._table

    def _index(self, row: dict, k: int) -> int:
        try:
            return int(row["index"])
        except (TypeError, ValueError):
            raise ValueError(f"{self.tsv}: row {k} has index {row['index']!r}, not an integer") from None

    def prompt(self, row: Mapping[str, str]) -> tuple[str, str]:
        """LLaVA's ``model_vqa_mmbench`` prompt (hint, question, the options up to the first empty one) and
        the letters of those options."""
        options = []
        for letter in _OPTIONS:
            if _is_none(row[letter]):
                break
            options.append(row[letter])
        text = row["question"] if _is_none(row["hint"]) else row["hint"] + "\n" + row["question"]
        text += "".join(f"\n{letter}. {option}" for letter, option in zip(_OPTIONS, options))
        return text + self.prompt_suffix, _OPTIONS[:len(options)]

    def questions(self) -> list[dict]:
        if self._questions is None:
            self._questions = self._build_questions()
        return self._questions

    def _build_questions(self) -> list[dict]:
        self.image_root.mkdir(parents=True, exist_ok=True)
        questions, files, references = [], {}, {}
        for k, _, row in _read_tsv(self.tsv, ("index", "question", "hint", *_OPTIONS, "image")):
            index = self._index(row, k)
            text, letters = self.prompt(row)
            questions.append({"question_id": str(index), "image": None, "text": text, "options": letters,
                              "category": row.get("category", "")})
            image = row["image"]
            if len(image) <= 64 and image.strip().isdigit():  # a copy that points at another row's image
                references[index] = int(image)
            else:
                files[index] = self._cache_image(image, f"{self.tsv}: row {k} (index {index})")
        for q in questions:
            index = int(q["question_id"])
            target = references.get(index, index)
            if target not in files:
                raise ValueError(f"{self.tsv}: index {index} takes its image from index {target}, which has none")
            q["image"] = files[target]
        return questions

    def _cache_image(self, text: str, where: str) -> str:
        try:
            raw = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"{where}: image is not base64: {err}") from None
        suffix = _image_suffix(raw)
        if suffix is None:
            raise ValueError(f"{where}: image decodes to no known format (jpg, png, gif, bmp, webp)")
        name = hashlib.sha1(text.encode("ascii", "ignore")).hexdigest()[:24] + suffix
        path = self.image_root / name
        if not path.is_file():
            _write_atomic(path, raw)
        return name

    def score(self, answers: Mapping[str, str]) -> dict:
        columns, rows = self.rows()
        _check_known(answers, {str(r["index"]) for r in rows}, self.name)
        main = {r["index"]: r for r in rows if r["index"] < CIRCULAR}
        groups: dict[int, list[dict]] = defaultdict(list)
        for r in rows:
            if r["index"] % CIRCULAR not in main:
                raise ValueError(f"{self.tsv}: index {r['index']} is a circular pass of question "
                                 f"{r['index'] % CIRCULAR}, which the file lacks")
            groups[r["index"] % CIRCULAR].append(r)
        result = {"benchmark": self.name, "metric": "MMBench CircularEval accuracy", "n": len(main),
                  "missing": sum(str(r["index"]) not in answers for r in rows)}
        if "answer" not in columns or all(_is_none(r["answer"]) for r in rows):
            return result | {"score": None, "rows": len(rows),
                             "note": "no answers in this split: the MMBench server scores it; write its file with upload()"}
        right = {r["index"]: self._right(r, answers.get(str(r["index"]), "")) for r in rows}
        hit = {i: all(right[r["index"]] for r in group) for i, group in groups.items()}
        by_category: dict[str, list[bool]] = defaultdict(list)
        for i, r in main.items():
            by_category[r.get("category") or "uncategorized"].append(hit[i])
        accuracy = sum(hit.values()) / len(hit)
        return result | {"score": 100 * accuracy, "accuracy": accuracy,
                         "vanilla_accuracy": sum(right[i] for i in main) / len(main), "rows": len(rows),
                         **{f"accuracy_{c}": sum(v) / len(v) for c, v in sorted(by_category.items())}}

    def _right(self, row: Mapping[str, str], answer: str) -> bool:
        _, letters = self.prompt(row)
        if row["answer"] not in letters:
            raise ValueError(f"{self.tsv}: index {row['index']} has answer {row['answer']!r}, not one of its "
                             f"options {', '.join(letters)}")
        return choice_letter(answer, letters) == row["answer"]

    def upload(self, answers: Mapping[str, str], out_dir: Path) -> Path:
        """``<out_dir>/<name>.xlsx`` as LLaVA's ``convert_mmbench_for_submission.py`` writes it: the TSV's
        columns less hint, category, source, image, comment and l2-category, with ``prediction`` (the raw
        answer, empty when missing) as the 7th column. Written without pandas/openpyxl (see write_xlsx)."""
        columns, rows = self.rows()
        _check_known(answers, {str(r["index"]) for r in rows}, self.name)
        kept = [c for c in columns if c not in _UPLOAD_DROP]
        kept.insert(min(6, len(kept)), "prediction")
        table = [[r["index"] if c == "index" else answers.get(str(r["index"])) if c == "prediction"
                  else None if _is_none(r.get(c)) else r[c] for c in kept] for r in rows]
        return write_xlsx(Path(out_dir) / f"{self.name}.xlsx", kept, table)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'),
    "_rels/.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'),
    "xl/workbook.xml": (
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'),
    "xl/_rels/workbook.xml.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/></Relationships>'),
}


def _column_name(i: int) -> str:
    name, i = "", i + 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


def write_xlsx(path: Path, header: Sequence[str], rows: Sequence[Sequence[str | int | None]]) -> Path:
    """A one-sheet .xlsx (header row, then ``rows``; ints as numbers, str as inline strings, None as an empty
    cell) written with the standard library, atomically: pandas and openpyxl are not dependencies."""
    def cell(ref: str, value: str | int | None) -> str:
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(_XML_ILLEGAL.sub("", str(value)))}</t></is></c>'

    lines = [f'<row r="{r}">' + "".join(cell(f"{_column_name(c)}{r}", v) for c, v in enumerate(values)) + "</row>"
             for r, values in enumerate([list(header), *rows], 1)]
    sheet = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             + "".join(lines) + "</sheetData></worksheet>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, xml in {**_XLSX_PARTS, "xl/worksheets/sheet1.xml": sheet}.items():
            z.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + xml)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, buffer.getvalue())
    return path


# --------------------------------------------------------------------------------------------
# SEED-Bench (docs/benchmarks.md §2)
# --------------------------------------------------------------------------------------------

class SEEDBenchmark:
    """SEED-Bench's image questions (``data_type == "image"``, dimensions 1-9) from the official
    ``SEED-Bench.json``; images are ``<image_root>/<data_id>`` as in the official ``eval.py``.

    Scored as LLaVA's ``convert_seed_for_submission.py`` does: an answer is right only when its text *equals*
    the answer letter (``"B"``; ``"B."`` or ``"B. a cat"`` are wrong). That is stricter than
    :func:`~genixer.evaluation.metrics.choice_letter`, on purpose: it is the rule behind LLaVA-1.5's number.
    """

    def __init__(self, name: str, annotations: str, image_root: str, prompt_suffix: str = LETTER_SUFFIX) -> None:
        self.name, self.path, self.image_root, self.prompt_suffix = name, Path(annotations), Path(image_root), prompt_suffix

    def items(self) -> tuple[list[dict], dict[int, str]]:
        """The image questions and the question type names by id."""
        data = load_json(self.path, "the official SEED-Bench.json")
        if not isinstance(data, dict) or "questions" not in data:
            raise ValueError(f"{self.path}: no 'questions' list (the official SEED-Bench.json layout)")
        types = {int(v): k for k, v in data.get("question_type", {}).items()}
        items = [q for q in data["questions"] if q.get("data_type") == "image"]
        for q in items:
            _need(q, ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer", "data_id",
                      "question_type_id"), f"{self.path}: question {q.get('question_id', '?')}")
        return items, types

    def questions(self) -> list[dict]:
        items, types = self.items()
        return [{"question_id": str(q["question_id"]), "image": q["data_id"],
                 "text": (f"{q['question']}\nA. {q['choice_a']}\nB. {q['choice_b']}\nC. {q['choice_c']}\n"
                          f"D. {q['choice_d']}{self.prompt_suffix}"),
                 "category": types.get(int(q["question_type_id"]), str(q["question_type_id"]))} for q in items]

    def score(self, answers: Mapping[str, str]) -> dict:
        items, types = self.items()
        _check_known(answers, {str(q["question_id"]) for q in items}, self.name)
        by_type: dict[str, list[bool]] = defaultdict(list)
        for q in items:
            right = answers.get(str(q["question_id"])) == q["answer"]
            by_type["all"].append(right)
            by_type[types.get(int(q["question_type_id"]), str(q["question_type_id"]))].append(right)
        accuracy = sum(by_type["all"]) / max(1, len(items))
        return {"benchmark": self.name, "metric": "SEED-Bench image accuracy (exact letter)", "n": len(items),
                "missing": sum(str(q["question_id"]) not in answers for q in items), "score": 100 * accuracy,
                "accuracy": accuracy,
                **{f"accuracy_{t}": sum(v) / len(v) for t, v in sorted(by_type.items()) if t != "all"}}


# --------------------------------------------------------------------------------------------
# ScienceQA-IMG (docs/benchmarks.md §3)
# --------------------------------------------------------------------------------------------

class ScienceQABenchmark:
    """ScienceQA's problems with an image in one split (``test``: LLaVA-1.5's SQA-IMG column), from the official
    ``problems.json`` and ``pid_splits.json``; images are ``<image_root>/<split>/<pid>/image.png``.

    The prompt is that of LLaVA's ``llava_test_CQM-A.json``: ``Context: <hint>`` (only when the hint is not
    empty), the question, the choices as ``A. ...`` lines, with each double space made single in one pass and
    the ends stripped (as LLaVA's converter did), then the suffix. Answers are read with
    :func:`~genixer.evaluation.metrics.choice_letter` (``eval_science_qa.py``'s parsing).
    """

    def __init__(self, name: str, problems: str, pid_splits: str, image_root: str, split: str = "test",
                 prompt_suffix: str = LETTER_SUFFIX) -> None:
        self.name, self.problems_path, self.splits_path = name, Path(problems), Path(pid_splits)
        self.image_root, self.split, self.prompt_suffix = Path(image_root), split, prompt_suffix

    def problems(self) -> dict[str, dict]:
        """pid -> problem, for the split's problems that have an image, in the split's order."""
        splits = load_json(self.splits_path, "the official ScienceQA pid_splits.json")
        if not isinstance(splits, dict) or self.split not in splits:
            raise ValueError(f"{self.splits_path}: no split {self.split!r} (has {', '.join(map(str, splits))})")
        problems = load_json(self.problems_path, "the official ScienceQA problems.json")
        absent = [pid for pid in splits[self.split] if pid not in problems]
        if absent:
            raise ValueError(f"{self.problems_path}: no problem {absent[0]} of split {self.split} ({len(absent)} absent)")
        chosen = {pid: problems[pid] for pid in splits[self.split] if problems[pid].get("image")}
        for pid, p in chosen.items():
            _need(p, ("question", "choices", "answer", "hint"), f"{self.problems_path}: problem {pid}")
        return chosen

    def questions(self) -> list[dict]:
        out = []
        for pid, p in self.problems().items():
            text = (f"Context: {p['hint']}\n" if p["hint"] else "") + p["question"]
            text += "".join(f"\n{letter}. {choice}" for letter, choice in zip(string.ascii_uppercase, p["choices"]))
            text = text.replace("  ", " ").strip()   # LLaVA's converter: one pass of "  " -> " ", then strip
            out.append({"question_id": pid, "image": f"{self.split}/{pid}/{p['image']}", "text": text + self.prompt_suffix,
                        "category": p.get("subject", "")})
        return out

    def score(self, answers: Mapping[str, str]) -> dict:
        problems = self.problems()
        _check_known(answers, set(problems), self.name)
        by_subject: dict[str, list[bool]] = defaultdict(list)
        for pid, p in problems.items():
            letters = string.ascii_uppercase[:len(p["choices"])]
            right = choice_letter(answers.get(pid, ""), letters) == letters[p["answer"]]
            by_subject["all"].append(right)
            by_subject[p.get("subject") or "unknown"].append(right)
        accuracy = sum(by_subject["all"]) / max(1, len(problems))
        return {"benchmark": self.name, "metric": "ScienceQA-IMG accuracy", "n": len(problems),
                "missing": sum(pid not in answers for pid in problems), "score": 100 * accuracy, "accuracy": accuracy,
                **{f"accuracy_{s}": sum(v) / len(v) for s, v in sorted(by_subject.items()) if s != "all"}}
