# paper-companion: every target sets itself up (.venv, pinned torch, the C++ extension).
#   make figures   regenerate every paper's figures at default scale, verify the theory, write results/index.html
#   make test      the whole test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
SCALE  ?= default
INSTALLED := $(VENV)/.installed
BUILT     := build/.extension-built
CSRC      := $(shell find csrc -type f -name '*.cpp' -o -type f -name '*.h' -o -type f -name '*.cu' 2>/dev/null)

.PHONY: figures test lint bench verify report test-gpu build clean

figures: $(BUILT)
	@status=0; \
	$(BIN)/companion reproduce all --scale $(SCALE) || status=$$?; \
	$(BIN)/companion verify all || status=$$?; \
	$(BIN)/companion report; \
	echo "report: results/index.html"; exit $$status

test: $(BUILT) lint
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium unavailable: the browser test will skip"
	$(BIN)/python -m pytest -q

lint: $(INSTALLED)
	$(BIN)/ruff check .

bench: $(BUILT)
	$(BIN)/companion bench all

verify: $(BUILT)
	$(BIN)/companion verify all

report: $(INSTALLED)
	$(BIN)/companion report

# On a machine with a GPU and a CUDA build of torch: build the CUDA kernels, run the `cuda` tests, benchmark.
test-gpu: $(INSTALLED)
	$(BIN)/python setup.py build_ext --inplace
	$(BIN)/python -m pytest -q -m cuda
	$(BIN)/companion bench all --device cuda

build: $(BUILT)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build.
$(INSTALLED): pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH) numpy "setuptools>=77" wheel ninja pybind11
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	touch $@

$(BUILT): $(INSTALLED) setup.py $(CSRC)
	$(BIN)/python setup.py build_ext --inplace
	mkdir -p build && touch $@

clean:
	rm -rf build common/_C*.so *.egg-info
