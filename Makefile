PYTHON ?= python3
MINUTES ?= 30

.PHONY: install test quickstart demo
install:
	PYTHON=$(PYTHON) bash scripts/install.sh --dev

test: install
	$(PYTHON) -m pytest -q tests

quickstart: install
	$(PYTHON) examples/quickstart.py --minutes $(MINUTES)

demo: quickstart
