"""Counter noise (genixer.generation.counter): its GPU kernel, run in Triton's interpreter here (a subprocess with
TRITON_INTERPRET=1), against the int64 tensor-op reference; a kernel that differs is not used."""
import json
import os
import subprocess
import sys

import pytest
import torch

from genixer.generation import counter

pytest.importorskip("triton")

INTERPRETED = r"""
import json, torch
from genixer.generation import counter
seeds = torch.tensor([0, 5, 2**62 + 17, 2**63 - 1, -3, 123456789])
steps = torch.tensor([0, 7, 255, 2**33 + 1, 1, 0])
got, want = counter.counter_gumbel(seeds, steps, 2500), counter.counter_gumbel_reference(seeds, steps, 2500)
strided = torch.equal(counter.counter_gumbel(seeds[::2], steps[::2], 2500), got[::2])   # rows read densely or not
# the interpreter's log is numpy's, which may round an ulp apart from torch's (on a GPU the check is bit for bit)
print(json.dumps({"kernel": counter.uses_kernel(seeds.device), "shape": list(got.shape),
                  "max_abs": float((got - want).abs().max()), "argmax": torch.equal(got.argmax(1), want.argmax(1)),
                  "strided": strided}))
"""


def test_kernel_gives_the_references_noise():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kernel"] and result["shape"] == [6, 2500] and result["argmax"] and result["strided"]
    assert result["max_abs"] < 2e-6   # an ulp or two of log; a wrong hash scrambles every bit of the draw


def test_cpu_uses_the_reference():
    assert not counter.uses_kernel(torch.device("cpu"))
    seeds, steps = torch.tensor([3, 2**40]), torch.tensor([1, 2])
    assert torch.equal(counter.counter_gumbel(seeds, steps, 50), counter.counter_gumbel_reference(seeds, steps, 50))


@pytest.mark.parametrize("kernel", ["wrong bits", "raises"])
def test_a_kernel_that_differs_from_the_reference_is_not_used(monkeypatch, caplog, kernel):
    def broken(seeds, steps, size):
        if kernel == "raises":
            raise RuntimeError("no kernel image for this device")
        return counter.counter_gumbel_reference(seeds, steps + 1, size)   # another step's noise
    monkeypatch.setattr(counter, "_kernel_gumbel", broken)
    assert not counter._kernel_matches(torch.device("cpu"))
    assert "the reference's tensor ops serve instead" in caplog.text
