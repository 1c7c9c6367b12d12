PYTHON ?= python3
MINUTES ?= 30

.PHONY: install test quickstart demo benchmark benchmark-quick
install:
	PYTHON=$(PYTHON) bash scripts/install.sh --dev

test: install
	$(PYTHON) -m pytest -q -n auto --dist loadfile tests

quickstart: install
	$(PYTHON) examples/quickstart.py --minutes $(MINUTES)

demo: quickstart

benchmark: install
	$(PYTHON) -m benchmarks

benchmark-quick: install
	$(PYTHON) -m benchmarks --quick
