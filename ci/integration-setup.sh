#!/usr/bin/env bash
# Install and start what tests/integration needs, on loopback only.
#   * Debian packages: redis-server (the tests start their own redis-server
#     processes on free ports), postgresql, curl.
#   * PostgreSQL: a throw-away cluster owned by the 'postgres' user in
#     $BOUCLE_IT_DIR/pg, listening on 127.0.0.1:${BOUCLE_PG_PORT:-45432},
#     trust auth, database 'postgres'.  Tests read BOUCLE_PG_DSN (default
#     postgresql://postgres@127.0.0.1:45432/postgres).
#   * Python packages: pip install -r tests/integration/requirements.txt for
#     each interpreter given as an argument (e.g. the ones .ci/run tests).
# Idempotent: re-running it with everything up does nothing but check.
# Usage: ci/integration-setup.sh [python ...]      (as root, or with sudo rights)
set -euo pipefail
cd "$(dirname "$0")/.."

IT_DIR=${BOUCLE_IT_DIR:-/tmp/boucle-integration}
PG_PORT=${BOUCLE_PG_PORT:-45432}
export DEBIAN_FRONTEND=noninteractive

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
    echo "integration-setup: apt-get install ${need[*]}"
    # Do not let package scripts start system services (we start our own).
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_added=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# --- PostgreSQL ----------------------------------------------------------
PG_BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
PG_DATA=$IT_DIR/pg/data
PG_SOCK=$IT_DIR/pg/sock
PG_USER=postgres
id "$PG_USER" >/dev/null 2>&1 || useradd --system --home-dir "$IT_DIR/pg" "$PG_USER"
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}
mkdir -p "$IT_DIR/pg" "$PG_SOCK"
chmod 755 "$IT_DIR"
[ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$IT_DIR/pg"
if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    echo "integration-setup: postgres already up on 127.0.0.1:$PG_PORT"
else
    if [ ! -s "$PG_DATA/PG_VERSION" ]; then
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$IT_DIR/pg/log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCK -c fsync=off -c max_connections=100" >/dev/null
    echo "integration-setup: postgres started on 127.0.0.1:$PG_PORT (data $PG_DATA)"
fi

# --- Python packages ------------------------------------------------------
for py in "$@"; do
    echo "integration-setup: pip install for $py"
    "$py" -m pip install -q --disable-pip-version-check -r tests/integration/requirements.txt
done
echo "integration-setup: ok (redis-server $(redis-server --version | awk '{print $3}'), BOUCLE_PG_DSN=postgresql://postgres@127.0.0.1:$PG_PORT/postgres)"
