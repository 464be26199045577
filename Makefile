# Two commands do all set-up: `make demo` and `make test` (see README.md).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench train-data clean
setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/bin/testbed demo

test: setup
	$(PY) -m pytest

bench: setup
	$(VENV)/bin/testbed bench

# The Debian photo wallpapers the shipped models were trained on (about 140 MB; not needed to run).
train-data:
	if [ "$$(id -u)" -eq 0 ]; then S=; else S=sudo; fi; $$S apt-get install -y -q --no-install-recommends mate-backgrounds plasma-workspace-wallpapers

clean:
	rm -rf runs build flowgraphs/build .pytest_cache
