"""Every Triton kernel of the package compiles for the GPU (sm_90, an H100/H200) on this CPU machine: Triton's
compiler runs ahead of time down to a cubin, no device needed. The interpreter tests run the kernels' arithmetic but
not the compiler's checks: in session 50 a branch's decode kernel passed them and then failed to compile on an H200
(a loop-carried variable changed shape), so every run fell back to SDPA."""
import pytest

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from genixer.generation import counter, decode_attention, mt19937  # noqa: E402

H200 = GPUTarget("cuda", 90, 32)


def compile_for_gpu(kernel, pointers: dict[str, str], scalars: dict[str, str], constants: dict[str, int]):
    """``kernel`` compiled for ``H200`` with these argument types (pointers ``*bf16``..., scalars ``i32``/``fp32``)."""
    types = {**pointers, **scalars, **{name: "constexpr" for name in constants}}
    assert sorted(types) == sorted(kernel.arg_names), f"types for {kernel.arg_names}"
    names = kernel.arg_names
    source = ASTSource(kernel, {name: types[name] for name in names},
                       constexprs={(names.index(name),): value for name, value in constants.items()})
    return triton.compile(source, target=H200)


@pytest.mark.parametrize("block", [32, 64, 128])   # the autotune list's column blocks
def test_decode_attention_kernel_compiles(block):
    strides = "width sqb sqh skb skh skn svb svh svn smb smn sob soh".split()
    compiled = compile_for_gpu(
        decode_attention._decode_kernel,
        {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "mask_ptr": "*u8", "out_ptr": "*bf16"},
        {"scale": "fp32", **{name: "i32" for name in strides}},
        {"GROUP": 4, "D": 128, "BLOCK": block})
    assert "cubin" in compiled.asm


def test_sampling_kernels_compile():
    uniform = compile_for_gpu(mt19937._uniform_kernel, {"keys_ptr": "*i64", "state_ptr": "*i32", "out_ptr": "*fp32"},
                              {"size": "i32"}, {"BLOCK": mt19937.BLOCK})
    gumbel = compile_for_gpu(counter._gumbel_kernel, {"seeds_ptr": "*i64", "steps_ptr": "*i64", "out_ptr": "*fp32"},
                             {"size": "i32"}, {"BLOCK": counter.BLOCK})
    assert "cubin" in uniform.asm and "cubin" in gumbel.asm


def test_the_check_rejects_a_kernel_the_interpreter_accepts():
    """The failure this file guards against, in miniature: a loop-carried tensor whose shape changes in the loop."""
    @triton.jit
    def reshaped(out_ptr, N: triton.language.constexpr):
        cols = triton.language.arange(0, 2 * N)
        for start in range(0, 4, 1):
            cols = start + triton.language.arange(0, N)
        triton.language.store(out_ptr + cols, cols)

    with pytest.raises(Exception, match="Loop-carried variable cols"):
        compile_for_gpu(reshaped, {"out_ptr": "*i32"}, {}, {"N": 16})
