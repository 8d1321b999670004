# sparkctl: every gate and entry point in one place.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PROTOS := $(shell find proto -name '*.proto' | sort)
GEN_DIR := sparkctl/v1

.PHONY: install proto check check-proto lint typecheck test test-fast demo bench bench-rpc clean node-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Regenerate the Python code of proto/ (committed; `make check` proves it is current).
proto: install
	PATH=$(BIN):$$PATH $(PY) -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. \
		--mypy_out=. $(PROTOS)
	touch sparkctl/__init__.py $(GEN_DIR)/__init__.py

check-proto: install
	@tmp=$$(mktemp -d); \
	PATH=$(BIN):$$PATH $(PY) -m grpc_tools.protoc -Iproto --python_out=$$tmp --grpc_python_out=$$tmp \
		--mypy_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find . -type f | sort); do \
		cmp -s $$tmp/$$f $$f || { echo "generated code is stale: $$f (run 'make proto')"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "generated code is up to date"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check rpcenv cluster scheduler cli tests bench

typecheck: install
	$(BIN)/mypy

check: check-proto lint typecheck

test: check
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -x

bench-rpc: install
	$(PY) bench/bench_rpc.py

bench: bench-rpc

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
