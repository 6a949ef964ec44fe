# The two commands a newcomer types: `make demo` and `make test`. Each first runs the idempotent set-up.
SHELL := /bin/bash
ENV := tools/env.sh
PYTEST_ARGS ?=

.PHONY: help setup demo test test-slow test-all lint bench model eval lock clean

help:
	@echo "make demo       run the self-correcting loop on the embedded MuJoCo Franka (summary + PNGs in runs/demo)"
	@echo "make test       run the test suite (everything but the tests marked slow)"
	@echo "make test-slow  run only the slow end-to-end tests;  make test-all: both"
	@echo "make lint       ruff + the ament linters;  make bench: all benchmarks;  make lock: re-pin requirements"
	@echo "make model      retrain the shipped model from scratch;  make eval: evaluate it (runs/eval/report.md)"

setup:
	@tools/setup.sh

# Two held-out scenes of unseen categories. On scene 18 the shipped model's first try fails, so the demo shows
# the whole loop: the checker sees the failure, corrections with the experts' hints, one succeeds, it is learned
# and the new adapter served (the same task again with it fails: one sample does not fix this scene).
DEMO_ARGS ?= --split test_unseen --scene-seed 18 --episodes 2
demo: setup
	$(ENV) sc-mllm bringup --demo --out runs/demo $(DEMO_ARGS)

# pytest exits 5 when it collected no test: that must not pass for success.
define run_pytest
	@set +e; $(ENV) python -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc
endef

test: setup
	$(call run_pytest,-m "not slow")

test-slow: setup
	$(call run_pytest,-m slow)

test-all: setup
	$(call run_pytest,)

lint: setup
	$(ENV) ruff check .
	$(call run_pytest,-m linter)

bench: setup
	$(ENV) sc-mllm bench sim
	$(ENV) sc-mllm bench model
	$(ENV) sc-mllm bench system

# Retrain the shipped small model from scratch on benchmark v2 (MODEL_CARD.md has the times): data (seed 1000;
# correction hints from the RGB-D experts), both stages, then one DAgger-style round: the model's own attempts on
# new training scenes (seed 2000) labelled by the simulator, and more co-fine-tuning on both; then a round that
# gives the checker the change image (before_after_change) from those weights; the checker's threshold chosen on
# the final model's attempts on validation scenes (seed 3000); copy into the package.
DATA_SEED ?= 1000
STEPS ?= 1600
ROUND_STEPS ?= 2300
CHANGE_STEPS ?= 600
TRAIN := data/train-$(DATA_SEED)
FINAL := data/train-$(DATA_SEED)-change
model: setup
	$(ENV) sc-mllm gen-data --num 16000 --test-num 300 --out data/v2-$(DATA_SEED) --seed $(DATA_SEED)
	$(ENV) sc-mllm train --data data/v2-$(DATA_SEED) --out $(TRAIN) --seed 0 --threads 2 --steps $(STEPS)
	$(ENV) sc-mllm gen-data --policy $(TRAIN)/model --num 3000 --test-num 0 --out data/policy-$(DATA_SEED) --seed 2000
	$(ENV) sc-mllm train --data data/v2-$(DATA_SEED) --data data/policy-$(DATA_SEED) --out $(TRAIN) \
		--threads 2 --resume --steps $(ROUND_STEPS)
	$(ENV) sc-mllm train --init-from $(TRAIN)/model --checker-views before_after_change \
		--data data/v2-$(DATA_SEED) --data data/policy-$(DATA_SEED) --out $(FINAL) \
		--steps $(CHANGE_STEPS) --lr 5e-4 --seed 1 --threads 2
	$(ENV) sc-mllm gen-data --policy $(FINAL)/model --num 1500 --test-num 0 --out data/val-$(DATA_SEED) --seed 3000
	$(ENV) sc-mllm calibrate --model $(FINAL)/model --data data/val-$(DATA_SEED)
	cp $(FINAL)/model/* sc_mllm_ros/assets/sc_mllm_small/

# The standard evaluation (protocol v2, test scenes of seed 7): EVAL_EPISODES scenes per split, continual learning
# with the command's default set sizes. Choose the checker threshold, steps and EMA decay first on validation
# scenes: make eval EVAL_ARGS="--split-role validation" EVAL_OUT=runs/eval-validation
EVAL_EPISODES ?= 200
EVAL_OUT ?= runs/eval
EVAL_ARGS ?=
eval: setup
	$(ENV) sc-mllm eval --episodes $(EVAL_EPISODES) --seed 7 --out $(EVAL_OUT) $(EVAL_ARGS)

# Re-pin: install requirements.txt afresh into a scratch venv and freeze it into requirements.lock.
lock:
	rm -rf .venv-lock && python3.11 -m venv .venv-lock
	.venv-lock/bin/pip install -q -r requirements.txt
	.venv-lock/bin/pip freeze --exclude-editable > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf build install log .pytest_cache
