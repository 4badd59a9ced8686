# The two commands of the README: `make demo` and `make test`.
MODEL := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
CARGO ?= cargo

.PHONY: demo test bench setup model vulkan dist

# llama.cpp's Vulkan backend on Mesa's software driver (lavapipe): the GPU
# code path, tested without a GPU. GGML_VK_VISIBLE_DEVICES=0 because ggml
# skips CPU-type Vulkan devices unless they are named.
LAVAPIPE := /usr/share/vulkan/icd.d/lvp_icd.x86_64.json
VULKAN_ENV := GGVIZ_BACKEND_DIR=$(CURDIR)/target/backends GGML_VK_VISIBLE_DEVICES=0 \
	VK_ICD_FILENAMES=$(LAVAPIPE) VK_DRIVER_FILES=$(LAVAPIPE) GGVIZ_TEST_DEVICE=vulkan:0

setup:
	@scripts/setup.sh

model:
	@scripts/fetch-test-model.sh >/dev/null

# Builds ggviz, fetches the demo model, runs it and writes the site.
demo: setup model
	$(CARGO) build --release
	./target/release/ggviz inspect $(MODEL)
	./target/release/ggviz build $(MODEL) -o site
	@echo
	@echo "The site is at $(CURDIR)/site/index.html (open it in a browser; it works offline)."

# Everything CI runs: formatting, lints, every test, docs. Lints and docs use
# the test profile so that all steps share one build of llama.cpp (the dev
# profile's would be another).
test: setup model
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --profile test -- -D warnings
	$(CARGO) test --all-targets
	scripts/build-backend.sh vulkan
	$(VULKAN_ENV) $(CARGO) test --test engine_gpu -- --nocapture
	$(CARGO) test --doc
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --profile test

# libggml-vulkan.so into target/backends (for --backend-dir / GGVIZ_BACKEND_DIR).
vulkan: setup
	scripts/build-backend.sh vulkan

# A folder to copy to other x86-64 Linux machines (scripts/dist.sh).
dist:
	scripts/dist.sh

# The performance figures of the README (release builds; run on a quiet machine).
bench: setup model
	bench/run-all.sh
