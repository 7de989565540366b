# The two commands of the README. Each sets up its own environment (./.venv) first.
.PHONY: setup serve test lint lab bench

setup:
	@scripts/setup-env

serve: setup          ## the book as Voila apps on http://localhost:8866
	.venv/bin/eoslab serve

lab: setup            ## the book in JupyterLab
	.venv/bin/eoslab lab

lint: setup           ## ruff, with the rules chosen in pyproject.toml
	.venv/bin/ruff check eoslab tests benchmarks scripts

test: lint            ## lint, then the whole test suite (installs Chromium for the browser tests)
	scripts/install-browser
	.venv/bin/python -m pytest

bench: setup          ## every benchmark, each printing its ratio
	for b in benchmarks/bench_*.py; do .venv/bin/python $$b || exit 1; done
