# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart

.PHONY: install demo test export readme

$(STAMP): setup.py settings.ini constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">> installing medtrain and its pinned dependencies into $(VENV) (first time: a few minutes)"
	@start=$$(date +%s); \
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]' && \
	echo ">> install took $$(( $$(date +%s) - start )) s"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	@start=$$(date +%s); \
	$(BIN)/medtrain train --config configs/quickstart.yaml --run-dir $(RUN_DIR) && \
	$(BIN)/medtrain evaluate --model-path $(RUN_DIR)/model --test-data $(RUN_DIR)/test.csv --out $(RUN_DIR)/test && \
	echo ">> demo (train + evaluate) took $$(( $$(date +%s) - start )) s" && \
	echo ">> run dir: $(RUN_DIR)   test report: $(RUN_DIR)/test/report.html   test metrics: $(RUN_DIR)/test/metrics.json"

test: install
	$(BIN)/nbdev_test --n_workers 2 --timing --flags slow
	$(BIN)/pytest -ra

export: install
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export
	$(BIN)/python tools/readme.py

readme: install
	$(BIN)/python tools/readme.py
