# The two front-door commands (see README):
#   make bench   set up .venv if needed, then run the main job: gam-bench run suites/scaling.yaml
#   make test    set up .venv if needed, then lint (ruff) and run the test suite on the CPU
.PHONY: bench test lint

.venv/.installed-%: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $*
	touch $@

bench: .venv/.installed-base
	.venv/bin/gam-bench run suites/scaling.yaml

test: lint
	.venv/bin/python -m pytest -q

lint: .venv/.installed-test,ray
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
