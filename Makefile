# `make demo` runs the main job, `make test` the test suite; each first builds .venv if needed.
PYTHON ?= python3
VENV := .venv
# On these machines `torch==2.13.0` is a CPU wheel on local disk; elsewhere pick the build you need,
# e.g. `make test TORCH=torch` (any torch >= 2.13 works).
TORCH ?= torch==2.13.0

.PHONY: setup demo test train-headline train-mnist train-variants clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "$(TORCH)"
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/python scripts/main_job.py

test: setup
	$(VENV)/bin/python -m pytest -q

# The three headline models with one shared recipe (about 75 minutes on the 2-core machine; resumable).
DATA ?= ../shared/data/cifar10
train-headline: setup
	for preset in vanilla loopy deep; do \
		$(VENV)/bin/python scripts/train.py configs/train/cpu.yaml --config_name $$preset \
			--dataset_name $(DATA) --output_dir out/headline/$$preset --disable_tqdm true || exit 1; \
	done

clean:
	rm -rf $(VENV) out

# The paper's MNIST models at k = 1, 2, 3 with the paper's recipe (no augmentation: flips do not suit digits),
# 3 epochs each (about 15 minutes).
MNIST ?= ../shared/data/mnist
train-mnist: setup
	for k in 1 2 3; do \
		$(VENV)/bin/python scripts/train.py configs/train/paper.yaml --config_name mnist-k$$k --num_train_epochs 3 \
			--dataset_name $(MNIST) --output_dir out/mnist/mnist-k$$k --disable_tqdm true || exit 1; \
	done

# The paper's experiment variants (paper-* presets) with the paper's recipe at batch 32, bf16 autocast on the CPU
# (AMX) to fit the budget: 6 epochs each, about 50 minutes for the five. `make train-variants SEED=1` adds a seed.
VARIANTS := paper-vanilla paper-loopy paper-deep-untied paper-add-layer paper-mul-layer
SEED ?= 0
train-variants: setup
	for preset in $(VARIANTS); do \
		$(VENV)/bin/python scripts/train.py configs/train/paper.yaml --config_name $$preset --num_train_epochs 6 \
			--bf16 true --use_cpu true --seed $(SEED) --dataset_name $(DATA) \
			--output_dir out/variants/seed$(SEED)/$$preset --disable_tqdm true || exit 1; \
	done
