# The two commands of the README: `make demo` and `make test`.
MODEL := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
CARGO ?= cargo

.PHONY: demo test bench setup model

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

# Everything CI runs: formatting, lints, every test, docs.
test: setup model
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets
	$(CARGO) test --doc
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

# The performance figures of the README (release builds; run on a quiet machine).
bench: setup model
	bench/run-all.sh
