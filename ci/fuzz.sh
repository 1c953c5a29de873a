#!/usr/bin/env bash
# Bounded fuzz run for CI (issue #5): about 80 s of wall time in all.
#
#   1. build boucle with AddressSanitizer + UndefinedBehaviorSanitizer into a
#      temporary directory (the source tree's in-place build is left alone);
#   2. replay the committed regression inputs (fuzz/corpus/), on boucle and,
#      for comparison, on asyncio's own loop (--diff);
#   3. random mode, fixed seed, time-boxed, under the sanitizers;
#   4. the same with --diff (each input also on asyncio's loop, outcomes
#      compared) under -X dev (asyncio debug mode on both loops);
#   5. if atheris is importable (or installs from PyPI into the temporary
#      directory), a short coverage-guided run on a plain build (the
#      sanitizer runtimes, once preloaded, take over libFuzzer's coverage
#      hooks, so atheris gets no feedback under them).
# Any crash, sanitizer report, invariant violation or hang (loop-time
# deadline per input, faulthandler watchdog, and `timeout` around each step)
# makes the script exit non-zero; the failing input is printed in hex.
#
# Usage: ci/fuzz.sh PYTHON            (a CPython >= 3.10 with its headers)
# Knobs: BOUCLE_FUZZ_SECONDS (random-mode budget, default 25; the --diff step gets half),
#        BOUCLE_FUZZ_SEED (default 1), BOUCLE_FUZZ_ATHERIS=0 to skip step 5.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${1:?usage: ci/fuzz.sh PYTHON}
SECS=${BOUCLE_FUZZ_SECONDS:-25}
SEED=${BOUCLE_FUZZ_SEED:-1}
START=$(date +%s)
WORK=$(mktemp -d /tmp/boucle-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

build() {   # build DIR CFLAGS LDFLAGS: boucle (package + extension) into DIR/lib
    BOUCLE_CFLAGS="-Werror $2" BOUCLE_LDFLAGS="$3" \
        "$PY" setup.py -q build -j "$(nproc)" -b "$1/build" --build-lib "$1/lib" >"$1.log" 2>&1 \
        || { cat "$1.log"; echo "fuzz.sh: build failed"; exit 1; }
    rm -rf "$1/build"
}

ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
if [ -e "$ASAN_LIB" ] && [ -e "$UBSAN_LIB" ]; then
    build "$WORK/asan" "-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g" \
        "-fsanitize=address,undefined"
    run_san() {
        LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        PYTHONMALLOC=malloc BOUCLE_SANITIZER=1 PYTHONPATH="$WORK/asan/lib" \
            timeout -k 10 $((SECS + 60)) "$PY" "$@"
    }
    echo "fuzz.sh: ASan+UBSan build ready ($(( $(date +%s) - START )) s)"
else
    # No sanitizer runtimes (gcc's libasan/libubsan): still fuzz, unsanitized.
    build "$WORK/plain" "" ""
    run_san() { PYTHONPATH="$WORK/plain/lib" timeout -k 10 $((SECS + 60)) "$PY" "$@"; }
    echo "fuzz.sh: WARNING: libasan/libubsan not found, fuzzing an unsanitized build"
fi

H=fuzz/fuzz_loop.py
CRASH="$WORK/crashes"
echo "fuzz.sh: replay fuzz/corpus"
run_san "$H" --replay fuzz/corpus --diff --crash-dir "$CRASH"
echo "fuzz.sh: random mode, seed $SEED, ${SECS} s"
run_san "$H" --seed "$SEED" --iterations 1000000 --max-time "$SECS" --crash-dir "$CRASH"
echo "fuzz.sh: random mode against asyncio (--diff, -X dev), seed $((SEED + 1)), $((SECS / 2)) s"
run_san -X dev "$H" --diff --seed $((SEED + 1)) --iterations 1000000 \
    --max-time $((SECS / 2)) --crash-dir "$CRASH"

if [ "${BOUCLE_FUZZ_ATHERIS:-1}" != 0 ]; then
    ATH_PATH=""
    if ! "$PY" -c 'import atheris' 2>/dev/null; then
        # Wheels only (3.10 gets atheris 2.3.0, 3.11 3.0.0, 3.12+ the latest):
        # its sdist needs clang and a libFuzzer, which CI does not have.
        "$PY" -m pip install -q --disable-pip-version-check --only-binary=:all: --target "$WORK/atheris" atheris \
            >/dev/null 2>&1 && ATH_PATH="$WORK/atheris"
    fi
    if [ -n "$ATH_PATH" ] || "$PY" -c 'import atheris' 2>/dev/null; then
        build "$WORK/plain" "" ""
        echo "fuzz.sh: atheris (coverage-guided, plain build), 10 s"
        mkdir -p "$WORK/corpus"
        cp fuzz/corpus/* "$WORK/corpus/"
        set +e
        PYTHONPATH="$WORK/plain/lib${ATH_PATH:+:$ATH_PATH}" timeout -k 10 120 \
            "$PY" "$H" --atheris "$WORK/corpus" -max_len=512 -timeout=60 \
            -max_total_time=10 -seed="$SEED" -artifact_prefix="$WORK/" \
            -print_final_stats=1 >"$WORK/atheris.log" 2>&1
        rc=$?
        set -e
        # libFuzzer's chatter stays in the log; its summary is shown.
        grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units' "$WORK/atheris.log" || true
        if [ "$rc" != 0 ]; then
            tail -n 60 "$WORK/atheris.log"
            for f in "$WORK"/crash-* "$WORK"/timeout-* "$WORK"/oom-*; do
                [ -e "$f" ] && echo "fuzz.sh: failing input (hex) $(basename "$f"): $(
                    "$PY" -c 'import sys; print(open(sys.argv[1], "rb").read().hex())' "$f")"
            done
            echo "fuzz.sh: atheris run failed (exit $rc)"
            exit 1
        fi
    else
        echo "fuzz.sh: atheris unavailable for $PY, skipped"
    fi
fi
echo "fuzz.sh: ok ($(( $(date +%s) - START )) s)"
