"""Shared fixtures: compose the real configs, build small mini worlds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
os.environ.setdefault("GENIXER_ROOT", str(ROOT))


def compose_config(primary: str, overrides: list[str]):
    """Compose ``conf/<primary>.yaml`` with overrides, as the entry script would."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=primary, overrides=overrides)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A mini world with 60 train and 12 held-out images (built once per session)."""
    from genixer.miniworld import build_world

    root = tmp_path_factory.mktemp("mini_world")
    build_world(root, seed=0, num_train=60, num_heldout=12, num_val=4)
    return root


@pytest.fixture(scope="session")
def tiny_vision(small_world, tmp_path_factory) -> Path:
    """A stage-1 vision run on the small world (a few CPU steps), for generator training tests; built once."""
    from genixer.pipelines import train

    out = tmp_path_factory.mktemp("tiny_vision")
    train.run(compose_config("train", [f"paths.output_dir={out}", "experiment=mini_world_cpu_vision", "debug=fast",
                                       *world_overrides(small_world)]))
    return out


def vqa_rec_mixture(world: Path, cap: int):
    """Mini-world VQAv2 + REC items (``cap`` of each), as the batching and packing tests train on."""
    from genixer.data.mixture import Component, Mixture
    from genixer.data.sources.rec_jsonl import RECJsonl
    from genixer.data.sources.vqav2 import VQAv2
    from genixer.tasks import REC, CommonVQA, TemplatePool
    from genixer.tasks.templates import TEMPLATES_DIR

    a = world / "annotations"
    pool = TemplatePool(TEMPLATES_DIR / "generic_instructions.json")
    vqa = VQAv2(a / "v2_OpenEnded_mini_train_questions.json", a / "v2_mini_train_annotations.json",
                world / "images", "train/mw_train_{image_id:012d}.png")
    questions = TemplatePool(TEMPLATES_DIR / "rec_questions.json", placeholder="<expr>")
    return Mixture({
        "vqa": Component(vqa, CommonVQA("common_vqa", "", pool), cap=cap),
        "rec": Component(RECJsonl(a / "rec_train.jsonl", world / "images"), REC("rec", "", pool, questions), cap=cap),
    }, seed=0)


def world_overrides(root: Path) -> list[str]:
    """The overrides that point a stage at ``small_world``."""
    return [f"paths.mini_world={root}", "world=mini", "world.num_train=60", "world.num_heldout=12", "world.num_val=4"]


def kill_after_lines(command: list[str], env: dict, shard: Path, lines: int = 3) -> None:
    """Run ``command`` and ``kill -9`` it once ``shard`` holds ``lines`` complete lines (a crash mid-run)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if shard.exists() and shard.read_bytes().count(b"\n") >= lines:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the first run should have been killed mid-way"


def kill_and_tear(command: list[str], env: dict, shard: Path, torn: bytes, lines: int = 3) -> int:
    """``kill_after_lines``, then ``torn`` appended to ``shard`` (a write the crash cut short); the number of complete
    lines the shard had."""
    kill_after_lines(command, env, shard, lines)
    complete = shard.read_bytes().count(b"\n")
    with shard.open("ab") as f:
        f.write(torn)
    return complete


_TASKS: dict = {}


def task(name: str):
    """``conf/task/<name>.yaml`` instantiated as generation does (cached)."""
    from hydra.utils import instantiate

    if name not in _TASKS:
        _TASKS[name] = instantiate(compose_config("generate", [f"task={name}"]).task)
    return _TASKS[name]


def generated(task_name: str, text: str, row_id: str, image: str, **extra) -> dict:
    """A generation row as the pipeline merges it: the task parses ``text`` and writes its typed fields."""
    from genixer.generation.records import finish_row

    row = {"id": row_id, "image": image, "task": task_name, "template_id": 0, "text": text, **extra}
    return finish_row(row, task(task_name), {})


def accepted(task_name: str, record: dict, row_id: str, image: str, **extra) -> dict:
    """An accepted generation row for a known record: the task writes its typed fields."""
    return {"id": row_id, "image": image, "task": task_name, "status": "ok", **task(task_name).fields(record), **extra}


def write_generation_run(run: Path, rows: list[dict], image_root: Path, **inputs) -> Path:
    """A finished generation run dir holding ``rows`` (``samples.jsonl`` + the manifest a later stage reads)."""
    import json

    run.mkdir(parents=True, exist_ok=True)
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"stage": "generate", "rows": len(rows), "status": "ok",
                "inputs": {"generator": "by-hand", "task": "mixed", "image_root": str(image_root), **inputs}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run



def shipped_mini_batch(prompts: list[str]):
    """The shipped Genixer_L mini in fp32 and a left-padded batch of ``prompts`` on noise images of different sizes
    (prompt k: seed 11 k): ``(backbone, codec, model, batch)``."""
    from PIL import Image

    from genixer.backbones.llava import PretrainedLlava
    from genixer.generation.queries import PromptCollator

    backbone = PretrainedLlava(str(ROOT / "checkpoints/genixer_l_mini"), dtype="float32")
    codec = backbone.codec()
    items = [{"meta": {"seed": 11 * k}, "input_ids": codec.encode_prompt(p),
              "pixel_values": codec.image(Image.effect_noise((90 + 20 * k, 80), 60).convert("RGB"))}
             for k, p in enumerate(prompts)]
    return backbone, codec, backbone.build(codec).eval(), PromptCollator(codec.tokenizer.pad_token_id)(items)
