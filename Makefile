# The two front-door commands (see README):
#   make bench   set up .venv if needed, then run the main job: gam-bench run suites/scaling.yaml
#   make test    set up .venv if needed, then lint (ruff), run the test suite on the CPU and build the docs
#   make docs    build the docs site into site/ (make docs-serve: serve it on localhost:8000)
.PHONY: bench test lint docs docs-serve

.venv/.installed-%: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $*
	touch $@

bench: .venv/.installed-base
	.venv/bin/gam-bench run suites/scaling.yaml

test: lint
	.venv/bin/python -m pytest -q
	.venv/bin/mkdocs build --strict --quiet

lint: .venv/.installed-test,ray,docs
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

docs: .venv/.installed-test,ray,docs
	.venv/bin/mkdocs build --strict

docs-serve: .venv/.installed-test,ray,docs
	.venv/bin/mkdocs serve
