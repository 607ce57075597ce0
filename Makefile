# The commands a newcomer types. Each one installs what is missing first (tools/install_deps.sh).
#   make test    build everything and run the test suite (GPU tests are skipped, visibly, without a GPU)
#   make demo    build, then synth -> train -> eval -> restore on Debian's nature photos (tools/demo.sh)
#   make demo-negative   the cross-channel task at demo scale, against the baselines (tools/demo_negative.sh)
#   make bench   run the CPU benchmarks, JSON under bench/results/
#   make bench-compare   filmgrad against PyTorch, side by side (ARGS='--quick', ARGS='--filter infer/')
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps configure build test demo demo-negative bench bench-compare golden clean

deps:
	@bash tools/install_deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The demo needs only the program, not the tests and benchmarks.
demo: configure
	@bash tools/install_deps.sh --demo
	cmake --build $(BUILD) -j $(JOBS) --target filmgrad_app
	BUILD=$(BUILD) bash tools/demo.sh

demo-negative: configure
	@bash tools/install_deps.sh --demo
	cmake --build $(BUILD) -j $(JOBS) --target filmgrad_app
	BUILD=$(BUILD) bash tools/demo_negative.sh

bench: build
	bash tools/run_cpu_bench.sh $(BUILD)

# filmgrad and its PyTorch twins (tools/torch_twins.py) timed alternately on the same shapes, one table with the
# ratios under bench/results/<machine>-<date>/ (docs/cpu_kernels.md, "Comparing with PyTorch"). PyTorch is
# Debian's python3-torch, only in tools/; the engine never uses it.
ARGS ?=
bench-compare: configure
	@bash tools/install_deps.sh --golden
	cmake --build $(BUILD) -j $(JOBS) --target compare_worker filmgrad_app
	/usr/bin/python3 tools/bench_compare.py --build $(BUILD) $(ARGS)

# Regenerates the PyTorch golden files (Debian's python3-torch and python3-torchvision; run by hand, the outputs
# are committed and the tests read them).
GOLDEN_SCRIPTS = make_golden golden_backbones golden_dynamic_unet golden_cross_channel golden_losses make_metric_fixtures
golden:
	@bash tools/install_deps.sh --golden
	@for s in $(GOLDEN_SCRIPTS); do echo "== tools/$$s.py"; /usr/bin/python3 tools/$$s.py || exit 1; done

clean:
	rm -rf $(BUILD)
