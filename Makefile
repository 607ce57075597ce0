# The commands a newcomer types. Each one installs what is missing first (tools/install_deps.sh).
#   make test    build everything and run the test suite (GPU tests are skipped, visibly, without a GPU)
#   make demo    build and run the demo on its embedded default
#   make bench   run the CPU benchmarks, JSON under bench/results/
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps configure build test demo bench golden clean

deps:
	@bash tools/install_deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/filmgrad demo

bench: build
	bash tools/run_cpu_bench.sh $(BUILD)

# Regenerates the PyTorch golden files (needs Debian's python3-torch; run by hand, outputs are committed).
golden:
	/usr/bin/python3 tools/make_golden.py

clean:
	rm -rf $(BUILD)
