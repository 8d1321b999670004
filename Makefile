# sparkctl: every gate and entry point in one place.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PROTOS := $(shell find proto -name '*.proto' | sort)
GEN_DIR := sparkctl/v1
NODE_DIR := tests/node
# apt-get needs root; elsewhere go through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install proto check check-proto config-doc check-config-doc lint typecheck layers test test-fast demo bench bench-rpc bench-driver bench-compare test-oracle clean node-deps \
	chromium zookeeper buf-lint bench-cli bench-scale bench-scale-driver pyspark-tests pyspark-tests-oracle

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Bytecode for our own packages, as a wheel install would write it: an editable
# install has none, and with PYTHONDONTWRITEBYTECODE set every executor and Python
# worker would compile every module at start (about 0.1 s each). Up-to-date files are
# skipped; a stale .pyc is ignored by Python, never used.
install: $(VENV)/.installed
	@$(PY) -m compileall -q -j 0 rpcenv webui cluster scheduler cli sparkctl >/dev/null

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

# The configuration reference, generated from the settings each layer declares
# (rpcenv/settings.py, cluster/settings.py, scheduler/settings.py).
config-doc: install
	$(PY) -m cli._config_doc --write docs/configuration.md

check-config-doc: install
	@$(PY) -m cli._config_doc --check docs/configuration.md

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check rpcenv webui cluster scheduler cli tests bench

typecheck: install
	$(BIN)/mypy

# The Node.js client test's packages and buf (committed package-lock.json).
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(NODE_DIR)/node_modules/.installed

# Lint proto/ with buf's STANDARD rules (buf.yaml).
buf-lint: node-deps
	$(NODE_DIR)/node_modules/.bin/buf lint
	@echo "buf lint: proto/ is clean"

# Debian's Chromium for the web UI tests, installed once.
chromium:
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# Debian's ZooKeeper for the standby-Master (recoveryMode=ZOOKEEPER) tests, installed once;
# the tests start their own server from its jars (tests/cluster/zk_server.py). apt's lists
# are refreshed only when the package is not found without it (chromium may have just done so).
ZK_JAR := /usr/share/java/zookeeper.jar
zookeeper:
	@{ [ -f $(ZK_JAR) ] && command -v java >/dev/null; } || { \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get install -y -q --no-install-recommends zookeeper >/dev/null 2>&1 || { \
			$(SUDO) apt-get update -q && \
			$(SUDO) apt-get install -y -q --no-install-recommends zookeeper; }; }
	@[ -f $(ZK_JAR) ] || { echo "ZooKeeper is not installed ($(ZK_JAR) missing)"; exit 1; }

# Which package may import which (gRPC only in rpcenv/grpc/, no cluster <-> scheduler):
# an ast pass over the sources, no imports run, about 2 s.
layers: install
	$(BIN)/pytest -q -p no:cacheprovider tests/test_layers.py

check: check-proto check-config-doc lint typecheck layers buf-lint

test: check chromium zookeeper node-deps
	$(BIN)/pytest -q

# A master and a worker daemon on 127.0.0.1 in a throwaway work dir, one
# example submitted to them, both stopped whatever happens.
DEMO_APP ?= examples/wordcount.py
demo: install
	@set -eu; work=$$(mktemp -d -t sparkctl-demo.XXXXXX); \
	sparkctl="$(BIN)/sparkctl"; \
	cleanup() { "$$sparkctl" stop-worker --work-dir "$$work" || true; \
		"$$sparkctl" stop-master --work-dir "$$work" || true; rm -rf "$$work"; }; \
	trap cleanup EXIT INT TERM; \
	port=$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	"$$sparkctl" start-master --host 127.0.0.1 --port "$$port" --webui-port 0 --work-dir "$$work"; \
	"$$sparkctl" start-worker "spark://127.0.0.1:$$port" --host 127.0.0.1 --cores 2 --memory 1g \
		--webui-port 0 --work-dir "$$work"; \
	"$$sparkctl" status --master "spark://127.0.0.1:$$port"; \
	echo; echo "== sparkctl submit --master spark://127.0.0.1:$$port $(DEMO_APP)"; \
	"$$sparkctl" submit --master "spark://127.0.0.1:$$port" $(DEMO_APP)

test-fast: install
	$(BIN)/pytest -q -x -m "not slow"

bench-rpc: install
	$(PY) bench/bench_rpc.py

# Driver workloads W1-W6 (issue 4) on local[2] and a master + one 2-core worker.
bench-driver: install
	$(PY) bench/bench_driver.py run

# CLI-side figures: start-master / start-worker to ready as the daemon commands
# see it, and the idle RSS of both daemons with their web UIs (5 runs).
bench-cli: install
	@for i in 1 2 3 4 5; do \
		w=$$(mktemp -d -t sparkctl-bench.XXXXXX); s="$(BIN)/sparkctl"; \
		t0=$$(date +%s%N); out=$$("$$s" start-master --port 0 --webui-port 0 --work-dir "$$w"); \
		t1=$$(date +%s%N); m=$$(echo "$$out" | grep -o 'spark://[0-9.:]*'); \
		"$$s" start-worker "$$m" --cores 2 --memory 1g --webui-port 0 --work-dir "$$w" >/dev/null; \
		t2=$$(date +%s%N); sleep 3; \
		echo "run $$i: start-master $$(( (t1 - t0) / 1000000 )) ms," \
			"start-worker $$(( (t2 - t1) / 1000000 )) ms," \
			"idle RSS master $$(( $$(ps -o rss= -p $$(cat $$w/sparkctl-master.pid)) / 1024 )) MiB," \
			"worker $$(( $$(ps -o rss= -p $$(cat $$w/sparkctl-worker.pid)) / 1024 )) MiB"; \
		"$$s" stop-worker --work-dir "$$w" >/dev/null; "$$s" stop-master --work-dir "$$w" >/dev/null; \
		rm -rf "$$w"; \
	done

# One master process, N = 10..2,000 simulated workers and 20 drivers (issue 9);
# ARGS=--quick runs N = 10, 100 only.
bench-scale: install
	$(PY) bench/bench_scale.py $(ARGS)

bench: bench-rpc bench-driver bench-cli

# The same workloads on PySpark (its own venv, installed here), side by side with ratios.
BENCH_VENV := .bench-venv
$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q 'pyspark>=4,<5' 'psutil>=5.9,<8' 'numpy>=1.26,<3'
	touch $@

# The PySpark-compatibility tests run on real PySpark: how their expected values are checked.
test-oracle: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/pip install -q 'pytest>=8,<10' 'pytest-timeout>=2.2,<3'
	SPARKCTL_TEST_IMPL=pyspark PYTHONHASHSEED=0 $(BENCH_VENV)/bin/pytest -q -p no:cacheprovider \
		tests/scheduler/test_compat_*.py

# PySpark's own RDD/core test files (19 of python/pyspark/tests, fetched once at the commit
# pinned in bench/pyspark_suite/fetch_spark_tests.sh; SPARK_SRC=<a Spark source tree> skips
# that) run unchanged with `pyspark` imports answered by `scheduler`: pass/fail per file and
# each failure's cause. Minutes; not part of `make test`. The -oracle target runs the same
# files on PySpark (needs a JVM).
PYSPARK_SUITE := .bench-results/pyspark-suite
SPARK_SRC ?= $(PYSPARK_SUITE)/spark
pyspark-tests: install
	bench/pyspark_suite/fetch_spark_tests.sh $(SPARK_SRC)
	$(PY) bench/pyspark_suite/run.py --spark-src $(SPARK_SRC) \
		--work $(PYSPARK_SUITE)/work-sparkctl --json $(PYSPARK_SUITE)/sparkctl.json

pyspark-tests-oracle: install $(BENCH_VENV)/.installed
	@command -v java >/dev/null || { echo "PySpark needs a JVM (openjdk-17-jre-headless)"; exit 1; }
	$(BENCH_VENV)/bin/pip install -q 'pytest>=8,<10' 'pytest-timeout>=2.2,<3'
	bench/pyspark_suite/fetch_spark_tests.sh $(SPARK_SRC)
	$(PY) bench/pyspark_suite/run.py --impl pyspark --python $(BENCH_VENV)/bin/python \
		--spark-src $(SPARK_SRC) --work $(PYSPARK_SUITE)/work-pyspark \
		--json $(PYSPARK_SUITE)/pyspark.json

# W1-W6 on local[2] and a master + worker, then the scale rows S1-S4: sparkctl, PySpark
# and the plain-Python floors side by side (issues 4 and 13).
bench-compare: install $(BENCH_VENV)/.installed
	$(PY) bench/bench_driver.py run --json .bench-results/sparkctl.json
	$(BENCH_VENV)/bin/python bench/bench_driver.py run --impl pyspark --json .bench-results/pyspark.json
	$(PY) bench/bench_driver.py compare .bench-results/sparkctl.json .bench-results/pyspark.json
	$(MAKE) --no-print-directory bench-scale-driver

# Issue 13's scale rows S1-S4 alone (minutes), both engines and the floors side by side.
bench-scale-driver: install $(BENCH_VENV)/.installed
	$(PY) bench/bench_driver.py run --scale --json .bench-results/sparkctl-scale.json
	$(BENCH_VENV)/bin/python bench/bench_driver.py run --scale --impl pyspark \
		--json .bench-results/pyspark-scale.json
	$(PY) bench/bench_driver.py compare .bench-results/sparkctl-scale.json \
		.bench-results/pyspark-scale.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
