#!/usr/bin/env bash
# Grade a Genixer_S candidate on the demo world's 300 val images (never on held-out), on the CPU in fp32, as the
# RECIPE's candidate tables are graded (checkpoints/genixer_s_mini/RECIPE.md):
#   greedy/  REG, PointQA, Q->C^Box A, RD greedy, and REC with 5 beams (the demo's decoding)
#   open6/   PointQA, Q->C^Box A, RD with the opening sampled (6 tokens at temperature 1.0, the rest greedy): coverage
#   sampled/ (DECODINGS=... sampled) REC at temperature 0.9 and REG at 1.0, every word sampled, the boxes greedy: coverage
#   then the strict oracle with coverage against the Genixer_S mixture (<out>/greedy.txt, open6.txt, sampled.txt) and the
#   teacher-forced answer probe on val samples (<out>/probe.json: does it know the relation rule?).
# Usage: bash recipes/grade_genixer_s.sh CANDIDATE OUT   (CANDIDATE: a run or checkpoint dir; about 5-10 minutes)
# The demo world (runs/demo/world) is built first when missing, as `make demo` builds it.
# VAL_IMAGES=N grades on N val images instead (a world of its own, runs/grade_world_N: the demo world's images with
# N val images, the first 300 of them the demo's; held-out untouched): 300 images move an accuracy near 85% by about
# 2 points (one standard error), so close calls need more.
# EXTRA: overrides for every generate.py call (e.g. seed=1 redraws the samples and instruction templates).
# TASKS: the families to grade (default rec,reg,pointqa,qca_box,rd; open6 takes those of pointqa,qca_box,rd);
# PROBE=0 skips the answer probe (a quick look at one family: TASKS=qca_box,rd PROBE=0).
# DECODINGS: which of greedy, open6, sampled to run (default "greedy open6").
# On the GPU machine: PYTHON=python3 EXTRA="trainer=gpu trainer.precision=32-true" (fp32 there too). Two wide candidates
# graded side by side took 500 s of one H200 at VAL_IMAGES=1000; a wide candidate's greedy REG rows came out 990 of 1,000
# the same text as on the CPU (the others differ in a box's last digit) with the same accuracy.
# A device call returns only a handful of files: write OUT outside $OUT there and tar it into $OUT.
# Faster there: three instances per candidate into OUT/a, OUT/b, OUT/c side by side (TASKS=rec,reg DECODINGS=sampled;
# TASKS=pointqa,rd DECODINGS=open6; TASKS=qca_box DECODINGS=open6; PROBE=0): two candidates in ~145 s (session 37).
set -eu
candidate=${1:?usage: $0 CANDIDATE OUT}; out=${2:?usage: $0 CANDIDATE OUT}
# name: the generator's name as evaluate.py gives it (its folder's name: "checkpoint" for a run's checkpoint dir), so
# that coverage compares it with the Genixer_S mixture; unnamed, REC would be compared with the first mixture that has
# REC, Genixer_L's (4 REC kinds instead of 19), as it was for candidates graded from a checkpoint dir before session 36
py=${PYTHON:-.venv/bin/python}; name=$(basename "$candidate")
val='queries=${paths.mini_world}/images/val.jsonl'; mkdir -p "$out"; log=$out/grade.log
world=runs/demo/world; at=()
if [ -n "${VAL_IMAGES:-}" ]; then world=runs/grade_world_$VAL_IMAGES; at=(paths.mini_world="$world" world.num_val="$VAL_IMAGES"); fi
# shellcheck disable=SC2086
gen() { $py generate.py "$@" experiment=mini_world_demo "$val" generator="$candidate" "${at[@]}" ${EXTRA:-} >> "$log" 2>&1; }
tasks=,${TASKS:-rec,reg,pointqa,qca_box,rd},
# pick FAMILY...: those of the families asked for, comma-separated
pick() { local t k=(); for t in "$@"; do [[ $tasks == *,$t,* ]] && k+=("$t"); done; (IFS=,; echo "${k[*]}"); }
decodings=" ${DECODINGS:-greedy open6} "; greedy=$(pick reg pointqa qca_box rd); open=$(pick pointqa qca_box rd)
sampled=(generation.do_sample=true generation.greedy_boxes=true generation.max_new_tokens=64)
if [[ $decodings == *" greedy "* ]]; then
  [ -n "$greedy" ] && gen -m task="$greedy" hydra.sweep.dir="$out/greedy" hydra.sweep.subdir='${task.name}'
  [ -n "$(pick rec)" ] && gen task=rec generation.num_beams=5 generation.max_new_tokens=64 hydra.run.dir="$out/greedy/rec"
fi
[[ $decodings == *" open6 "* ]] && [ -n "$open" ] && gen -m task="$open" generation.do_sample=true \
  generation.temperature=1.0 generation.sample_tokens=6 hydra.sweep.dir="$out/open6" hydra.sweep.subdir='${task.name}'
if [[ $decodings == *" sampled "* ]]; then
  [ -n "$(pick rec)" ] && gen task=rec generation.temperature=0.9 "${sampled[@]}" hydra.run.dir="$out/sampled/rec"
  [ -n "$(pick reg)" ] && gen task=reg generation.temperature=1.0 "${sampled[@]}" hydra.run.dir="$out/sampled/reg"
fi
for decoding in greedy open6 sampled; do
  [ -d "$out/$decoding" ] || continue
  $py evaluate.py experiment=mini_world_demo "${at[@]}" runs="[$out/$decoding]" oracle.split=val "~coverage.prefer" \
    "+coverage.prefer={$name: genixer_s}" hydra.run.dir="$out/eval_$decoding" >> "$log" 2>&1
  cp "$out/eval_$decoding/table.txt" "$out/$decoding.txt"
  grep -q "^training reference of $name: genixer_s ([^;]*$" "$out/$decoding.txt" ||
    { grep "^training reference" "$out/$decoding.txt"; echo "coverage not against the Genixer_S mixture alone" >&2; exit 1; }
done
if [ "${PROBE:-1}" != 0 ]; then
  $py -m genixer.miniworld.models.answer_probe "$candidate" --world "$world" --split val --out "$out/probe.json" \
    >> "$log" 2>&1
fi
cat "$out"/greedy.txt "$out"/open6.txt "$out"/sampled.txt 2>/dev/null || true
