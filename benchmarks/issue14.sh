#!/usr/bin/env bash
# Issue 14: the engine against HF static + compile at its largest batch, each stage one device call (< 600 s):
#   greedy  greedy, 1,024 requests: HF at engine.py's HF_BATCH (192) vs the engine (VARIANTS: compiled_decode, rows32;
#           session 28 measured here the overlap switches it then removed: results/engine_NVIDIA_H200_overlap.json)
#   overlap greedy, 1,024 requests, no HF: the engine against the variants that would overlap prefill and decode
#           (VARIANTS, default: the engine, serial, priority, priority+carve16, the engine again; session 44, ~250 s)
#   rest    sampled and mixed (WORKLOADS), 1,024 requests, HF at --hf-batch vs the engine (VARIANT: a list, default
#           compiled_decode; TAG names the result file)
#   e2e     generation.py --cache engine on IMAGES JPEGs (default 2,048; the compiler's cache as the machine has it)
#   e2e8k   the same on 8,192 JPEGs after a 256-image run that warms the compiler's cache (session 43: ~420 s)
#   e2e2    2 GPUs against 1 (the issue's >= 1.9x): after a 256-image warm-up, IMAGES JPEGs (default 4,096) on one GPU,
#           then twice as many on two (torchrun; the same work and start per GPU), both --cache engine (~6 min;
#           needs nvidia-h200-x2; not yet run)
#   limits  the GPU's own limits, no engine (~2 min): overlap.py (prefill matmuls beside the decode attention),
#           decode_attention.py (the kernel against a read-only ceiling), sustained.py (burst vs power-capped rates),
#           prefill_attention.py (the prompts' attention by SDPA kernel)
#   ab      this tree against an older one, where the engine's time goes (engine.py --profile: prefill ms per prompt,
#           decode ms per step, the top kernels; 512 requests) in the order new / old / new (~4 min; OLD: the older
#           tree's folder, default ab_old, made by: mkdir ab_old && git archive REV genixer benchmarks conf | tar -x -C ab_old)
#   abe2e   the same trees end to end (generation.py --cache engine on IMAGES JPEGs, default 2,048; the engine's start
#           by part), after a 256-image warm-up on this tree: new / old / new (~6 min)
#   hfmax   HF alone, greedy, at batches 224 and 256 (one process each: an OOM reports itself in the row), to find
#           its largest batch before the ratios are claimed against it (SIZES: other batches)
# Usage (repo root, on the GPU machine, wheels carried in .whl): OUT=<folder> bash benchmarks/issue14.sh <stage>
#   HF_BATCH=224 tries another HF batch (an OOM is reported in the row, not fatal)
set -euo pipefail
py=${PYTHON:-python3}
out=${OUT:?set OUT to the result folder}
stage=${1:?stage: greedy, overlap, rest, e2e, e2e8k, e2e2, limits, ab, abe2e or hfmax}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONPATH=/tmp/site:$PWD
if [ -d .whl ] && ! $py -c "import hydra, omegaconf" 2>/dev/null; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl > /dev/null
fi
$py -c "import benchmarks.engine, benchmarks.generation"   # fail here, not after minutes
hf=${HF_BATCH:-$($py -c "from benchmarks.engine import HF_BATCH; print(HF_BATCH)")}   # engine.py's default unless set
start=$SECONDS
in_tree() {   # ab stages: run "$@" in tree $1 (old: OLD's folder, default ab_old; else this one), output in $out/$1/log.txt
  local t=$1 dir=$PWD; shift
  [ "$t" = old ] && dir=$(cd "${OLD:-ab_old}" && pwd)
  mkdir -p "$out/$t"
  (cd "$dir" && PYTHONPATH=/tmp/site:$dir "$@" > "$out/$t/log.txt" 2>&1) || echo "$t failed"
  echo "== $t"
}
case $stage in
  greedy) timeout 560 $py -m benchmarks.engine --workloads greedy --requests 1024 --hf-batch "$hf" \
           --variants "${VARIANTS:-compiled_decode,rows32}" --tag "greedy_hf$hf" --out "$out" 2>&1 | grep -v -i warn | tee "$out/greedy.log" ;;
  overlap) timeout 560 $py -m benchmarks.engine --workloads greedy --requests 1024 --skip-hf --tag "${TAG:-overlap_variants}" \
           --variants "${VARIANTS:-compiled_decode,serial,priority,priority+carve16,compiled_decode}" --out "$out" 2>&1 \
           | grep -v -i warn | tee "$out/overlap.log" ;;
  rest)  timeout 560 $py -m benchmarks.engine --workloads "${WORKLOADS:-sampled,mixed}" --requests 1024 --hf-batch "$hf" --skip-sanity \
           --variants "${VARIANT:-compiled_decode}" --tag "${TAG:-rest}_hf$hf" --out "$out" 2>&1 | grep -v -i warn | tee "$out/rest.log" ;;
  e2e)   timeout 300 $py -m benchmarks.generation --cache engine --images "${IMAGES:-2048}" --batch-size 128 --workers 12 \
           --reference 0 --out "$out" 2>&1 | grep -v -i "warn\|_pytree" | tee "$out/e2e.log" | tail -25 ;;
  e2e8k) timeout 150 $py -m benchmarks.generation --cache engine --images 256 --batch-size 128 --workers 12 \
           --reference 0 --out "$out/warmup" > "$out/e2e8k_warmup.log" 2>&1
         timeout 420 $py -m benchmarks.generation --cache engine --images 8192 --batch-size 128 --workers 12 \
           --reference 0 --out "$out" 2>&1 | grep -v -i "warn\|_pytree" | tee "$out/e2e8k.log" | tail -25 ;;
  e2e2)  n=${IMAGES:-4096}
         timeout 120 $py -m benchmarks.generation --cache engine --images 256 --batch-size 128 --workers 12 \
           --reference 0 --out "$out/warmup" > "$out/e2e2_warmup.log" 2>&1
         timeout 220 $py -m benchmarks.generation --cache engine --images "$n" --batch-size 128 --workers 12 \
           --reference 0 --out "$out/gpu1" 2>&1 | grep -v -i "warn\|_pytree" | tee "$out/e2e2_gpu1.log" | tail -8
         timeout 220 $py -m torch.distributed.run --nproc-per-node 2 -m benchmarks.generation --cache engine \
           --images $((2 * n)) --batch-size 128 --workers 12 --reference 0 --out "$out/gpu2" 2>&1 \
           | grep -v -i "warn\|_pytree" | tee "$out/e2e2_gpu2.log" | tail -8 ;;
  limits) timeout 150 $py -m benchmarks.overlap --out "$out" 2>&1 | grep -v -i warn | tee "$out/limits.log" | tail -3
          timeout 120 $py -m benchmarks.decode_attention --out "$out/attn_variants.json" 2>&1 | grep -v -i warn \
            | tee -a "$out/limits.log" | grep "current\|ceiling_b128"
          timeout 120 $py -m benchmarks.sustained --out "$out" 2>&1 | grep -v -i warn | tee -a "$out/limits.log" \
            | grep "TFLOPs\|GBps\|limit"
          timeout 60 $py -m benchmarks.prefill_attention --out "$out/prefill_attention.json" 2>&1 | grep -v -i warn \
            | tee -a "$out/limits.log" | grep "whole" ;;
  ab)    for t in new1 old new2; do
           flags=--skip-sanity; [ $t = new1 ] && flags=   # the GPU sanity checks on this tree, once
           in_tree $t timeout 170 $py -m benchmarks.engine --profile $flags --skip-hf --workloads "" --requests 512 \
             --out "$out/$t"
           grep '^{' "$out/$t/log.txt" | cut -c1-600 || true
         done ;;
  abe2e) timeout 120 $py -m benchmarks.generation --cache engine --images 256 --batch-size 128 --workers 12 \
           --reference 0 --out "$out/warmup" > "$out/abe2e_warmup.log" 2>&1 || echo "warm-up failed"
         for t in new1 old new2; do
           in_tree $t timeout 150 $py -m benchmarks.generation --cache engine --images "${IMAGES:-2048}" \
             --batch-size 128 --workers 12 --reference 0 --out "$out/$t"
           grep "req_per_s\|setup\|outside" "$out/$t/log.txt" || true
         done ;;
  hfmax) for b in ${SIZES:-224 256}; do
           timeout 270 $py -m benchmarks.engine --workloads greedy --requests $((b * 4)) --hf-batch "$b" --skip-sanity \
             --variants "" --tag "hf$b" --out "$out" 2>&1 | grep -v -i warn | tee -a "$out/hfmax.log" | tail -1
         done ;;
  *) echo "unknown stage $stage (greedy, overlap, rest, e2e, e2e8k, e2e2, limits, ab, abe2e, hfmax)"; exit 2 ;;
esac
echo "$stage: $((SECONDS - start)) s"
