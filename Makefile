# The two commands of the README: `make demo` and `make test`.
MODEL := .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
CARGO ?= cargo

.PHONY: demo test setup model

setup:
	@scripts/setup.sh

model:
	@scripts/fetch-test-model.sh >/dev/null

# Builds ggviz, fetches the demo model and inspects it.
demo: setup model
	$(CARGO) build --release
	./target/release/ggviz inspect $(MODEL)

# Everything CI runs: formatting, lints, every test, docs.
test: setup model
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets
	$(CARGO) test --doc
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps
