"""The filter stage's ``decontamination``: its settings, sources (folders, conf/benchmark names), rule and record."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .flags import flag_rows
from .index import MAX_DISTANCE, MAX_PIXEL_DIFF, EvalImageIndex, source_files

CONF = Path(__file__).resolve().parents[3] / "conf"
UNAVAILABLE = (OSError, ValueError, KeyError)   # a benchmark's files (or an eval images folder) missing or malformed


class UnknownBenchmark(ValueError):
    """A benchmark name with no conf/benchmark/<name>.yaml (a typo: never skipped)."""


def load_benchmarks(name: str, paths) -> list:
    """The benchmark(s) of ``conf/benchmark/<name>.yaml`` (a suite gives each of its own), instantiated with the
    run's ``paths``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    try:
        if GlobalHydra.instance().is_initialized():   # inside an entry script: its config search path
            node = compose(config_name=f"benchmark/{name}")
        else:
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                node = compose(config_name=f"benchmark/{name}")
    except MissingConfigException:
        raise UnknownBenchmark(f"decontamination.benchmarks: no benchmark {name!r} (conf/benchmark/{name}.yaml)") from None
    root = OmegaConf.create({"paths": paths, "benchmark": node.benchmark})
    suite = root.benchmark.get("suite")
    return [instantiate(sub) for sub in (suite.values() if suite else [root.benchmark])]


@dataclass
class Decontamination:
    """The filter stage's ``decontamination`` settings with its evaluation images listed (``from_config``):
    ``annotate`` checks a generation run's rows, ``rule`` drops the flagged ones (``drop``)."""

    listed: list                 # source_files() of every source
    max_distance: int = MAX_DISTANCE
    max_pixel_diff: int = MAX_PIXEL_DIFF
    drop: bool = False
    cache_dir: str | None = None
    workers: int | None = None
    unavailable: dict[str, str] = field(default_factory=dict)   # sources skipped (skip_missing) -> why

    @classmethod
    def from_config(cls, node, paths) -> Decontamination:
        """Every source listed now, so a missing benchmark or folder stops the run before any work (or, with
        ``skip_missing``, is recorded and skipped)."""
        listed, unavailable = [], {}
        sources = [("folder", str(f)) for f in node.get("eval_images") or []]
        sources += [("benchmark", str(b)) for b in node.get("benchmarks") or []]
        if not sources:
            raise ValueError("decontamination needs evaluation images: eval_images=[<folder>, ...] and / or "
                             "benchmarks=[<conf/benchmark name>, ...]")
        for kind, name in sources:
            try:
                for source in ([name] if kind == "folder" else load_benchmarks(name, paths)):
                    listed.append(source_files(source))
            except UnknownBenchmark:
                raise
            except UNAVAILABLE as err:
                if not node.get("skip_missing"):
                    raise ValueError(f"decontamination: {kind} {name} is unavailable ({type(err).__name__}: {err}); "
                                     "fix it, drop it from the list, or pass decontamination.skip_missing=true") from err
                unavailable[f"{kind} {name}"] = f"{type(err).__name__}: {err}"
        return cls(listed, int(node.get("max_distance", MAX_DISTANCE)), int(node.get("max_pixel_diff", MAX_PIXEL_DIFF)),
                   bool(node.get("drop", False)), node.get("cache_dir"), node.get("workers"), unavailable)

    def rule(self):
        """The selection rule dropping flagged rows (and rows whose image could not be checked)."""
        from genixer.filtering.selection import Flagged

        return Flagged("decontamination", ("exact", "near"), label="match", detail=("match", "distance"),
                       chosen_on=f"pHash <= {self.max_distance} bits and thumbnail diff <= {self.max_pixel_diff}: "
                                 "calibrated on synthetic copies vs distinct images (docs/decontamination.md)")

    def annotate(self, rows: Sequence[dict], image_root: str | Path, cache_dir: Path,
                 progress: bool = True) -> tuple[dict[str, dict], dict]:
        """(row id -> its flag, for the ok rows; the manifest record: settings, the index, counts). The index is
        cached under ``cache_dir`` unless ``self.cache_dir`` says where; the generated images' fingerprints
        always under ``cache_dir``."""
        index = EvalImageIndex.from_listing(self.listed, self.cache_dir or cache_dir, self.workers, progress)
        ok = [r for r in rows if r.get("status") == "ok"]
        flags = flag_rows(ok, image_root, index, self.max_distance, self.max_pixel_diff,
                          cache=Path(cache_dir) / "generated_images.npz", workers=self.workers, progress=progress)
        by_row = {r["id"]: f for r, f in zip(ok, flags)}
        matched = {f["match"] for f in flags if f.get("match")}
        record = {
            "checked": len(ok), "exact": sum(bool(f.get("exact")) for f in flags),
            "near": sum(bool(f.get("near")) for f in flags), "unreadable": sum("status" in f for f in flags),
            "dropped": None,   # set by the selection (the rows the decontamination rule dropped)
            "eval_images_matched": len(matched), "drop": self.drop,
            "max_distance": self.max_distance, "max_pixel_diff": self.max_pixel_diff,
            "index": {"sources": [" ".join(what) for _, what in self.listed], "images": len(set(index.hashes.files)),
                      "unreadable": len(index.hashes.unreadable), "file": str(index.cache) if index.cache else None},
            **({"unavailable": self.unavailable} if self.unavailable else {}),
        }
        return by_row, record
