"""The study, stage by stage (re-running the command resumes: finished stages are skipped).

world (annotated set + evaluation splits + unannotated pool) -> vision towers -> Genixer_L / Genixer_S
trained on the annotated set (or given) -> synthetic VQA / REC on the pool -> filter -> training files
-> downstream tiny LLaVA (VQA) and tiny Shikra (REC): one Hydra multirun each over dataset x seed ->
the mini-world benchmark: one multirun each -> results table, plot and page.
"""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.runs.files import write_json
from genixer.runs.layout import MANIFEST, write_config
from genixer.study import datasets, results
from genixer.study.stages import Stage, run, run_all

log = logging.getLogger(__name__)
SHAPES = {"l": ("mini_world_vision", "mini_world_generator"), "s": ("mini_world_s_vision", "mini_world_s_generator")}


class Study:
    """Paths and commands of one study run dir."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, self.out = cfg, Path(cfg.paths.output_dir).resolve()
        self.world, self.logs = Path(cfg.paths.mini_world).resolve(), self.out / "logs"
        gpu = cfg.device == "gpu"
        self.train_trainer, self.predict_trainer = ("gpu", "gpu_predict") if gpu else ("cpu", "cpu")

    def world_overrides(self) -> list[str]:
        """Stages that build the world themselves (vision, generators) find the study's world, already built."""
        w = self.cfg.world
        return [f"paths.mini_world={self.world}", f"world.seed={w.seed}", f"world.num_train={w.num_train}",
                f"world.num_heldout={w.num_heldout}", f"world.num_val={w.num_val}", f"world.num_pool={w.num_pool}"]

    def vision(self, shape: str) -> Path:
        return self.out / "vision" / shape

    def generator(self, shape: str) -> Path:
        given = self.cfg.generators.get(shape)
        return Path(given).resolve() if given else self.out / "generators" / shape

    def synthetic(self, family: str) -> Path:
        return self.out / "synthetic" / family

    def train_stage(self, name: str, run_dir: Path, overrides: list[str]) -> Stage:
        return Stage(name, "train.py", [*overrides, f"trainer={self.train_trainer}", f"hydra.run.dir={run_dir}"],
                     run_dir / MANIFEST)

    def vision_stages(self) -> list[Stage]:
        v = self.cfg.vision
        return [self.train_stage(f"vision_{shape}", self.vision(shape),
                                 [f"experiment={SHAPES[shape][0]}", *self.world_overrides(), f"trainer.max_steps={v.steps}",
                                  f"data.batch_size={v.batch_size}", f"data.num_workers={self.cfg.num_workers}", *v.overrides])
                for shape in SHAPES]

    def generator_stages(self) -> list[Stage]:
        g = self.cfg.generators
        return [self.train_stage(f"generator_{shape}", self.generator(shape),
                                 [f"experiment={SHAPES[shape][1]}", f"backbone.vision_init={self.vision(shape)}",
                                  *self.world_overrides(), f"trainer.max_steps={g.steps[shape]}",
                                  f"data.batch_size={g.batch_size}", f"data.num_workers={self.cfg.num_workers}", *g.overrides])
                for shape in SHAPES if not g.get(shape)]

    def generation_stages(self) -> list[Stage]:
        stages = []
        for family, spec in self.cfg.synthetic.families.items():
            run_dir = self.synthetic(family)
            stages.append(Stage(f"generate_{family}", "generate.py", [
                f"generator={self.generator(spec.generator)}", f"task={spec.task}", f"queries={self.world}/images/pool.jsonl",
                f"paths.mini_world={self.world}", f"trainer={self.predict_trainer}", f"batch_size={self.cfg.batch_size}",
                f"num_workers={self.cfg.num_workers}", f"seed={self.cfg.seed}", *spec.overrides, f"hydra.run.dir={run_dir}"],
                run_dir / MANIFEST))
        return stages

    def filter_stages(self) -> list[Stage]:
        name = self.cfg.synthetic.filter
        return [Stage(f"filter_{family}", "filter.py", [
            f"run={self.synthetic(family)}", f"filter={name}", f"paths.mini_world={self.world}",
            f"trainer={self.predict_trainer}", f"num_workers={self.cfg.num_workers}"],
            self.synthetic(family) / "filter" / name / MANIFEST) for family in self.cfg.synthetic.families]

    def launcher(self) -> list[str]:
        if self.cfg.launcher == "basic":
            return []
        gpus = [f"hydra.launcher.gpus=[{','.join(map(str, self.cfg.gpus))}]"] if self.cfg.gpus else []
        return ["hydra/launcher=parallel", f"hydra.launcher.jobs={self.cfg.jobs}", *gpus]

    def grid(self) -> tuple[str, str]:
        """(datasets, seeds) as Hydra sweep values."""
        return ",".join(datasets.names(self.cfg)), ",".join(str(s) for s in self.cfg.seeds)

    def budget(self, family_summary: dict) -> list[str]:
        """The training length of every run: ``epochs`` passes over its own file, or (``matched``) the steps that
        ``epochs`` passes over the grid's largest file take, for every run alike."""
        d = self.cfg.downstream
        if d.budget == "epochs":
            return [f"trainer.max_epochs={d.epochs}"]
        if d.budget != "matched":
            raise ValueError(f"downstream.budget={d.budget!r}: use epochs or matched")
        largest = max(family_summary[name]["samples"] for name in datasets.names(self.cfg))
        return ["trainer.max_epochs=-1", f"trainer.max_steps={largest // d.batch_size * d.epochs}"]

    def downstream_stages(self, model: str, spec: DictConfig, summary: dict) -> list[Stage]:
        names, seeds = self.grid()
        root, d = results.downstream_root(self.out, self.cfg, model), self.cfg.downstream
        sweep = [f"hydra.sweep.dir={root}", "hydra.sweep.subdir=${study.dataset}/seed${seed}", *self.launcher()]
        train = Stage(f"train_{model}", "train.py", [
            "-m", f"experiment={spec.experiment}", f"study.data={self.out / 'data' / spec.family}", f"study.dataset={names}",
            f"seed={seeds}", f"backbone.vision_init={self.vision(spec.shape)}", f"paths.mini_world={self.world}",
            f"trainer={self.train_trainer}", *self.budget(summary[spec.family]), f"data.batch_size={d.batch_size}",
            f"data.num_workers={self.cfg.num_workers}", *d.overrides, *sweep], None)
        score = Stage(f"evaluate_{model}", "evaluate.py", [
            "-m", f"benchmark={spec.benchmark}", f"+study.dataset={names}", f"seed={seeds}",
            f"model={root}/${{study.dataset}}/seed${{seed}}", f"paths.mini_world={self.world}",
            f"trainer={self.predict_trainer}", f"batch_size={self.cfg.batch_size}", *spec.benchmark_overrides,
            *([f"generation.max_new_tokens={d.max_new_tokens}"] if d.max_new_tokens else []),
            f"hydra.sweep.dir={root}", "hydra.sweep.subdir=${study.dataset}/seed${seed}/eval", *self.launcher()], None)
        return [train, score]

    def scored(self, model: str) -> bool:
        return all(results.result_path(self.out, self.cfg, model, name, seed).exists()
                   for name in datasets.names(self.cfg) for seed in self.cfg.seeds)


def run_study(cfg: DictConfig) -> dict:
    study = Study(cfg)
    write_config(study.out, cfg)
    instantiate(cfg.world)()   # the annotated set, the evaluation splits and the pool, once
    seconds: dict[str, float] = {}
    for stages in (study.vision_stages(), study.generator_stages(), study.generation_stages(), study.filter_stages()):
        seconds |= run_all(stages, study.logs, cfg.side_by_side, cfg.gpus)
    runs = {family: study.synthetic(family) for family in cfg.synthetic.families}
    summary = datasets.build(cfg, study.world, study.out / "data", runs, instantiate(cfg.oracle))
    for model, spec in cfg.downstream.models.items():
        if study.scored(model):
            log.info("[study] %s: every model scored before", model)
            continue
        for stage in study.downstream_stages(model, spec, summary):
            seconds[stage.name] = run(stage, study.logs)
    table = results.collect(cfg, study.out, summary)
    table["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    where = results.results_dir(study.out, cfg)
    write_json(where / "results.json", table)
    results.write_outputs(table, where)
    log.info("[study] results: %s", where / "results.md")
    print((where / "results.md").read_text(), flush=True)
    return table
