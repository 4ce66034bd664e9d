# Sluice — build, run and test. `make run` and `make test` work on a fresh Debian machine
# (as root: missing C libraries are installed with apt-get).
SWIFT ?= swift
BIN_DEBUG = .build/debug/sluice
BIN_RELEASE = .build/release/sluice
WORKERS ?= 2
OUT ?= out

.PHONY: deps build release run test lint bench bench-peers report-check slurm-up slurm-down clean

deps:
	@missing=""; \
	for pkg in libz-dev:zlib.h libarchive-dev:archive.h; do \
	  name=$${pkg%%:*}; header=$${pkg##*:}; \
	  [ -f /usr/include/$$header ] || missing="$$missing $$name"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The main job on the bundled data: word count over two public-domain books.
run: release
	@rm -rf $(OUT)/wordcount
	$(BIN_RELEASE) run wordcount --input datasets/texts --output $(OUT)/wordcount --workers $(WORKERS)
	@echo; echo "Top 10 tokens:"; sort -t '	' -k2,2nr -k1,1 $(OUT)/wordcount/part-* | head -10

# The Slurm tests run on a real 3-node cluster on this machine, brought up for the tests and
# taken down after (skipped, with a message, only where its packages cannot be installed).
test: deps
	$(SWIFT) build --build-tests
	@rc=0; out=$$(bash scripts/slurm-cluster.sh up) || rc=$$?; \
	if [ $$rc = 0 ]; then eval "$$(printf '%s\n' "$$out" | tail -1)"; \
	elif [ $$rc = 3 ]; then echo "Slurm packages unavailable: the Slurm tests are skipped"; \
	else echo "the Slurm test cluster did not come up"; bash scripts/slurm-cluster.sh down >/dev/null 2>&1; exit 1; fi; \
	status=0; $(SWIFT) test || status=$$?; \
	bash scripts/slurm-cluster.sh down >/dev/null 2>&1 || true; \
	exit $$status

# No function in Sources/ longer than 150 lines (the runtime stays in readable parts).
lint:
	python3 scripts/longest-functions.py Sources

# The benchmark suite: generated data, median of several runs, MB/s, peak RSS, JSON results.
bench: release
	bash bench/run.sh

# DuckDB, Polars, PySpark (from PyPI, in .venv-bench), GNU tools and a C baseline on the same
# data, outputs checked against Sluice's, ratios side by side.
bench-peers: release
	bash bench/peers.sh

# Renders the HTML report of a run with injected failures in headless Chromium and checks it.
report-check: release
	bash scripts/report-screenshot.sh

# A real 3-node Slurm cluster on this machine (root; Debian's packages, installed when missing).
# Use it with: eval "$$(scripts/slurm-cluster.sh up | tail -1)"  (exports SLURM_CONF).
slurm-up:
	bash scripts/slurm-cluster.sh up

slurm-down:
	bash scripts/slurm-cluster.sh down

clean:
	rm -rf .build $(OUT)
