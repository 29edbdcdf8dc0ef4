# Two entry points: `make demo` (install + ingest the bundled samples + search)
# and `make test` (install with dev extras + run the test suite). Both create .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
RAG := $(VENV)/bin/rag
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install install-dev bench clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned: a bare `torch` pulls a multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e ".[dev]"
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

demo: $(VENV)/.base
	$(RAG) ingest samples docs --collection demo
	$(RAG) search "How does reciprocal rank fusion combine the BM25 and dense rankings?" --collection demo -k 3

test: $(VENV)/.dev
	$(VENV)/bin/pytest -q

bench: $(VENV)/.dev
	$(PY) bench/ingest.py
	$(PY) bench/bm25.py

clean:
	rm -rf .rag
