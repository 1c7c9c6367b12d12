PYTHON ?= python3

.PHONY: install test demo
install:
	PYTHON=$(PYTHON) bash scripts/install.sh --dev

test: install
	$(PYTHON) -m pytest -q tests

demo: install
	bash examples/demo.sh
