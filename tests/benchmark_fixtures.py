"""Tiny fixtures, in the official layouts, for every model benchmark of conf/benchmark (bar the mini world's).

``write_datasets(root)`` writes them under ``root`` at exactly the paths the configs name below
``${paths.datasets}`` (compose ``evaluate`` with ``paths.datasets=<root>``), and returns per benchmark name
question_id -> a right answer (the ground truth where the benchmark is scored here; a plausible answer for the
server-scored and GPT-judged ones). ``write_answers_folder`` writes those answers as LLaVA answers files, one
``<benchmark name>.jsonl`` per benchmark (the folder ``answers=`` takes for a suite).

The builders of the per-family tests (tests/test_benchmark_*.py, tests/test_gpt_judge.py) are reused where they
are plain functions; every image is then rewritten as a 32 x 32 picture of its colour (some model processors
refuse images smaller than their patch size).
"""
from __future__ import annotations

import base64
import io
import json
import pickle
from pathlib import Path

from PIL import Image
from test_benchmark_choice import mmbench_rows, scienceqa, seed_json, write_tsv
from test_benchmark_open_ended import write_json
from test_benchmark_refcoco import ref
from test_benchmark_yes_no import mme_folder, pope_files
from test_gpt_judge import write_jsonl

from genixer.tasks.boxes import format_box

SIZE = (32, 32)
SERVER_SCORED = frozenset({"vqav2_testdev", "vizwiz_test", "mmbench_en_test"})   # score None, upload() writes the file
JUDGED = frozenset({"llava_bench", "mm_vet"})                                      # GPT-judged: any plausible answer
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image(path: Path, color: tuple[int, int, int] = (90, 140, 200), size: tuple[int, int] = SIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _enlarge_images(root: Path) -> None:
    """Every image file under ``root`` rewritten at 32 x 32 (unless already larger), in its colour and in the
    format its suffix names (the reused builders write 4 x 4 images, some as PNG bytes in a .jpg)."""
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file():
            with Image.open(path) as im:
                if im.width >= SIZE[0] and im.height >= SIZE[1]:
                    continue
                color = im.convert("RGB").getpixel((0, 0))
            image(path, color)


def _enlarge_base64(text: str) -> str:
    """A base64 image (an MMBench cell) as a 32 x 32 PNG of its colour; a row-reference cell as it is."""
    if text.strip().isdigit():
        return text
    with Image.open(io.BytesIO(base64.b64decode(text))) as im:
        color = im.convert("RGB").getpixel((0, 0))
    buffer = io.BytesIO()
    Image.new("RGB", SIZE, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# ------------------------------------------------------------------------------------------ multiple choice

def _mmbench(root: Path) -> dict[str, dict[str, str]]:
    folder = root / "mmbench"
    out = {}
    for name, file, with_answers in (("mmbench_en_dev", "mmbench_dev_20230712.tsv", True),
                                     ("mmbench_cn_dev", "mmbench_dev_cn_20231003.tsv", True),
                                     ("mmbench_en_test", "mmbench_test_en_20231003.tsv", False)):
        rows = mmbench_rows(with_answers)
        for r in rows:
            r["image"] = _enlarge_base64(r["image"])
        write_tsv(folder / file, rows)
        out[name] = {str(r["index"]): r.get("answer", "A") for r in rows}
    return out


def _seed(root: Path) -> dict[str, str]:
    path = seed_json(root / "seed_bench" / "SEED-Bench.json")
    return {str(q["question_id"]): q["answer"] for q in json.loads(path.read_text())["questions"]
            if q["data_type"] == "image"}


def _scienceqa(root: Path) -> dict[str, str]:
    folder = scienceqa(root / "scienceqa")
    problems = json.loads((folder / "problems.json").read_text())
    test = json.loads((folder / "pid_splits.json").read_text())["test"]
    return {pid: "ABCDE"[problems[pid]["answer"]] for pid in test if problems[pid]["image"]}


# ------------------------------------------------------------------------------------------ yes / no

def _pope(root: Path) -> dict[str, str]:
    folder = pope_files(root)
    return {f"{path.stem.removeprefix('coco_pope_')}/{line['question_id']}": line["label"]
            for path in sorted(folder.glob("coco_pope_*.json"))
            for line in map(json.loads, path.read_text().splitlines())}


def _mme(root: Path) -> dict[str, str]:
    """Read back from the txt files: ``<image path>#<line>`` -> its Yes / No."""
    folder = mme_folder(root)
    out = {}
    for txt in sorted(folder.rglob("*.txt")):
        images = txt.parent.parent / "images" if txt.parent.name == "questions_answers_YN" else txt.parent
        picture = next(p for p in images.iterdir() if p.stem == txt.stem and p.suffix.lower() in _IMAGE_SUFFIXES)
        for k, line in enumerate(txt.read_text().splitlines()):
            out[f"{picture.relative_to(folder).as_posix()}#{k}"] = line.split("\t")[1]
    return out


# ------------------------------------------------------------------------------------------ open-ended

def _open_ended(root: Path) -> dict[str, dict[str, str]]:
    gqa = {"201307251": ("n161313", "Is it overcast?", "no"), "201640614": ("n235859", "Who is wearing the dress?", "woman"),
           "202225914": ("n336443", "What color is the car?", "red")}
    write_json(root / "gqa/testdev_balanced_questions.json", {
        qid: {"imageId": image_id, "question": question, "answer": answer, "fullAnswer": answer, "isBalanced": True,
              "types": {"structural": "query", "semantic": "attr", "detailed": "fixture"}}
        for qid, (image_id, question, answer) in gqa.items()})
    for image_id, _, _ in gqa.values():
        image(root / "gqa/images" / f"{image_id}.jpg")

    val = [("what is this?", ["soda can"] * 6 + ["can"] * 4, "other"),
           ("Is this readable?", ["unanswerable"] * 10, "unanswerable"),
           ("Is the light on?", ["yes"] * 7 + ["no"] * 3, "yes/no")]
    write_json(root / "vizwiz/val.json", [
        {"image": f"VizWiz_val_{k:08d}.jpg", "question": q, "answerable": int(t != "unanswerable"), "answer_type": t,
         "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]} for k, (q, answers, t) in enumerate(val)])
    write_json(root / "vizwiz/test.json", [{"image": f"VizWiz_test_{k:08d}.jpg", "question": q}
                                           for k, q in enumerate(["What is this?", "what color is it?"])])
    for split, n in (("val", 3), ("test", 2)):
        for k in range(n):
            image(root / "vizwiz" / split / f"VizWiz_{split}_{k:08d}.jpg")

    textvqa = [(34602, "003a8ae2ef43b901", "what is the brand of this camera?", ["dakota"] * 7 + ["nikon"] * 3),
               (34603, "003a8ae2ef43b901", "what year is shown?", ["2012"] * 10),
               (34604, "97b1112b17015396", "whats the lowest number yard line?", ["10"] * 10)]
    write_json(root / "textvqa/TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
        {"question_id": qid, "image_id": image_id, "question": q, "answers": answers, "set_name": "val"}
        for qid, image_id, q, answers in textvqa]})
    write_json(root / "textvqa/TextVQA_Rosetta_OCR_v0.2_val.json", {"data": [
        {"image_id": "003a8ae2ef43b901", "ocr_tokens": ["DAKOTA", "2012"], "ocr_info": []},
        {"image_id": "97b1112b17015396", "ocr_tokens": ["10", "20"], "ocr_info": []}]})
    for image_id in {t[1] for t in textvqa}:
        image(root / "textvqa/train_images" / f"{image_id}.jpg")

    vqa = lambda ids: {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "test2015",
                       "questions": [{"question_id": q, "image_id": q // 1000, "question": f"How many things are in {q}?"}
                                     for q in ids]}
    write_json(root / "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json", vqa([1001, 2002]))
    write_json(root / "vqav2/v2_OpenEnded_mscoco_test2015_questions.json", vqa([1000, 1001, 2002, 3003]))
    for image_id in (1, 2):
        image(root / "coco/test2015" / f"COCO_test2015_{image_id:012d}.jpg")

    return {"gqa": {qid: a for qid, (_, _, a) in gqa.items()},
            "vizwiz_val": {str(k): answers[0] for k, (_, answers, _) in enumerate(val)},
            "vizwiz_test": {"0": "soda can", "1": "unanswerable"},
            "textvqa": {str(qid): answers[0] for qid, _, _, answers in textvqa},
            "vqav2_testdev": {"1001": "2", "2002": "3"}}


# ------------------------------------------------------------------------------------------ RefCOCO family

# folder, refs file, the configs' split names -> benchmark names
_REFCOCO = (("refcoco", "refs(unc).p", {"val": "refcoco_val", "testA": "refcoco_testA", "testB": "refcoco_testB"}),
            ("refcoco+", "refs(unc).p", {"val": "refcocop_val", "testA": "refcocop_testA", "testB": "refcocop_testB"}),
            ("refcocog", "refs(umd).p", {"val": "refcocog_val", "test": "refcocog_test"}))
# COCO train2014 images 1 (32 x 32) and 2 (64 x 32: normalized by the original size, not a padded square);
# xywh boxes on multiples of 8 px, so the normalized boxes are exact in format_box's 3 decimals.
_COCO_IMAGES = {1: (32, 32), 2: (64, 32)}
_ANNOTATIONS = {100: (1, [0, 0, 16, 16]), 101: (1, [8, 16, 24, 16]), 102: (2, [32, 0, 32, 32]), 103: (2, [8, 8, 16, 24])}


def _refcoco(root: Path) -> dict[str, dict[str, str]]:
    instances = {
        "images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": w, "height": h}
                   for i, (w, h) in _COCO_IMAGES.items()],
        "annotations": [{"id": a, "image_id": i, "category_id": 1, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
                        for a, (i, box) in _ANNOTATIONS.items()],
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}
    for i, size in _COCO_IMAGES.items():
        image(root / "coco/train2014" / f"COCO_train2014_{i:012d}.jpg", (40 * i, 90, 160), size)
    out: dict[str, dict[str, str]] = {}
    for folder, refs_file, splits in _REFCOCO:
        refs, sent_id, ref_id = [], 0, 0
        for k, (split, name) in enumerate(splits.items()):
            out[name] = {}
            # two refs per split, one per image, the first with two sentences
            for ann_id, sentences in zip((100, 102) if k % 2 == 0 else (101, 103), (2, 1)):
                image_id, (x, y, w, h) = _ANNOTATIONS[ann_id]
                width, height = _COCO_IMAGES[image_id]
                said = [(sent_id + j, f"the {split} thing number {sent_id + j}") for j in range(sentences)]
                refs.append(ref(ref_id, ann_id, image_id, split, *said))
                answer = format_box([x / width, y / height, (x + w) / width, (y + h) / height])
                out[name] |= {str(s): answer for s, _ in said}
                sent_id, ref_id = sent_id + sentences, ref_id + 1
        refs.append(ref(ref_id, 100, 1, "train", (sent_id, "a training sentence")))   # never asked
        (root / folder).mkdir(parents=True, exist_ok=True)
        with (root / folder / refs_file).open("wb") as f:
            pickle.dump(refs, f, protocol=2)
        write_json(root / folder / "instances.json", instances)
    return out


# ------------------------------------------------------------------------------------------ GPT-judged

def _judged(root: Path) -> dict[str, dict[str, str]]:
    bench = root / "llava-bench-in-the-wild"
    questions = [(0, "001.jpg", "What is the name of this mountain?", "conv", "Diamond Head."),
                 (1, "001.jpg", "Describe this photo in detail.", "detail", "A volcanic crater by the sea."),
                 (2, "002.jpg", "Why is it funny?", "complex", "The dog looks bored on the sofa.")]
    write_jsonl(bench / "questions.jsonl", [{"question_id": q, "image": i, "text": t, "category": c}
                                            for q, i, t, c, _ in questions])
    write_jsonl(bench / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": "Diamond Head.\nA crater."},
                                          {"id": "002", "image": "002.jpg", "caption": ["A dog.", "On a sofa."]}])
    write_jsonl(bench / "answers_gpt4.jsonl", [{"question_id": q, "prompt": t, "answer_id": f"a{q}",
                                                "model_id": "gpt-4-0314", "text": a} for q, _, t, _, a in questions])
    for name in ("001.jpg", "002.jpg"):
        image(bench / "images" / name)
    vet = {"v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"], "question": "What is x in the equation?",
                    "answer": "-1<AND>-5"},
           "v1_1": {"imagename": "v1_1.jpg", "capability": ["rec"], "question": "Who is this?", "answer": "Elon Musk"}}
    write_json(root / "mm-vet/mm-vet.json", vet)
    for sample in vet.values():
        image(root / "mm-vet/images" / sample["imagename"])
    return {"llava_bench": {str(q): a for q, _, _, _, a in questions},
            "mm_vet": {"0": "x = -1 or x = -5", "1": "Elon Musk"}}


# ------------------------------------------------------------------------------------------ all

def write_datasets(root: Path) -> dict[str, dict[str, str]]:
    """Every conf/benchmark config's files (bar mini_world_*) under ``root`` (= ``paths.datasets``); returns
    benchmark name -> {question_id (as a string) -> a right answer}."""
    root = Path(root)
    answers: dict[str, dict[str, str]] = {}
    answers |= _mmbench(root)
    answers |= {"seed_image": _seed(root), "scienceqa_img": _scienceqa(root), "pope": _pope(root), "mme": _mme(root)}
    answers |= _open_ended(root)
    answers |= _refcoco(root)
    answers |= _judged(root)
    _enlarge_images(root)
    return answers


def write_answers_folder(folder: Path, answers: dict[str, dict[str, str]]) -> Path:
    """``<folder>/<benchmark name>.jsonl`` per benchmark, in the LLaVA answers layout (question_id kept a string)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, by_id in answers.items():
        rows = [{"question_id": qid, "prompt": "", "text": text, "model_id": "fixture"} for qid, text in by_id.items()]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                              encoding="utf-8")
    return folder
