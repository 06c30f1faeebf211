# TDSP image-classification template. `make help` lists the targets.
PY := .venv/bin/python
DEMO_DIR := build/demo
DEMO_PROJECT := $(DEMO_DIR)/solar-cell-inspection
DEMO_PACKAGE := solar_cell_inspection

.DEFAULT_GOAL := help
.PHONY: help venv test demo bench bench-accuracy lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-15s %s\n", $$1, $$2}'

venv: ## create .venv (or reuse the cached one built from the same requirements-dev.txt)
	@tools/ensure-venv

test: venv ## bake every option, check the results, run the baked projects' own tests (on xdist workers)
	$(PY) -m pytest tests -n auto --maxprocesses 4 --dist worksteal --durations=15

demo: venv ## bake the default project and run its pipeline on ELPV (demo profile)
	rm -rf $(DEMO_DIR)
	$(PY) -m cookiecutter --no-input --output-dir $(DEMO_DIR) .
	$(PY) -m pip install -q --no-deps --no-build-isolation -e $(DEMO_PROJECT)
	cd $(DEMO_PROJECT) && $(CURDIR)/$(PY) -m $(DEMO_PACKAGE) pipeline --profile demo --out runs/demo
	@echo "Metrics:            $(DEMO_PROJECT)/runs/demo/metrics.json"
	@echo "Executed notebooks: $(DEMO_PROJECT)/runs/demo/notebooks/"

bench: venv ## every benchmark under bench/, each against a baseline measured in the same run (JSON on stdout)
	$(PY) bench/ingest.py
	$(PY) bench/resize.py
	$(PY) bench/featurize.py
	$(PY) bench/backbones.py
	$(PY) bench/train_speed.py
	$(PY) bench/service.py --also-serve "--max-wait-ms 0.01"
	$(PY) bench/scorer.py
	$(PY) bench/int8.py
	$(PY) bench/label_noise.py

bench-accuracy: venv ## transfer recipes on five real collections, 3 seeds (hours on 2 cores): build/accuracy.md
	mkdir -p build
	$(PY) bench/accuracy.py --seeds 0 1 2 --markdown build/accuracy.md --partial build/accuracy.partial.json > build/accuracy.json

lint: venv ## ruff on the template's own Python (hooks, tests)
	.venv/bin/ruff check hooks tests bench
	.venv/bin/ruff format --check hooks tests bench

clean: ## remove baked projects and caches (the cached environment stays)
	rm -rf build .pytest_cache .ruff_cache
