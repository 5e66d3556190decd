"""The visual data report: one self-contained page per generation / filter run, checked in Python and, where a
Chromium is installed (``make browser``), rendered headless: every image decodes, every plot draws."""
from __future__ import annotations

import json
import shutil
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import ROOT, compose_config
from genixer.report import write_report
from genixer.report.__main__ import main
from genixer.report.cards import pick
from genixer.report.images import marks
from genixer.report.svg import edges, histogram

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell")


class Page(HTMLParser):
    """Tags and attributes of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, tag: str) -> list[dict]:
        return [attrs for t, attrs in self.tags if t == tag]


@pytest.fixture(scope="module")
def runs(small_world, tmp_path_factory) -> tuple[Path, Path]:
    """A generation run (all-family Genixer_L, task-agnostic, sampled: QA and REC rows, on 6 held-out images plus
    one missing image) and its filter run (filter=mini: the shipped judge on QA rows, the shipped CLIP on REC rows)."""
    from genixer.pipelines import filter as filter_pipeline
    from genixer.pipelines import generate

    tmp = tmp_path_factory.mktemp("report")
    queries = tmp / "heldout_queries.jsonl"   # the oracle's split is read from the query file's name
    lines = (small_world / "images/heldout.jsonl").read_text().splitlines()[:6]   # REC rows decode slowly on a CPU
    queries.write_text("\n".join([*lines, '{"question_id": "gone", "image": "heldout/missing.png"}']) + "\n")
    gen = tmp / "generate"
    generate.run(compose_config("generate", [
        f"paths.output_dir={gen}", f"generator={ROOT / 'checkpoints/genixer_l_mini_all'}", "task=agnostic",
        f"queries={queries}", f"image_root={small_world / 'images'}", "generation.do_sample=true",
        "generation.temperature=0.7", "generation.max_new_tokens=64", "report=true"]))
    out = gen / "filter/mini"
    filter_pipeline.run(compose_config("filter", [f"paths.output_dir={out}", f"run={gen}", "filter=mini",
                                                  "filter.rules.judge_yes.min=0.9", "filter.rules.clip_match.min=0.85",
                                                  "report=true"]))   # strict: some drop
    return gen, out


def check_self_contained(page: Page, text: str) -> None:
    images = page.all("img")
    assert images and all(a["src"].startswith("data:image/jpeg;base64,") for a in images)
    linked = [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href") and v]
    assert not [v for v in linked if v.startswith(("http:", "https:", "//", "file:"))]
    assert not page.all("link") and all("src" not in a for a in page.all("script"))
    assert "<body data-render=pending>" in text and "naturalWidth" in text


def test_generation_and_filter_pages(runs, tmp_path):
    assert all((run / "report.html").is_file() for run in runs)   # report=true: each stage wrote its page
    gen, filtered = runs
    rows = [json.loads(line) for line in (gen / "samples.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} >= {"ok", "error"}

    text = write_report(gen, tmp_path / "gen.html", samples=60).read_text()
    page = Page(text)
    check_self_contained(page, text)
    cards = [a for a in page.all("div") if "data-outcome" in a]
    assert len(cards) == len(rows) == len(page.all("img"))   # 7 rows < 60: every row shown once
    assert {c["data-outcome"] for c in cards} >= {"ok", "error"}
    assert "heldout</b> split" in text and "Oracle accuracy" in text and "oracle: " in text
    assert "answer length (words" in text and "distinct-2 q" in text and "task / family mix" in text
    assert "Decontamination" not in text

    manifest = json.loads((filtered / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["kept"] and counts["dropped"]
    text = write_report(filtered, samples=5).read_text()   # default: <run>/report.html
    assert (filtered / "report.html").is_file()
    page = Page(text)
    check_self_contained(page, text)
    outcomes = [a["data-outcome"] for a in page.all("div") if "data-outcome" in a]
    assert len(outcomes) == 5 and {"kept", "dropped", "error"} <= set(outcomes)   # an equal share per outcome
    assert "Filter against the oracle" in text and "precision" in text
    assert "judge.p_yes per item (judge_yes)" in text and "&gt;= 0.9" in text   # the threshold is marked
    assert "kept share by judge.p_yes band" in text
    assert any(f"dropped: {escape(reason)} (" in text for reason in counts["dropped_by_reason"])   # the drop says why
    if counts["scored"]["clip"]:
        assert "clip.cosine per item (clip_match)" in text and "&gt;= 0.85" in text


def test_cli_and_decontamination(runs, tmp_path, capsys):
    gen, _ = runs
    copy = tmp_path / "run"
    shutil.copytree(gen, copy, ignore=shutil.ignore_patterns("filter", "scores", "shards"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["decontamination"] = {"benchmarks": ["mini_world_vqa"], "removed": {"image": 2, "question": 1}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main([str(copy), "--out", str(tmp_path / "p.html"), "--samples", "3", "--world",
                 str(json.loads((gen / "manifest.json").read_text())["inputs"]["image_root"] + "/..")]) == 0
    text = (tmp_path / "p.html").read_text()
    assert "Decontamination" in text and "removed.image" in text and len(Page(text).all("img")) == 3
    assert main([str(tmp_path)]) == 2 and "no manifest.json" in capsys.readouterr().err


def test_marks_pick_and_plots():
    row = {"status": "ok", "regions": [{"expression": "the red star", "box": [0.1, 0.2, 0.3, 0.4]}],
           "parsed": {"box": [0.1, 0.2, 0.3, 0.4], "point": [0.5, 0.5], "question_boxes": [[[0.0, 0.0, 1.0, 1.0]]]}}
    assert [(k, label) for k, _, label in marks(row)] == [("box", "the red star"), ("point", "point"),
                                                          ("box", "question_boxes")]
    rows = [{"id": f"{k:02d}", "kept": k < 3} for k in range(20)] + [{"id": "e", "status": "error"}]
    chosen = pick(rows, 6)
    assert sum(r.get("kept") is False for r in chosen) == 3 and sum(r.get("kept") is True for r in chosen) == 2
    plot = histogram([("a", [-5.0, 0.5, 9.0], "#000")], edges(0, 1, 4), "t", marks=[(0.5, ">= 0.5")])
    assert plot.count("<rect") == 3 and "&gt;= 0.5" in plot   # values beyond the axis count in the end bins


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.mark.skipif(browser() is None, reason=f"no headless browser ({', '.join(BROWSERS)}) on PATH: "
                    "`make browser` installs Chromium where the OS package manager offers it")
def test_pages_render_in_headless_browser(runs, tmp_path):
    from PIL import Image

    gen, filtered = runs
    command = [browser(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    for name, run in (("gen", gen), ("filter", filtered)):
        page = write_report(run, tmp_path / f"{name}.html", samples=12)
        dom = subprocess.run([*command, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=120, check=False).stdout
        body = next((a for t, a in Page(dom).tags if t == "body"), {})
        assert body.get("data-render") == "ok", f"{name}: {body}"   # every image decoded, every plot drew
        assert int(body["data-images"]) == len(Page(page.read_text()).all("img")) > 0 and int(body["data-plots"]) >= 4
    shot = tmp_path / "filter.png"   # the filter page: kept, dropped and error cards, every kind of plot
    subprocess.run([*command, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120,
                   check=True)
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        assert len(image.convert("RGB").getcolors(1 << 24)) > 50   # a drawn page, not a blank one
