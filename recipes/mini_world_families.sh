#!/usr/bin/env bash
# The mini-world recipe for all task families on one GPU: vision pretraining -> generator.
#   L: Genixer_L (LLaVA-1.5 shape) on every generic family + REC + task-agnostic samples
#   S: Genixer_S (Shikra shape) on every grounding family
# Usage: bash recipes/mini_world_families.sh L|S RUNS_DIR   (writes RUNS_DIR/{l,s}_{vision,generator})
#   VISION_EXTRA / GENERATOR_EXTRA: overrides for either stage, e.g. VISION_EXTRA=data.vocab.backgrounds=true (the
#   tower learns the background too; checkpoints/judge_mini/RECIPE.md says why)
set -euo pipefail
which=${1:?usage: $0 L|S RUNS_DIR}; runs=${2:?usage: $0 L|S RUNS_DIR}
export GENIXER_RUNS=$runs GENIXER_DATA=${GENIXER_DATA:-$runs/data}
mkdir -p "$runs"
py=${PYTHON:-python3}
case $which in
  L) vision=mini_world_vision; generator=mini_world_l_generator; tag=l ;;
  S) vision=mini_world_s_vision; generator=mini_world_s_generator; tag=s ;;
  *) echo "first argument must be L or S" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
$py train.py experiment=$vision hydra.run.dir="$runs/${tag}_vision" ${VISION_EXTRA:-} > "$runs/${tag}_vision.log" 2>&1
tail -n 1 "$runs/${tag}_vision.log"
# trainer.max_time: the cap the shipped checkpoints were trained under (one device call).
# shellcheck disable=SC2086
$py train.py experiment=$generator backbone.vision_init="$runs/${tag}_vision" trainer.max_time=00:00:07:00 \
  hydra.run.dir="$runs/${tag}_generator" ${GENERATOR_EXTRA:-} > "$runs/${tag}_generator.log" 2>&1
tail -n 1 "$runs/${tag}_generator.log"
