"""MMBench, SEED-Bench (image) and ScienceQA-IMG read from tiny fixtures in their official layouts."""
from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hydra.utils import instantiate
from PIL import Image

from conftest import compose_config
from genixer.evaluation.choice import MMBenchBenchmark, ScienceQABenchmark, SEEDBenchmark

LETTERS = "\nAnswer with the option's letter from the given choices directly."
TSV_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "source", "l2-category",
               "comment", "split", "image"]


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(color))


def mmbench_rows(with_answers: bool = True) -> list[dict]:
    """Question 0 (4 options) with its 3 circular passes; question 1 (2 options, a hint) with its pass, whose
    image points at row 1 (the VLMEvalKit short form); question 2 alone. Answers rotate with the options."""
    red, blue = base64.b64encode(png((255, 0, 0))).decode(), base64.b64encode(png((0, 0, 255))).decode()
    opts = ["cat", "dog", "bird", "fish"]    # the right one: "dog"
    rows = []
    for k in range(4):
        shifted = opts[k:] + opts[:k]
        rows.append({"index": k * 1_000_000, "question": "What animal is shown?", "hint": "nan", "A": shifted[0],
                     "B": shifted[1], "C": shifted[2], "D": shifted[3], "answer": "ABCD"[shifted.index("dog")],
                     "category": "animals", "image": red})
    rows.append({"index": 1, "question": "Is it red?", "hint": "Look at the square.", "A": "yes", "B": "no", "C": "",
                 "D": "", "answer": "A", "category": "colors", "image": red})
    rows.append({"index": 1_000_001, "question": "Is it red?", "hint": "Look at the square.", "A": "no", "B": "yes",
                 "C": "", "D": "", "answer": "B", "category": "colors", "image": "1"})
    rows.append({"index": 2, "question": "Which color?", "hint": "", "A": "blue", "B": "red", "C": "green", "D": "NA",
                 "answer": "A", "category": "colors", "image": blue})
    for r in rows:
        r.update({"source": "fixture", "l2-category": "perception", "comment": "", "split": "dev"})
        if not with_answers:
            del r["answer"]
    return rows


def write_tsv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in TSV_COLUMNS if c in rows[0]]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def seed_json(path: Path) -> Path:
    def q(qid, question, answer, data_id, data_type="image", type_id=1):
        return {"question_id": qid, "question": question, "choice_a": "one", "choice_b": "two", "choice_c": "three",
                "choice_d": "four", "answer": answer, "data_id": data_id, "data_type": data_type,
                "question_type_id": type_id}
    data = {"questions": [q("101669", "How many towels?", "A", "1454426_2591111986.jpg"),
                          q("104933", "How many cups?", "B", "2.jpg", type_id=2),
                          q("89257", "How many dogs?", "C", "3.jpg", type_id=2),
                          q("v1", "How many jumps?", "D", "video.mp4", data_type="video", type_id=10)],
            "question_type": {"Scene Understanding": 1, "Instances Counting": 2, "Action Recognition": 10}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    for q in data["questions"][:3]:
        write_png(path.parent / "SEED-Bench-image" / q["data_id"])
    return path


def scienceqa(root: Path) -> Path:
    problems = {
        "5": {"question": "Which could the test show?", "choices": ["if it broke", "how steady it was", "nothing"],
              "answer": 1, "hint": "A passage.\n\nGordon tested a  parachute.", "image": "image.png",
              "subject": "natural science", "split": "test"},
        "11": {"question": "What is the name of the colony shown?", "choices": ["Maryland", "New Hampshire"],
               "answer": 1, "hint": "", "image": "image.png", "subject": "social science", "split": "test"},
        "4": {"question": "Which figure of speech is used?", "choices": ["chiasmus", "apostrophe"], "answer": 1,
              "hint": "", "image": None, "subject": "language science", "split": "test"},
        "7": {"question": "Train question?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": "image.png",
              "subject": "natural science", "split": "train"},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps({"train": ["7"], "test": ["4", "5", "11"]}))
    for pid in ("5", "11"):
        write_png(root / "images" / "test" / pid / "image.png")
    return root


# ------------------------------------------------------------------------------------------ MMBench

@pytest.fixture
def mmbench(tmp_path) -> MMBenchBenchmark:
    return MMBenchBenchmark("mmb", str(write_tsv(tmp_path / "dev.tsv", mmbench_rows())), str(tmp_path / "cache"))


def test_mmbench_questions_are_llava_prompts_with_cached_images(mmbench):
    qs = {q["question_id"]: q for q in mmbench.questions()}
    assert list(qs) == ["0", "1000000", "2000000", "3000000", "1", "1000001", "2"]
    assert qs["0"]["text"] == "What animal is shown?\nA. cat\nB. dog\nC. bird\nD. fish" + LETTERS   # hint "nan": none
    assert qs["1000000"]["text"] == "What animal is shown?\nA. dog\nB. bird\nC. fish\nD. cat" + LETTERS
    assert qs["1"]["text"] == "Look at the square.\nIs it red?\nA. yes\nB. no" + LETTERS     # options stop at the empty C
    assert qs["2"]["text"] == "Which color?\nA. blue\nB. red\nC. green" + LETTERS           # "NA" is NaN for pandas
    files = sorted(p.name for p in mmbench.image_root.iterdir())
    assert len(files) == 2 and all(f.endswith(".png") for f in files)   # one file per distinct image
    assert qs["1000001"]["image"] == qs["1"]["image"] == qs["0"]["image"] != qs["2"]["image"]
    assert Image.open(mmbench.image_root / qs["2"]["image"]).getpixel((0, 0)) == (0, 0, 255)
    stamp = (mmbench.image_root / qs["0"]["image"]).stat().st_mtime_ns
    again = MMBenchBenchmark("mmb", str(mmbench.tsv), str(mmbench.image_root)).questions()   # a new instance: reused
    assert [q["image"] for q in again] == [q["image"] for q in qs.values()]
    assert (mmbench.image_root / qs["0"]["image"]).stat().st_mtime_ns == stamp


def test_mmbench_circular_scoring(mmbench):
    right = {"0": "B", "1000000": "A", "2000000": "D", "3000000": "C", "1": "A", "1000001": "B", "2": "A"}
    result = mmbench.score(right)
    assert (result["score"], result["n"], result["rows"], result["missing"]) == (100.0, 3, 7, 0)
    # question 0 right on 3 of its 4 passes: wrong; its pass 0 is right, so the vanilla accuracy keeps it
    result = mmbench.score({**right, "2000000": "A"})
    assert result["score"] == pytest.approx(200 / 3) and result["vanilla_accuracy"] == 1.0
    assert (result["accuracy_animals"], result["accuracy_colors"]) == (0.0, 1.0)
    # a missing pass is wrong and counted; answers are read with choice_letter (no stripping, "B." is no letter)
    result = mmbench.score({k: v for k, v in right.items() if k != "1000001"} | {"2": "A. blue"})
    assert (result["missing"], result["score"]) == (1, pytest.approx(200 / 3))
    assert mmbench.score({**right, "0": "B."})["score"] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="does not have"):
        mmbench.score({**right, "5": "A"})


def test_mmbench_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        MMBenchBenchmark("m", str(tmp_path / "nope.tsv"), str(tmp_path / "c")).questions()
    rows = [{k: v for k, v in r.items() if k != "hint"} for r in mmbench_rows()]
    bad = MMBenchBenchmark("m", str(write_tsv(tmp_path / "bad.tsv", rows)), str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"bad.tsv: no column hint"):
        bad.score({})
    orphan = MMBenchBenchmark("m", str(write_tsv(tmp_path / "orphan.tsv", mmbench_rows()[1:])), str(tmp_path / "c"))
    with pytest.raises(ValueError, match="circular pass of question 0"):
        orphan.score({})
    twice = MMBenchBenchmark("m", str(write_tsv(tmp_path / "twice.tsv", mmbench_rows()[:2] * 2)), str(tmp_path / "c"))
    with pytest.raises(ValueError, match="twice.tsv: index 0 appears twice"):
        twice.score({})


def test_mmbench_test_split_goes_to_the_server(tmp_path):
    bench = MMBenchBenchmark("mmbench_en_test", str(write_tsv(tmp_path / "test.tsv", mmbench_rows(False))),
                             str(tmp_path / "cache"))
    result = bench.score({"0": "B", "1": "A & <b>"})
    assert result["score"] is None and "server" in result["note"] and result["missing"] == 5
    path = bench.upload({"0": "B", "1": "A & <b>"}, tmp_path / "upload")
    assert path == tmp_path / "upload" / "mmbench_en_test.xlsx"
    with zipfile.ZipFile(path) as z:
        root = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    ns = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    table = [{c.get("r").rstrip("0123456789"): "".join(c.itertext()) for c in row.findall("x:c", ns)}
             for row in root.findall("x:sheetData/x:row", ns)]
    assert list(table[0].values()) == ["index", "question", "A", "B", "C", "D", "prediction", "split"]  # LLaVA's columns
    assert table[1] == {"A": "0", "B": "What animal is shown?", "C": "cat", "D": "dog", "E": "bird", "F": "fish",
                        "G": "B", "H": "dev"}
    assert table[5]["G"] == "A & <b>" and "G" not in table[2] and "E" not in table[5]   # missing answer, NaN option: empty


# ------------------------------------------------------------------------------------------ SEED-Bench

def test_seed_image_questions_and_exact_letter_scoring(tmp_path):
    bench = SEEDBenchmark("seed", str(seed_json(tmp_path / "SEED-Bench.json")), str(tmp_path / "SEED-Bench-image"))
    qs = bench.questions()
    assert [q["question_id"] for q in qs] == ["101669", "104933", "89257"]   # the video question is left out
    assert qs[0]["text"] == "How many towels?\nA. one\nB. two\nC. three\nD. four" + LETTERS
    assert all((bench.image_root / q["image"]).is_file() for q in qs)
    result = bench.score({"101669": "A", "104933": "B", "89257": "C"})
    assert (result["score"], result["n"], result["missing"]) == (100.0, 3, 0)
    result = bench.score({"101669": "A", "104933": "B."})   # LLaVA compares the raw text with the letter
    assert result["score"] == pytest.approx(100 / 3) and result["missing"] == 1
    assert (result["accuracy_Scene Understanding"], result["accuracy_Instances Counting"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="does not have"):
        bench.score({"v1": "D"})   # a video question is not part of the image benchmark


# ------------------------------------------------------------------------------------------ ScienceQA

def test_scienceqa_img_questions_and_scoring(tmp_path):
    root = scienceqa(tmp_path / "scienceqa")
    bench = ScienceQABenchmark("sqa", str(root / "problems.json"), str(root / "pid_splits.json"), str(root / "images"))
    qs = bench.questions()
    assert [q["question_id"] for q in qs] == ["5", "11"]   # test split, image problems only, the split's order
    assert qs[0]["text"] == ("Context: A passage.\n\nGordon tested a parachute.\nWhich could the test show?\n"   # "  " -> " "
                             "A. if it broke\nB. how steady it was\nC. nothing" + LETTERS)
    assert qs[1]["text"] == "What is the name of the colony shown?\nA. Maryland\nB. New Hampshire" + LETTERS
    assert qs[1]["image"] == "test/11/image.png" and all((bench.image_root / q["image"]).is_file() for q in qs)
    assert bench.score({"5": "B", "11": "B. New Hampshire"})["score"] == 100.0
    result = bench.score({"5": "The answer is B.", "11": "C"})   # C is no choice of problem 11: wrong
    assert (result["score"], result["accuracy_natural science"], result["accuracy_social science"]) == (50.0, 1.0, 0.0)
    result = bench.score({"11": "b"})   # no case folding; "5" missing
    assert (result["score"], result["missing"]) == (0.0, 1)
    with pytest.raises(ValueError, match="does not have"):
        bench.score({"4": "B"})   # a problem without an image is not in SQA-IMG


def test_scienceqa_missing_split_is_named(tmp_path):
    root = scienceqa(tmp_path / "scienceqa")
    bench = ScienceQABenchmark("sqa", str(root / "problems.json"), str(root / "pid_splits.json"), str(root), split="val")
    with pytest.raises(ValueError, match="pid_splits.json: no split 'val'"):
        bench.questions()


# ------------------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("name, cls", [("mmbench_en_dev", MMBenchBenchmark), ("mmbench_cn_dev", MMBenchBenchmark),
                                       ("mmbench_en_test", MMBenchBenchmark), ("seed_image", SEEDBenchmark),
                                       ("scienceqa_img", ScienceQABenchmark)])
def test_configs_read_the_official_layout(name, cls, tmp_path):
    data = tmp_path / "datasets"
    write_tsv(data / "mmbench" / "mmbench_dev_20230712.tsv", mmbench_rows())
    write_tsv(data / "mmbench" / "mmbench_dev_cn_20231003.tsv", mmbench_rows())
    write_tsv(data / "mmbench" / "mmbench_test_en_20231003.tsv", mmbench_rows(False))
    seed_json(data / "seed_bench" / "SEED-Bench.json")
    scienceqa(data / "scienceqa")
    cfg = compose_config("evaluate", [f"benchmark={name}", f"paths.datasets={data}", f"paths.data={tmp_path / 'data'}",
                                      f"paths.output_dir={tmp_path}"])
    bench = instantiate(cfg.benchmark)
    assert isinstance(bench, cls) and bench.name == name and tmp_path in bench.image_root.parents  # MMBench: data/cache
    qs = bench.questions()
    assert qs and all((bench.image_root / q["image"]).is_file() for q in qs)
    suffix = "\n请直接回答选项字母。" if name == "mmbench_cn_dev" else LETTERS
    assert all(q["text"].endswith(suffix) for q in qs)
    assert bench.score({})["missing"] == len(qs)
