#!/usr/bin/env bash
# Issue 13 on a GPU machine: FSDP with gradient accumulation (paper_genixer_s_stage1_mini: 4 per step x 2
# accumulated) as the preset builds it (fp32 gathers when accumulating: genixer.training.sharding.strategy), with
# bf16 gathers forced (torch 2.11 refuses to accumulate their gradients), and without accumulation; prints
# each run's outcome (steps, loss) or the end of its traceback. Usage: bash recipes/fsdp_accumulation_check.sh OUT_DIR
set -u
out=${1:?usage: $0 OUT_DIR}; runs=/tmp/fsdp_accumulation; mkdir -p "$out" "$runs"
world="paths.mini_world=$runs/world world.num_train=40 world.num_heldout=4 world.num_val=4 world.workers=8"
dtype() { echo "{_target_: hydra.utils.get_object, path: torch.$1}"; }
mp() { echo "+trainer.strategy.mixed_precision={_target_: torch.distributed.fsdp.MixedPrecision, param_dtype: $(dtype $1), reduce_dtype: $(dtype $2), buffer_dtype: $(dtype $3)}"; }
run() {
  name=$1; shift
  python3 train.py experiment=paper_genixer_s_stage1_mini trainer=fsdp trainer.devices=1 trainer.max_steps=3 \
    data.num_workers=0 $world hydra.run.dir=$runs/$name "$@" > "$out/$name.log" 2>&1
  rc=$?
  echo "== $name: exit $rc"
  if [ $rc = 0 ]; then
    python3 -c "import json;m=json.load(open('$runs/$name/manifest.json'))['metrics'];print('steps',m['steps'],'loss',m['train/loss'])"
  else
    grep -E "Error|error" "$out/$name.log" | tail -2
  fi
}
run preset
run bf16_gathers "$(mp bfloat16 bfloat16 bfloat16)"
run no_accumulation global_batch_size=4
