# Two commands do all setup: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo
GENERATOR ?= checkpoints/genixer_l_mini
GENERATOR_L ?= checkpoints/genixer_l_mini_all
GENERATOR_S ?= checkpoints/genixer_s_mini
GENERIC := common_vqa,adv_vqa,mc_vqa,md,long_qa,rec,agnostic
OPENED := pointqa,qca_box
FILTERED := main/common_vqa main/rec genixer_l/md genixer_l/mc_vqa genixer_s/rec genixer_s/reg
# Decoding, chosen on the val split by strict accuracy and coverage (docs/demo.md, "Choosing the demo's decoding"): there
# every family asks every kind at >= half its training share. Genixer_L samples at temperature 0.7. Genixer_S samples the
# first 6 tokens of PointQA, Q->C^Box A and RD at 1.0 (they pick the question; the rest greedy), and every word of
# REC at 0.9 and of REG at 1.0 with the box numbers greedy (lower temperatures drop the rare expression kinds; their
# outputs are <= 42 tokens, so 64 new tokens change nothing). Genixer_S draws 8 candidates per sample (generation.best_of,
# one prefill per sample with the static cache) and keeps, within its kind's share of Genixer_S's training data
# (candidate_shares), the one it finds likeliest among candidates of its kind; RD adds half the z-score over all
# candidates (generation.best_of_overall=0.5). On val (session 41): REC 82.6% -> 89.8%, REG 90.7% -> 95.7%, PointQA Local
# 97.2% -> 97.6%, Q->C^Box A 80.9% -> 86.9%, RD 96.6% -> 98.5%, every kind at >= 0.9 of its training share; with session
# 42's checkpoint (more distinct images): REC 91.7%, REG 96.2%, PointQA Local 98.3%, Q->C^Box A 87.8%, RD 99.4%.
SAMPLE_L := generation.do_sample=true generation.temperature=0.7
OPEN_S := generation.do_sample=true generation.temperature=1.0 generation.sample_tokens=6
WORDS_S := generation.do_sample=true generation.greedy_boxes=true generation.max_new_tokens=64
BEST_S := generation.best_of=8 generation.cache=static candidate_shares=mini_world_genixer_s
REC_S := $(WORDS_S) generation.temperature=0.9 $(BEST_S)
REG_S := $(WORDS_S) generation.temperature=1.0 $(BEST_S)

.PHONY: install demo demo-generate demo-filter demo-threshold test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# make demo          : shipped mini-world generators -> generate every family -> filter (judge + CLIP) -> oracle tables
# make demo TRAIN=1  : the whole recipe from scratch on this machine (time-boxed here: trainer.max_time), then the same
demo: $(STAMP)
	rm -rf $(DEMO)
ifeq ($(TRAIN),1)
	$(PY) train.py experiment=mini_world_cpu_vision trainer.max_time=00:00:02:00 hydra.run.dir=$(DEMO)/train/vision
	$(PY) train.py experiment=mini_world_cpu_generator backbone.vision_init=$(DEMO)/train/vision \
		trainer.max_time=00:00:08:00 hydra.run.dir=$(DEMO)/train/generator
	$(MAKE) --no-print-directory demo-generate GENERATOR=$(DEMO)/train/generator
else
	$(MAKE) --no-print-directory demo-generate
endif
	$(MAKE) --no-print-directory demo-filter

# Issue-2 generator on Common VQA + REC, then every family with the all-family Genixer_L / Genixer_S.
demo-generate:
	$(PY) generate.py -m experiment=mini_world_demo generator=$(GENERATOR) task=common_vqa,rec $(SAMPLE_L) \
		hydra.sweep.dir=$(DEMO)/generate/main hydra.sweep.subdir='$${task.name}'
	$(PY) generate.py -m experiment=mini_world_demo generator=$(GENERATOR_L) task=$(GENERIC) $(SAMPLE_L) \
		hydra.sweep.dir=$(DEMO)/generate/genixer_l hydra.sweep.subdir='$${task.name}'
	$(PY) generate.py -m experiment=mini_world_demo generator=$(GENERATOR_S) task=$(OPENED) $(OPEN_S) $(BEST_S) \
		hydra.sweep.dir=$(DEMO)/generate/genixer_s hydra.sweep.subdir='$${task.name}'
	$(PY) generate.py experiment=mini_world_demo generator=$(GENERATOR_S) task=rd $(OPEN_S) $(BEST_S) \
		generation.best_of_overall=0.5 hydra.run.dir=$(DEMO)/generate/genixer_s/rd
	$(PY) generate.py experiment=mini_world_demo generator=$(GENERATOR_S) task=reg $(REG_S) \
		hydra.run.dir=$(DEMO)/generate/genixer_s/reg
	$(PY) generate.py experiment=mini_world_demo generator=$(GENERATOR_S) task=rec $(REC_S) \
		hydra.run.dir=$(DEMO)/generate/genixer_s/rec
	$(PY) evaluate.py experiment=mini_world_demo runs=[$(DEMO)/generate/main] hydra.run.dir=$(DEMO)/evaluate/main
	$(PY) evaluate.py experiment=mini_world_demo runs=[$(DEMO)/generate/genixer_l,$(DEMO)/generate/genixer_s] \
		hydra.run.dir=$(DEMO)/evaluate/families

# The mini-world judge (QA rows) and CLIP filter (REC rows), then their precision / recall against the oracle.
demo-filter:
	for run in $(FILTERED); do $(PY) filter.py run=$(DEMO)/generate/$$run filter=mini || exit 1; done
	$(PY) evaluate.py experiment=mini_world_demo filters=[$(DEMO)/generate] hydra.run.dir=$(DEMO)/evaluate/filters

# The mini CLIP threshold (conf/filter/clip_mini.yaml) chosen where the demo never reports: 1,000 val images (the
# grade world, runs/grade_world_1000: the demo world's images with 700 more val images, held-out untouched), generated
# with the decodings above for the runs demo-filter CLIP-filters (main/rec, genixer_s/rec, genixer_s/reg), scored by the
# mini CLIP; the lowest cosine at which each REC run's kept rows are >= 97% strict-correct (issue 10's target) by their
# one-sided 95% lower confidence bound, not just as measured. REG is filtered at it and shown, but does not choose it
# (since session 38: the REG rows CLIP scores highest already hold errors). On the demo world's 300 val images the
# best-of-k decodings found no threshold (sessions 40-42: ~180 kept Genixer_S REC rows cannot prove 97% with a few
# errors among them); on 1,000 (session 42): 0.8163508. CPU, ~16 minutes (built on first use, the world ~1 more).
THRESHOLD := runs/demo_threshold
GRADE_WORLD := paths.mini_world=runs/grade_world_1000 world.num_val=1000
VAL := queries='$${paths.mini_world}/images/val.jsonl' $(GRADE_WORLD)
demo-threshold: $(STAMP)
	$(PY) generate.py experiment=mini_world_demo $(VAL) generator=$(GENERATOR) task=rec $(SAMPLE_L) \
		hydra.run.dir=$(THRESHOLD)/generate/main_rec
	$(PY) generate.py experiment=mini_world_demo $(VAL) generator=$(GENERATOR_S) task=rec $(REC_S) \
		hydra.run.dir=$(THRESHOLD)/generate/s_rec
	$(PY) generate.py experiment=mini_world_demo $(VAL) generator=$(GENERATOR_S) task=reg $(REG_S) \
		hydra.run.dir=$(THRESHOLD)/generate/s_reg
	for run in main_rec s_rec s_reg; do $(PY) filter.py run=$(THRESHOLD)/generate/$$run filter=clip_mini || exit 1; done
	$(PY) evaluate.py experiment=mini_world_demo $(GRADE_WORLD) oracle.split=val filters=[$(THRESHOLD)/generate] \
		choose_threshold='{scorer: clip, field: cosine, min_precision: 0.97, confidence: 0.95, families: [rec]}' hydra.run.dir=$(THRESHOLD)/evaluate

# Two lanes on the 2 cores: the study's end-to-end test (a chain of entry-point processes, mostly one core), the
# answering and filter pipelines' and the Triton-interpreter kernel tests (subprocess runs) beside the rest; the
# slowest tests of each lane are listed. One torch thread per lane: two lanes of two threads each on two cores ran
# the same tests 3.6x slower (127 s against 35 s for test_sampling + test_engine beside test_training_loop).
BESIDE := tests/test_study.py tests/test_benchmark_pipeline.py tests/test_filter_pipeline.py tests/test_decode_attention.py \
	tests/test_mt19937.py tests/test_compiled_layers.py
test: $(STAMP) browser
	@export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; log=$$(mktemp); $(PY) -m pytest -q --durations=5 $(BESIDE) > $$log 2>&1 & beside=$$!; \
	$(PY) -m pytest -q --durations=15 $(addprefix --ignore=,$(BESIDE)); rest=$$?; \
	wait $$beside; status=$$?; echo "--- $(BESIDE)"; cat $$log; rm -f $$log; \
	[ $$rest -eq 0 ] && [ $$status -eq 0 ]

# A headless Chromium for the report's render test (tests/test_report.py; it skips without one): kept if any is on
# PATH, else installed where the OS package manager offers it (apt-get as root), else a note. Never fails.
BROWSERS := chromium chromium-browser google-chrome chrome-headless-shell
.PHONY: browser
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && \
			apt-get install -y -qq chromium >/dev/null 2>&1; } || true; \
	fi; \
	command -v chromium >/dev/null 2>&1 || echo "no browser: the report render test (tests/test_report.py) will skip"

clean:
	rm -rf runs data .pytest_cache
