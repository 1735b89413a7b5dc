# fusion-necks: the two commands a new user needs, and a few more.
#   make demo            install if needed, then train + evaluate the quickstart detector (~12 min)
#   make test            install if needed, then run the test suite (what CI runs)
PY    := .venv/bin/python
NECK  ?= fpn
RECIPE ?= fast
TASK  ?= det
# the test files run on one pytest-xdist worker per core (tests/conftest.py splits the
# threads between them); PYTEST_ARGS= runs them in one process
PYTEST_ARGS ?= -n auto --dist loadfile --durations=30

.PHONY: install demo demo-seg test data env clean help

help:
	@sed -n '1,4p' Makefile

install:
	@bash tools/install.sh

demo: install
	$(PY) tools/demo.py --task $(TASK) --neck $(NECK) --recipe $(RECIPE)

demo-seg: install
	$(PY) tools/demo.py --task seg --neck $(NECK)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

data: install
	$(PY) tools/dataset_converters/make_synthetic_coco.py data/synthetic_coco
	$(PY) tools/dataset_converters/make_synthetic_cityscapes.py data/synthetic_cityscapes

env:
	$(PY) -m fusion_necks.utils.env_check

clean:
	rm -rf work_dirs .pytest_cache
