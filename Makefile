# `make demo` and `make test` create or refresh .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip -q --disable-pip-version-check

.PHONY: venv demo demo-tickets test test-fast test-wheel fuzz lint bench models docs clean

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (torch CPU pin first, then pinned requirements)"
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps --ignore-requires-python -r requirements-nodeps.txt
	@# lava-dl's wheel installs a top-level `tests` package (110 MB) that would shadow ours
	rm -rf "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tests"
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# The main job: compile the shipped digits SCNN to Lava and simulate all 540 test images.
demo: venv
	$(BIN)/snncompile models/digits_scnn.pt --target lava --input models/digits_test.npz \
		--simulate --check -o out/digits_scnn

# The second demo: the three shipped tickets (pruned CNN, binary-weight CNN, spiking
# transformer with a binarized ConvPEP and masked patches), each checked spike for spike.
demo-tickets: venv
	$(BIN)/snncompile models/digits_scnn_ticket.pt --input models/digits_test.npz --simulate --check -v
	$(BIN)/snncompile models/digits_scnn_binw_ticket.pt --input models/digits_test.npz --simulate --check
	$(BIN)/snncompile models/digits_spikformer_convpep.pt --arch models.digits_arch:digits_spikformer \
		--input models/digits_test.npz --simulate --check

# Two pytest-xdist workers on this 2-core machine (8.8 min instead of ~14 serially; Ray tests share
# one worker through their xdist_group). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadgroup

test: venv
	$(BIN)/python -m pytest -q $(XDIST)

# Everything but the Lava simulations, property tests with a quarter of CI's examples.
test-fast: venv
	HYPOTHESIS_PROFILE=fast $(BIN)/python -m pytest -q -m "not lava" $(XDIST)

# The wheel in a fresh venv with the torch pin and [spikingjelly] from the package index (~5 min).
test-wheel: venv
	SNNCOMPILE_SLOW=1 $(BIN)/python -m pytest -q tests/test_install.py -k fresh_venv

# Property-based tests with a larger budget than CI's (HYPOTHESIS_PROFILE=fuzz; see tests/property).
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/property

lint: venv
	$(BIN)/ruff check snncompile backends tests models benchmarks

bench: venv
	$(BIN)/python -m benchmarks.run

# Rebuild the example checkpoints (seeded; committed files are what this writes).
models: venv
	$(BIN)/python models/build_digits_scnn.py
	$(BIN)/python models/build_tickets.py

# Regenerate docs/tutorial.md and its plots from real runs.
docs: venv
	$(BIN)/python docs/build_tutorial.py

clean:
	rm -rf $(VENV) out .pytest_cache
