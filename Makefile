.PHONY: setup serve demo test lint bench bench-queue clean

# Everything a fresh machine needs (venvs, models, test recordings, trained dialogue model).
setup:
	./scripts/setup.sh

# Set up, then run the main job on its embedded default: the hotline answers SIP calls on 127.0.0.1:5060
# (Rasa + action server + one SIP worker; `voicebot serve --workers 3` puts Kamailio in front). Ctrl-C stops it.
serve: setup
	.venv/bin/voicebot serve

# Set up, then play a sample caller through the whole pipeline without telephony (CI runs this).
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
	.venv/bin/python bench/dialogue.py
	.venv/bin/python bench/sip.py
	.venv/bin/python bench/agent_queue.py

# 10 callers queued for 3 agents over SIP, and the console's latency meanwhile (README, Bench).
bench-queue:
	.venv/bin/python bench/agent_queue.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
