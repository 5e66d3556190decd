"""Template pools from user files: a task takes its instruction / question pool from a JSON list given
on the command line (``task.instructions.path``, ``task.questions.path``, ``paths.templates``), in
generation and in training, and a bad file is an error naming it (docs/original.md §1)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CONF, ROOT, compose_config
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from genixer.data.instructions import InstructionDataset
from genixer.runs.layout import RunError
from genixer.tasks import TEMPLATES_DIR, TemplatePool, format_box, format_qa

INSTRUCTIONS = ["Write one question about this picture and answer it.", "Ask something about the image, then answer."]
REC_QUESTIONS = ["Point to <expr> for me.", "Box <expr>, please."]
REG_QUESTIONS = ["Name what sits in <objs>.", "What is inside <objs>?"]
ANNOTATION = {"expression": "the red circle", "bbox": [10, 20, 30, 40], "width": 100, "height": 100}
BOX = format_box((0.1, 0.2, 0.3, 0.4))


def write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def pools(tmp_path) -> Path:
    """A folder of user pools under the shipped file names (what ``paths.templates`` points at)."""
    folder = tmp_path / "pools"
    folder.mkdir()
    write(folder / "generic_instructions.json", INSTRUCTIONS)
    write(folder / "rec_questions.json", REC_QUESTIONS)
    write(folder / "reg_questions.json", REG_QUESTIONS)
    return folder


def task_from(tmp_path: Path, *overrides: str):
    return instantiate(compose_config("generate", [f"paths.output_dir={tmp_path / 'out'}", *overrides]).task)


def test_shipped_pools_are_ours_and_documented():
    names = ("generic_instructions", "rec_questions", "reg_questions")
    sizes = {name: len(TemplatePool.builtin(name)) for name in names}
    assert sizes == {"generic_instructions": 64, "rec_questions": 36, "reg_questions": 36}
    for doc in ("README.md", "docs/original.md", "genixer/tasks/templates.py"):
        text = " ".join((ROOT / doc).read_text().split())
        assert all(n in text for n in ("64 generic instructions", "36 REC", "36 REG")), doc


def test_defaults_are_the_shipped_pools(tmp_path):
    """Without overrides every task reads our pools (md: its fixed protocol instruction)."""
    for name in sorted(p.stem for p in (CONF / "task").glob("*.yaml")):
        task = task_from(tmp_path, f"task={name}")
        pools = [task.instructions, *([task.questions] if hasattr(task, "questions") else [])]
        for pool in pools:
            if name.startswith("md"):
                assert pool.source == "md_instruction" and len(pool) == 1
            else:
                assert Path(pool.source).resolve().parent == TEMPLATES_DIR, (name, pool)
    pointqa = task_from(tmp_path, "task=pointqa")  # its own pool node is its tasks' pool: the same picks
    assert pointqa.instructions.templates == pointqa.tasks[0].instructions.templates


def test_rec_pools_from_files(tmp_path, pools):
    task = task_from(tmp_path, "task=rec", f"task.instructions.path={pools / 'generic_instructions.json'}",
                     f"task.questions.path={pools / 'rec_questions.json'}")
    assert task.instructions.templates == tuple(INSTRUCTIONS) and task.questions.templates == tuple(REC_QUESTIONS)
    instructions = {task.instruction(k) for k in range(40)}
    assert instructions == {(i, t + task.suffix) for i, t in enumerate(INSTRUCTIONS)}
    targets = {task.target(ANNOTATION, k) for k in range(40)}
    assert targets == {format_qa(q.replace("<expr>", "the red circle"), BOX) for q in REC_QUESTIONS}
    for target in targets:  # the parser recovers the expression through the same questions...
        assert task.parse(target).record["expression"] == "the red circle"
        assert task_from(tmp_path, "task=rec").parse(target).record["expression"] is None  # ...ours do not know them


def test_reg_pointqa_and_agnostic_pools_from_files(tmp_path, pools):
    reg = task_from(tmp_path, "task=reg", f"task.questions.path={pools / 'reg_questions.json'}")
    assert {reg.target(ANNOTATION, k) for k in range(40)} == {
        format_qa(q.replace("<objs>", BOX), "the red circle.") for q in REG_QUESTIONS}
    assert reg.instructions.templates == TemplatePool.builtin("generic_instructions").templates  # not overridden
    pointqa = task_from(tmp_path, "task=pointqa", f"task.instructions.path={pools / 'generic_instructions.json'}")
    assert pointqa.instructions.templates == tuple(INSTRUCTIONS)
    agnostic = task_from(tmp_path, "task=agnostic", f"task.instructions.path={pools / 'generic_instructions.json'}",
                         f"task.tasks.rec.questions.path={pools / 'rec_questions.json'}")
    assert {agnostic.instruction(k)[1] for k in range(40)} == set(INSTRUCTIONS)  # no suffix in task-agnostic mode
    parsed = agnostic.parse(format_qa("Box the red circle, please.", BOX))
    assert parsed.task.family == "rec" and parsed.record["expression"] == "the red circle"


def test_training_takes_pools_from_files(tmp_path, small_world, pools):
    world = [f"paths.output_dir={tmp_path / 'train'}", f"paths.mini_world={small_world}", "world=mini",
             "world.num_train=60", "world.num_heldout=12", "world.num_val=4"]
    override = f"data.mixture.components.rec.task.questions.path={pools / 'rec_questions.json'}"
    cfg = compose_config("train", [*world, override])
    mixture = instantiate(cfg.data.mixture)
    rec = mixture.tasks["rec"]
    assert rec.questions.templates == tuple(REC_QUESTIONS)
    assert mixture.tasks["common_vqa"].instructions.templates == TemplatePool.builtin("generic_instructions").templates
    items = mixture.items()
    dataset = InstructionDataset(items, mixture.tasks, codec=None, seed=0)
    rendered = [(ann, dataset.render(i)[0][1]) for i, (name, ann) in enumerate(items) if name == "rec"]
    assert rendered
    for ann, target in rendered:  # every REC target asks with a user question about its own expression
        expression = rec.parse(target).record["expression"]
        assert expression == ann["expression"].strip() and any(
            target.startswith(f"Question: {q.replace('<expr>', expression)}") for q in REC_QUESTIONS)

    # one folder for every task of the command
    mixture = instantiate(compose_config("train", [*world, f"paths.templates={pools}"]).data.mixture)
    assert {t.instructions.templates for t in mixture.tasks.values()} == {tuple(INSTRUCTIONS)}
    assert mixture.tasks["rec"].questions.templates == tuple(REC_QUESTIONS)


def test_generation_run_prompts_with_the_file_and_claims_it(tmp_path, small_world, pools):
    from genixer.pipelines import generate

    world = [f"paths.mini_world={small_world}", "world=mini", "world.num_train=60", "world.num_heldout=12", "world.num_val=4"]
    out = tmp_path / "gen"
    args = [f"paths.output_dir={out}", f"generator={ROOT / 'checkpoints/genixer_l_mini'}", "task=rec", "debug=fast",
            "generation.max_new_tokens=4", *world]
    generate.run(compose_config("generate", [*args, f"task.instructions.path={pools / 'generic_instructions.json'}"]))
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    suffix = task_from(tmp_path, "task=rec").suffix
    assert len(rows) == 12 and {r["instruction"] for r in rows} == {t + suffix for t in INSTRUCTIONS}
    other = write(tmp_path / "other.json", ["Something else entirely."])
    with pytest.raises(RunError, match="other settings"):  # the run dir's samples were made with another pool
        generate.run(compose_config("generate", [*args, f"task.instructions.path={other}"]))
    # the same path with edited content is another pool too: resuming would mix the two
    pool = pools / "generic_instructions.json"
    pool.write_text(json.dumps([*INSTRUCTIONS, "One more instruction."]))
    with pytest.raises(RunError, match="other settings"):
        generate.run(compose_config("generate", [*args, f"task.instructions.path={pool}"]))


BAD = {  # name: (task, pool key, file content, what the error says)
    "missing": ("rec", "instructions", None, "no such file"),
    "not_json": ("rec", "instructions", '["Look.",', "not a UTF-8 JSON file"),
    "object": ("rec", "instructions", {"instructions": INSTRUCTIONS}, "JSON list of strings, got a dict"),
    "empty": ("rec", "questions", [], "got an empty list"),
    "not_string": ("reg", "instructions", ["Look.", 3], "entry 1 is not a non-empty string"),
    "blank": ("rec", "instructions", ["Look.", "  "], "entry 1 is not a non-empty string"),
    "duplicate": ("rec", "instructions", ["Look.", "Look."], "entry 1 is a duplicate"),
    "rec_no_expr": ("rec", "questions", ["Where is <expr>?", "Where is it?"], "entry 1 must contain '<expr>' exactly"),
    "rec_two_expr": ("rec", "questions", ["<expr> or <expr>?"], "entry 0 must contain '<expr>' exactly once"),
    "reg_no_objs": ("reg", "questions", ["In <objs>?", "Where is <expr>?"], "entry 1 must contain '<objs>' exactly"),
    "image_token": ("common_vqa", "instructions", ["<image> Look at the image and ask."], "contains '<image>'"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_pool_files_fail_naming_the_file(tmp_path, name):
    task, key, content, message = BAD[name]
    path = tmp_path / f"{name}.json"
    if content is not None:
        write(path, content)
    with pytest.raises(InstantiationException) as err:  # Hydra wraps the pool's error with the config key
        task_from(tmp_path, f"task={task}", f"task.{key}.path={path}")
    assert message in str(err.value) and str(path) in str(err.value), str(err.value)
