"""python -m genixer.report <run dir> [--out page.html] [--samples 60] [--world <mini world dir>] [--split heldout]"""
from __future__ import annotations

import argparse
import sys

from .page import write_report
from .runs import ReportError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genixer.report", description=(
        "Write one self-contained HTML page (samples with boxes, distributions, scores against thresholds, "
        "mini-world oracle accuracy) for a generation or filter run dir."))
    parser.add_argument("run", help="a finished generation run dir or filter run dir (<run>/filter/<name>)")
    parser.add_argument("--out", help="the page to write (default: <run>/report.html)")
    parser.add_argument("--samples", type=int, default=60, help="rows shown in the sample grid (default 60)")
    parser.add_argument("--world", help="mini world dir for oracle accuracy (default: found from the run's inputs)")
    parser.add_argument("--split", choices=["heldout", "val", "pool", "train"],
                        help="the world split the run's images are from (default: from the query file name)")
    parser.add_argument("--seed", type=int, default=0, help="which rows the sample grid shows")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.run, args.out, args.samples, args.world, args.split, args.seed)
    except (ReportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
