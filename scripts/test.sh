#!/usr/bin/env bash
# Installs MindGym with its test tools and runs the default (fast) test suite.
# This is the README's test command and what .ci/run calls, so the two never drift.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0 -e ".[dev]"
python3 -m pytest "$@"
