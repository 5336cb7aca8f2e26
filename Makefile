# The two commands a new user runs: `make demo` and `make test`. Both set up .venv first.
# Setup re-runs only when pyproject.toml changes (the stamp file), so a second run installs nothing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: setup demo test clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pipeline.weights.face_model  # BlazeFace model into ~/.cache/milmer (or $$MILMER_FACE_MODEL)
	@# tests/test_qc_report.py renders a QC report in headless Chromium (Debian's package)
	if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi
	touch $(STAMP)

demo: setup
	bash scripts/demo.sh $(DEMO_DIR)

# Two test processes (pytest-xdist, at most one per CPU): while one waits on a server, a subprocess
# or a poll, the other computes. --dist loadfile keeps each test file on one process, so module
# fixtures are built once. `pytest tests/test_x.py` alone stays one process.
test: setup
	$(BIN)/python -m pytest -n auto --maxprocesses 2 --dist loadfile

clean-demo:
	rm -rf $(DEMO_DIR)
