#!/usr/bin/env bash
# Reference-leak check on a debug CPython: install Debian's debug interpreter
# (python3.11-dbg provides python3.11d, with sys.gettotalrefcount), its headers
# (python3.11-dev: /usr/include/python3.11d), venv support and the test package
# some tests import (libpython3.11-testsuite: test.test_asyncio), each only if
# missing, then run `make test-refleaks`.
# Usage: ci/refleaks.sh [make arguments...]     (as root, or with sudo rights)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

pkgs=(python3.11-dbg python3.11-dev python3.11-venv libpython3.11-testsuite)
need=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "refleaks: apt-get install ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

start=$(date +%s)
make test-refleaks "$@"
echo "refleaks: make test-refleaks took $(( $(date +%s) - start ))s"
