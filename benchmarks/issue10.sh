#!/usr/bin/env bash
# Issue 10: re-measure the filter ratios on one GPU, each baseline in the same run as ours (~5-6 min):
#   judge.py      Fuyu-8B shape, 2,048 items, batch 64, 14 workers; baseline: the original batch-1 sampled
#                 generate + compute_transition_scores, 32 items, exactly 2 new tokens (Yes/No + EOS)
#   clip_crops.py ViT-L/14, 16,384 crops of 4,096 JPEGs, batch 256, 16 workers; baseline: the original's
#                 20 processes (own model each, same GPU, batch 1), 100 crops each (2,000); also 1 process, 256 crops
# Usage (repo root): OUT=<folder> bash benchmarks/issue10.sh
#   writes $OUT/{judge,clip_crops}_<gpu>.json, judge.log, clip_crops.log, summary.txt
#   TINY=1: both scripts' --tiny CPU smoke modes (checks this script, not the numbers)
set -euo pipefail
py=${PYTHON:-python3}
out=${OUT:?set OUT to the result folder}
mkdir -p "$out"
export HF_HUB_OFFLINE=1

# Project dependencies the image lacks come from the offline wheel bundle, if there is one.
wheels=${WHEELS:-.whl}
if [ -d "$wheels" ]; then
  missing=()
  for pair in hydra:hydra-core==1.3.8 omegaconf:omegaconf==2.3.1 open_clip:open_clip_torch ftfy:ftfy \
              rich:rich pycocotools:pycocotools; do
    $py -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    $py -m pip install -q --no-index --find-links "$wheels" "${missing[@]}"
  fi
fi
$py -c "import benchmarks.judge, benchmarks.clip_crops"  # fail here, not after minutes, if an import is missing

tiny=(); [ "${TINY:-0}" = 1 ] && tiny=(--tiny)
start=$SECONDS
timeout 260 $py -m benchmarks.judge --items 2048 --batch-size 64 --workers 14 --reference 32 \
  --reference-tokens 2 --out "$out" "${tiny[@]}" > "$out/judge.log" 2>&1 || echo "judge.py failed: see judge.log"
echo "judge.py: $((SECONDS - start)) s"; tail -n 22 "$out/judge.log"

start=$SECONDS
timeout 270 $py -m benchmarks.clip_crops --items 16384 --batch-size 256 --workers 16 --reference 256 \
  --procs 20 --proc-items 100 --out "$out" "${tiny[@]}" > "$out/clip_crops.log" 2>&1 || echo "clip_crops.py failed: see clip_crops.log"
echo "clip_crops.py: $((SECONDS - start)) s"; tail -n 24 "$out/clip_crops.log"

$py - "$out" <<'EOF' | tee "$out/summary.txt"
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    if path.name.startswith("judge"):
        print(f"{path.name}: ours {r['pipeline_judgements_per_s']}/s (steady {r['steady_judgements_per_s']}/s) vs "
              f"original batch 1 at {r['reference_new_tokens']} new tokens {r['reference_judgements_per_s']}/s "
              f"= {r['speedup']}x; forward alone {r['forward_judgements_per_s']}/s")
    else:
        print(f"{path.name}: ours {r['pipeline_crops_per_s']} crops/s (steady {r['steady_crops_per_s']}) vs "
              f"{r['reference_procs']} processes {r['reference_procs_crops_per_s']} crops/s = "
              f"{r['pipeline_over_reference']}x; vs 1 process {r['single_process_crops_per_s']} crops/s = "
              f"{r['pipeline_over_single_process']}x; GPU alone {r['gpu_only_crops_per_s']} crops/s")
EOF
