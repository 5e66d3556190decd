"""Citations in code, configs and docs point at something a reader has.

No file may cite the private reference document the framework was written from; every
``docs/<file>.md §N`` citation must name a doc of this repo that has a ``## N.`` heading.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".py", ".yaml", ".yml", ".md", ".sh")
# Built from pieces so that this file does not match itself.
PRIVATE = ("spec " + "\u00a7", "genixer" + "-spec")
# A doc path, an optional comma, then one section or several joined by ",", " and" or ", and".
CITATION = re.compile(r"docs/([\w./-]+?\.md),? (\u00a7\s*\d+(?:(?:,| and|, and) \u00a7\s*\d+)*)")


def repo_files() -> list[Path]:
    """Tracked files plus new ones git does not ignore (py, yaml, md, sh, Makefile) that exist."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout.decode()
    names = sorted({n for n in out.split("\0") if n})
    return [ROOT / n for n in names
            if (n.endswith(SUFFIXES) or Path(n).name == "Makefile") and (ROOT / n).is_file()]


def lines(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        yield f"{path.relative_to(ROOT)}:{number}", line


def test_no_private_reference_citations():
    hits = [f"{where}: {line.strip()}" for path in repo_files() for where, line in lines(path)
            if any(marker in line for marker in PRIVATE)]
    assert not hits, "cite docs/original.md §N or the paper instead:\n" + "\n".join(hits)


def test_doc_section_citations_resolve():
    headings: dict[str, set[str]] = {}
    bad, seen = [], 0
    for path in repo_files():
        for where, line in lines(path):
            for doc, sections in CITATION.findall(line):
                seen += 1
                target = ROOT / "docs" / doc
                if not target.is_file():
                    bad.append(f"{where}: docs/{doc} does not exist")
                    continue
                if doc not in headings:
                    headings[doc] = set(re.findall(r"(?m)^## (\d+)\.", target.read_text(encoding="utf-8")))
                bad += [f"{where}: docs/{doc} has no '## {n}.' heading"
                        for n in re.findall(r"\d+", sections) if n not in headings[doc]]
    assert seen, "no docs/<file>.md §N citation found: is the pattern still right?"
    assert not bad, "\n".join(bad)
