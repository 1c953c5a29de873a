#!/usr/bin/env bash
# Soak (issue #5): 10,000 connections echoing through a boucle server for
# 60 s, every byte checked, the server's RSS flat after the warm-up (see
# bench/README.md, "Soak"). Exit status 0 only if all of that held.
# Usage: ci/soak.sh PYTHON [soak.py options...]
#   PYTHON: the interpreter (a venv's python) to run the server, the clients
#   and the conductor with; boucle is built in place for it if it cannot be
#   imported from src/ yet.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:?usage: ci/soak.sh PYTHON [soak.py options...]}"
shift
if ! PYTHONPATH=src "$py" -c 'import boucle._core' 2>/dev/null; then
    echo "soak: building boucle in place for $py"
    "$py" setup.py build_ext --inplace -q
fi
start=$(date +%s)
status=0
"$py" bench/soak.py --duration 60 "$@" || status=$?
echo "soak: took $(( $(date +%s) - start ))s, exit status $status"
exit $status
