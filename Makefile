# Two commands do all set-up: `make demo` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench clean
setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/bin/testbed demo

test: setup
	$(PY) -m pytest

bench: setup
	$(VENV)/bin/testbed bench

clean:
	rm -rf runs build flowgraphs/build .pytest_cache
