.PHONY: setup demo test lint bench clean

# Everything a fresh machine needs (venvs, models, test recordings, trained dialogue model).
setup:
	./scripts/setup.sh

# Set up, then run the main job on its embedded default: a sample caller through the whole pipeline.
demo: setup
	.venv/bin/voicebot simulate

lint:
	.venv/bin/ruff check voicebot dialogue telephony voices tests bench scripts
	.venv/bin/mypy voicebot dialogue telephony voices

# The one test command (CI runs it after `make demo`).
test: lint
	.venv/bin/python -m pytest -q

bench:
	.venv/bin/python bench/pipeline.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
