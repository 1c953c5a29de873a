#!/usr/bin/env bash
# Bounded fuzz run for CI (issue #5): about 75 s of wall time in all.
#
#   1. get atheris (already importable, or its wheel from PyPI into a
#      temporary directory; no wheel, no compiler needed: the step is skipped);
#   2. build boucle with AddressSanitizer + UndefinedBehaviorSanitizer into
#      the temporary directory (the source tree's in-place build is left
#      alone).  With atheris, the extension is compiled with -fsanitize but
#      not linked to gcc's libasan, and the clang ASan+libFuzzer runtime that
#      the atheris wheel ships (asan_with_fuzzer.so) is preloaded: libFuzzer
#      then keeps its coverage hooks, which gcc's preloaded libasan would take
#      over.  Without atheris, the build links gcc's libasan/libubsan and
#      those are preloaded, as `make test-asan` does;
#   3. replay the committed inputs (fuzz/corpus/: seeds and regressions),
#      on boucle and on asyncio's own loop (--diff);
#   4. random mode, fixed seed, time-boxed;
#   5. random mode with --diff under -X dev (asyncio debug mode, both loops);
#   6. atheris, coverage-guided from the corpus, time-boxed.
# Any crash, sanitizer report, invariant violation or hang (loop-time
# deadline per input, faulthandler watchdog, and `timeout` around each step)
# makes the script exit non-zero; the failing input is printed in hex.
#
# Usage: ci/fuzz.sh PYTHON            (a CPython >= 3.10 with its headers)
# Knobs: BOUCLE_FUZZ_SECONDS (random-mode budget, default 20; --diff gets
#        half, atheris half), BOUCLE_FUZZ_SEED (default 1),
#        BOUCLE_FUZZ_ATHERIS=0 to do without atheris.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${1:?usage: ci/fuzz.sh PYTHON}
SECS=${BOUCLE_FUZZ_SECONDS:-20}
SEED=${BOUCLE_FUZZ_SEED:-1}
START=$(date +%s)
WORK=$(mktemp -d /tmp/boucle-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
H=fuzz/fuzz_loop.py
CRASH="$WORK/crashes"
SAN_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g"

build() {   # build CFLAGS LDFLAGS: boucle (package + extension) into $WORK/lib
    BOUCLE_CFLAGS="-Werror $1" BOUCLE_LDFLAGS="$2" \
        "$PY" setup.py -q build -j "$(nproc)" -b "$WORK/build" --build-lib "$WORK/lib" \
        >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; echo "fuzz.sh: build failed"; exit 1; }
    rm -rf "$WORK/build"
}

# -- 1. atheris ---------------------------------------------------------------
ATH_PATH=""
HAVE_ATHERIS=0
if [ "${BOUCLE_FUZZ_ATHERIS:-1}" != 0 ]; then
    if "$PY" -c 'import atheris' 2>/dev/null; then
        HAVE_ATHERIS=1
    # Wheels only (3.10 gets atheris 2.3.0, 3.11 3.0.0, 3.12+ the latest):
    # the sdist needs clang and a libFuzzer.
    elif "$PY" -m pip install -q --disable-pip-version-check --only-binary=:all: \
            --target "$WORK/atheris" atheris >/dev/null 2>&1; then
        ATH_PATH="$WORK/atheris"
        HAVE_ATHERIS=1
    else
        echo "fuzz.sh: atheris unavailable for $PY (no wheel): coverage-guided step skipped"
    fi
fi
ATH_RT=""
if [ "$HAVE_ATHERIS" = 1 ]; then
    ATH_RT=$(PYTHONPATH="$ATH_PATH" "$PY" -c 'import atheris, os
print(os.path.join(os.path.dirname(os.path.dirname(atheris.__file__)), "asan_with_fuzzer.so"))')
    [ -e "$ATH_RT" ] || ATH_RT=""
fi

# -- 2. the sanitizer build -------------------------------------------------------
ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
if [ -n "$ATH_RT" ]; then
    build "$SAN_CFLAGS" ""
    PRELOAD="$ATH_RT"
    echo "fuzz.sh: ASan+UBSan build, atheris's runtime ($(( $(date +%s) - START )) s)"
elif [ -e "$ASAN_LIB" ] && [ -e "$UBSAN_LIB" ]; then
    build "$SAN_CFLAGS" "-fsanitize=address,undefined"
    PRELOAD="$ASAN_LIB $UBSAN_LIB"
    echo "fuzz.sh: ASan+UBSan build, gcc's runtime ($(( $(date +%s) - START )) s)"
    # (atheris would get no coverage under gcc's runtime)
    HAVE_ATHERIS=0
else
    build "" ""
    PRELOAD=""
    echo "fuzz.sh: WARNING: no sanitizer runtime found, fuzzing an unsanitized build"
fi

run() {     # run LIMIT ARGS...: the harness under the sanitizers
    local limit=$1
    shift
    LD_PRELOAD="$PRELOAD" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    PYTHONMALLOC=malloc BOUCLE_SANITIZER=1 \
    PYTHONPATH="$WORK/lib${ATH_PATH:+:$ATH_PATH}" \
        timeout -k 10 "$limit" "$PY" "$@"
}

# -- 3-5. replay, random, random --diff ------------------------------------------
echo "fuzz.sh: replay fuzz/corpus (--diff)"
run 120 "$H" --replay fuzz/corpus --diff --crash-dir "$CRASH"
echo "fuzz.sh: random mode, seed $SEED, $SECS s"
run $((SECS + 60)) "$H" --seed "$SEED" --iterations 1000000 --max-time "$SECS" \
    --crash-dir "$CRASH"
echo "fuzz.sh: random mode against asyncio (--diff, -X dev), seed $((SEED + 1)), $((SECS / 2)) s"
run $((SECS + 60)) -X dev "$H" --diff --seed $((SEED + 1)) --iterations 1000000 \
    --max-time $((SECS / 2)) --crash-dir "$CRASH"

# -- 6. atheris --------------------------------------------------------------------
if [ "$HAVE_ATHERIS" = 1 ]; then
    echo "fuzz.sh: atheris (coverage-guided), $((SECS / 2)) s"
    mkdir -p "$WORK/corpus"
    cp fuzz/corpus/* "$WORK/corpus/"
    set +e
    run $((SECS + 90)) "$H" --atheris "$WORK/corpus" -max_len=512 -timeout=60 \
        -max_total_time=$((SECS / 2)) -seed="$SEED" -rss_limit_mb=4096 \
        -artifact_prefix="$WORK/" -print_final_stats=1 >"$WORK/atheris.log" 2>&1
    rc=$?
    set -e
    # libFuzzer's chatter stays in the log; its summary is shown.
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units' \
        "$WORK/atheris.log" || true
    if [ "$rc" != 0 ]; then
        tail -n 60 "$WORK/atheris.log"
        for f in "$WORK"/crash-* "$WORK"/timeout-* "$WORK"/oom-*; do
            [ -e "$f" ] && echo "fuzz.sh: failing input (hex) $(basename "$f"): $(
                "$PY" -c 'import sys; print(open(sys.argv[1], "rb").read().hex())' "$f")"
        done
        echo "fuzz.sh: atheris run failed (exit $rc)"
        exit 1
    fi
fi
echo "fuzz.sh: ok ($(( $(date +%s) - START )) s)"
