"""The study's results: scores per downstream dataset over seeds, beside the oracle accuracy of the synthetic
data each model trained on; a table (results.md), a plot per model and a self-contained page (study.html)."""
from __future__ import annotations

import json
import statistics
from html import escape
from pathlib import Path

from genixer.report.page import CHECK, CSS
from genixer.report.sections import table
from genixer.report.svg import lines
from genixer.runs.files import atomic_write, write_json
from genixer.study.datasets import names

COLOURS = {"annotated": "#555555", "unfiltered": "#d9534f", "filtered": "#3c9a5f", "ceiling": "#4a78b5"}


def spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def budget(cfg) -> str:
    return cfg.downstream.get("budget", "epochs")   # absent from studies run before budgets existed


def runs_dir(out: Path, cfg) -> Path:
    """The downstream runs: ``downstream/``; with ``downstream.budget=matched``, ``downstream-matched/`` (the
    same grid at equal steps)."""
    return out / ("downstream" if budget(cfg) == "epochs" else f"downstream-{budget(cfg)}")


def downstream_root(out: Path, cfg, model: str) -> Path:
    return runs_dir(out, cfg) / model


def results_dir(out: Path, cfg) -> Path:
    """Where the results files go: the study dir, or (``matched``) ``downstream-matched/``."""
    return out if budget(cfg) == "epochs" else runs_dir(out, cfg)


def result_path(out: Path, cfg, model: str, dataset: str, seed: int) -> Path:
    """Where a downstream model's benchmark result lands (the evaluate multirun's job dir)."""
    return downstream_root(out, cfg, model) / dataset / f"seed{seed}" / "eval" / "results.json"


def collect(cfg, out: Path, summary: dict, unscored_ok: bool = False) -> dict:
    """Every downstream model's benchmark score, per dataset over seeds. A missing result is an error, or with
    ``unscored_ok`` (a partial study, shown as it stands) a model with no result at all is listed as unscored."""
    models, unscored = {}, []
    for model, spec in cfg.downstream.models.items():
        if unscored_ok and not any(downstream_root(out, cfg, model).glob("*/seed*/eval/results.json")):
            unscored.append(model)
            continue
        rows = {}
        for name in names(cfg):
            scored = []
            for seed in cfg.seeds:
                path = result_path(out, cfg, model, name, seed)
                if not path.exists():
                    raise FileNotFoundError(f"{path}: no benchmark result (re-run the study to finish it)")
                scored.append(json.loads(path.read_text())["benchmarks"][spec.benchmark])
            mean, sd = spread([r["score"] for r in scored])
            types = sorted({t for r in scored for t in r.get("by_question_type", {})})
            rows[name] = {"scores": [r["score"] for r in scored], "mean": mean, "sd": sd,
                          "by_question_type": {t: spread([r["by_question_type"][t] for r in scored])[0] for t in types
                                               if all(t in r.get("by_question_type", {}) for r in scored)},
                          "data": summary[spec.family][name]}
        models[model] = {"benchmark": spec.benchmark, "family": spec.family, "datasets": rows}
    d = cfg.downstream
    training = (f"{d.epochs} epochs over each run's own file" if budget(cfg) == "epochs" else
                f"every run the steps of {d.epochs} epochs over the grid's largest file (equal compute)")
    return {"name": cfg.name, "budget": f"{training}, batch {d.batch_size}", "sizes": {size: cfg.shares[size] for size in cfg.sizes}, "conditions": list(cfg.conditions),
            "seeds": list(cfg.seeds), "pool_images": cfg.world.num_pool, "annotated_images": cfg.world.num_train, "models": models,
            "unscored": unscored, "synthetic": summary}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def model_rows(result: dict, model: str) -> list[list[str]]:
    """One row per dataset: synthetic samples, their oracle accuracy, score mean +- sd, difference to annotated."""
    rows = result["models"][model]["datasets"]
    base = rows["annotated"]
    out = []
    for name, r in rows.items():
        data, delta = r["data"], r["mean"] - base["mean"]
        beyond = abs(delta) > r["sd"] + base["sd"]
        out.append([name, str(data["samples"]), str(data.get("synthetic", 0)), pct(data.get("oracle_accuracy")),
                    f"{r['mean']:.1f} ± {r['sd']:.1f}", "" if name == "annotated" else f"{delta:+.1f}",
                    "" if name == "annotated" else ("yes" if beyond else "no")])
    return out


HEADER = ["data", "samples", "synthetic", "synthetic oracle acc %", "score (mean ± sd)", "Δ vs annotated",
          "Δ beyond spread"]


def markdown(result: dict) -> str:
    n = len(result["seeds"])
    parts = [f"# Study {result['name']}: {result['annotated_images']} annotated images, a pool of "
             f"{result['pool_images']}, seeds {result['seeds']}",
             "", f"Training: {result.get('budget', '-')}. "
             f"Sizes (share of the pool's images): {result['sizes']}. Scores: mean ± sample sd over {n} seed(s); "
             "'beyond spread' when |Δ| exceeds the sum of both sds."]
    for model in result.get("unscored", []):
        parts += ["", f"## {model}: not scored (its benchmark results are missing: re-run the study to finish it)"]
    for model, m in result["models"].items():
        parts += ["", f"## {model}: {m['benchmark']}", "", "| " + " | ".join(HEADER) + " |",
                  "|" + "---|" * len(HEADER)]
        parts += ["| " + " | ".join(row) + " |" for row in model_rows(result, model)]
        types = sorted({t for r in m["datasets"].values() for t in r["by_question_type"]})
        if types:
            parts += ["", "By question type (mean over seeds):", "", "| data | " + " | ".join(types) + " |",
                      "|" + "---|" * (len(types) + 1)]
            parts += [f"| {name} | " + " | ".join(f"{r['by_question_type'].get(t, float('nan')):.1f}" for t in types) + " |"
                      for name, r in m["datasets"].items()]
    return "\n".join(parts + synthetic_table(result)) + "\n"


def plot(result: dict, model: str) -> str:
    """Score vs synthetic size per condition; every line starts at the annotated-only score (size 0)."""
    rows, sizes = result["models"][model]["datasets"], result["sizes"]
    base = rows["annotated"]
    series = [(c, [(0.0, base["mean"], base["sd"])] + [(share, rows[f"{c}_{s}"]["mean"], rows[f"{c}_{s}"]["sd"])
                                                         for s, share in sizes.items()], COLOURS.get(c, "#888"))
              for c in result["conditions"]]
    ticks = [(0.0, "0")] + [(share, s) for s, share in sizes.items()]
    return lines(series, f"{model}: {result['models'][model]['benchmark']} vs synthetic size",
                 xlabel="synthetic data (share of the pool)", ylabel="score", ticks=ticks)


def page(result: dict) -> str:
    title, _, settings = markdown(result).splitlines()[:3]
    body = [f"<h1>{escape(title[2:])}</h1>", f"<p>{escape(settings)}</p>"]
    body += [f"<h2>{escape(model)}: not scored</h2>" for model in result.get("unscored", [])]
    for model in result["models"]:
        body += [f"<h2>{escape(model)}</h2>", f"<div class='plots'>{plot(result, model)}</div>",
                 table(HEADER, model_rows(result, model))]
    body += ["<h2>Synthetic data</h2>", table(["family", "data", "samples", "synthetic", "oracle acc %"], [
        [family, name, d["samples"], d.get("synthetic", 0), pct(d.get("oracle_accuracy"))]
        for family, files in result.get("synthetic", {}).items() for name, d in files.items()])]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Study {escape(result['name'])}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}{CHECK}</body></html>")


def synthetic_table(result: dict) -> list[str]:
    """What each training file added: synthetic samples and the oracle's accuracy of them, per family."""
    parts = ["", "## Synthetic data (per training file)", "", "| family | data | samples | synthetic | oracle acc % |",
             "|---|---|---|---|---|"]
    for family, files in result.get("synthetic", {}).items():
        parts += [f"| {family} | {name} | {d['samples']} | {d.get('synthetic', 0)} | {pct(d.get('oracle_accuracy'))} |"
                  for name, d in files.items()]
    return parts


def write_outputs(result: dict, out: Path) -> None:
    atomic_write(out / "results.md", markdown(result))
    for model in result["models"]:
        atomic_write(out / f"plot_{model}.svg", plot(result, model))
    atomic_write(out / "study.html", page(result))


def main(argv: list[str] | None = None) -> int:
    """``python -m genixer.study.results <study dir> [key=value ...]``: the results files again from a study dir
    (its config.yaml, data/datasets.json and benchmark results; overrides such as ``seeds=[0,1]`` for a study
    run with other seeds than its config), models without any result listed as unscored."""
    import argparse

    from omegaconf import OmegaConf

    parser = argparse.ArgumentParser(prog="python -m genixer.study.results", description=main.__doc__)
    parser.add_argument("study", type=Path)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = OmegaConf.merge(OmegaConf.load(args.study / "config.yaml"), OmegaConf.from_dotlist(args.overrides))
    summary = json.loads((args.study / "data" / "datasets.json").read_text())
    result = collect(cfg, args.study, summary, unscored_ok=True)
    where = results_dir(args.study, cfg)
    write_json(where / "results.json", result)
    write_outputs(result, where)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
