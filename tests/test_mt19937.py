"""The CPU generator's MT19937 uniforms computed by the GPU kernel (genixer.generation.mt19937): the kernel runs in
Triton's interpreter here (a subprocess with TRITON_INTERPRET=1), bit for bit against ``torch.Generator``."""
import json
import os
import subprocess
import sys

import pytest
import torch

from genixer.generation import mt19937

pytest.importorskip("triton")

INTERPRETED = r"""
import json, torch
from genixer.generation.mt19937 import mt19937_uniform, uses_kernel
from genixer.generation.sampling import PerSampleSampler, mt19937_gumbel
keys = torch.tensor([0, 2**32 - 1, 2**40 + 12345, -7])
result = {"kernel": uses_kernel(keys.device)}
for size in (100, 700):   # within one twist; a second twist, partly used
    got = mt19937_uniform(keys, size)
    want = torch.stack([torch.rand(size, generator=torch.Generator().manual_seed(k & 0xFFFFFFFF)) for k in keys.tolist()])
    result[f"uniform_{size}"] = torch.equal(got, want)
seeds, steps = [2**62 + 3, 123456789], [0, 255]
noise = PerSampleSampler(seeds, 0, noise="mt19937").gumbel(torch.tensor(seeds), torch.tensor(steps), torch.zeros(2, 300))
want = torch.stack([mt19937_gumbel(seed, step, 300) for seed, step in zip(seeds, steps)])
result["gumbel"] = torch.equal(noise, want)
print(json.dumps(result))
"""


def test_kernel_gives_the_cpu_generators_bits():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"kernel": True, "uniform_100": True, "uniform_700": True,
                                                                "gumbel": True}


def test_cpu_draws_are_float32_whatever_the_default_dtype():
    """Lightning's bf16-true predict sets the default dtype to bfloat16: the draws (and so the sampled tokens) must
    not change with it, and must stay the kernel's float32 bits (on an H200 the kernel check failed there)."""
    from genixer.generation.sampling import mt19937_gumbel
    keys = torch.tensor([3, 2**40])
    want, noise = mt19937.cpu_uniform(keys, 64), mt19937_gumbel(9, 2, 64)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        got, got_noise = mt19937.cpu_uniform(keys, 64), mt19937_gumbel(9, 2, 64)
    finally:
        torch.set_default_dtype(before)
    assert got.dtype == torch.float32 and torch.equal(got, want) and torch.equal(got_noise, noise)


def test_cpu_keeps_the_cpu_generator():
    assert not mt19937.uses_kernel(torch.device("cpu"))
    keys = torch.tensor([5, 2**40 + 5])   # the generator keeps the low 32 bits
    assert torch.equal(mt19937.mt19937_uniform(keys, 8)[0], torch.rand(8, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(mt19937.mt19937_uniform(keys, 8)[1], mt19937.mt19937_uniform(keys, 8)[0])


@pytest.mark.parametrize("kernel", ["wrong bits", "raises"])
def test_a_kernel_that_differs_from_the_cpu_generator_is_not_used(monkeypatch, caplog, kernel):
    def broken(keys, size):
        if kernel == "raises":
            raise RuntimeError("no kernel image for this device")
        return torch.zeros(len(keys), size)
    monkeypatch.setattr(mt19937, "_kernel_uniform", broken)
    assert not mt19937._kernel_matches(torch.device("cpu"))
    assert "drawn on the CPU instead" in caplog.text
