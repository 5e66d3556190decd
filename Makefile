# Two commands do all setup: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo
GENERATOR ?= checkpoints/genixer_l_mini

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# make demo          : shipped mini-world Genixer_L -> generate Common VQA + REC -> oracle table
# make demo TRAIN=1  : the whole recipe from scratch on this machine (time-boxed), then the same
demo: $(STAMP)
	rm -rf $(DEMO)
ifeq ($(TRAIN),1)
	$(PY) train.py experiment=mini_world_cpu_vision hydra.run.dir=$(DEMO)/train/vision
	$(PY) train.py experiment=mini_world_cpu_generator backbone.vision_init=$(DEMO)/train/vision hydra.run.dir=$(DEMO)/train/generator
	$(MAKE) --no-print-directory demo-generate GENERATOR=$(DEMO)/train/generator
else
	$(MAKE) --no-print-directory demo-generate
endif

demo-generate:
	$(PY) generate.py -m experiment=mini_world_demo generator=$(GENERATOR) task=common_vqa,rec \
		hydra.sweep.dir=$(DEMO)/generate hydra.sweep.subdir='$${task.name}'
	$(PY) evaluate.py experiment=mini_world_demo runs=[$(DEMO)/generate/common_vqa,$(DEMO)/generate/rec] \
		hydra.run.dir=$(DEMO)/evaluate

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf runs data .pytest_cache
