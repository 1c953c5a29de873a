# boucle - the two commands of README.md, and what CI runs.
#
#   make demo            install boucle (+ uvloop) in .venv and race the loops
#   make test            build with -Werror, run the whole test suite on $(PYTHON),
#                        real-software integration tests included (ci/integration-setup.sh
#                        installs redis-server and PostgreSQL from Debian's packages when
#                        run as root, and starts them on loopback)
#   make test-io-uring   the same suite with every loop on the io_uring backend
#                        (BOUCLE_BACKEND=io_uring)
#   make test-asan       the suite (integration tests aside) against an ASan+UBSan build,
#                        in asyncio debug mode (-X dev)
#   make test-refleaks   the core suite and the reference-leak tests on a debug CPython
#                        (python3.11d; see ci/refleaks.sh)
#
# PYTHON picks the interpreter (any CPython >= 3.10 with headers).

PYTHON ?= python3
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV ?= .venv-$(PYVER)
VPY := $(VENV)/bin/python
PIP_QUIET ?= -q
WERROR := -Werror
TEST_DEPS := pytest trio

.PHONY: demo test test-io-uring test-asan build venv clean

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install $(PIP_QUIET) --upgrade pip setuptools wheel

venv: $(VPY)

# build/ goes first: setuptools reuses an object file newer than its source
# whatever flags built it, so a sanitizer build after a plain one (or the
# other way round) would silently link the other build's objects.
build: $(VPY)
	rm -rf build
	BOUCLE_CFLAGS="$(WERROR) $(EXTRA_CFLAGS)" BOUCLE_LDFLAGS="$(EXTRA_LDFLAGS)" \
	    $(VPY) -m pip install $(PIP_QUIET) --no-build-isolation --force-reinstall --no-deps .
	$(VPY) -m pip install $(PIP_QUIET) $(TEST_DEPS)

demo: build
	$(VPY) -m pip install $(PIP_QUIET) uvloop
	cd bench && ../$(VPY) micro.py --quick

test: build
	$(VPY) -m pip install $(PIP_QUIET) -r tests/integration/requirements.txt
	bash ci/integration-setup.sh
	$(VPY) -m pytest -q -p no:cacheprovider tests

IO_URING_TESTS ?= tests
test-io-uring: build
	$(VPY) -m pip install $(PIP_QUIET) -r tests/integration/requirements.txt
	bash ci/integration-setup.sh
	BOUCLE_BACKEND=io_uring $(VPY) -m pytest -q -p no:cacheprovider $(IO_URING_TESTS)

ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)

test-asan:
	$(MAKE) build VENV=.venv-asan-$(PYVER) \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined"
	@so=$$(ls .venv-asan-$(PYVER)/lib/python*/site-packages/boucle/_core*.so) && \
	    nm -D "$$so" | grep -q __asan_report && nm -D "$$so" | grep -q __ubsan_handle || \
	    { echo "test-asan: $$so is not instrumented"; exit 1; }
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    PYTHONMALLOC=malloc BOUCLE_SANITIZER=1 \
	    .venv-asan-$(PYVER)/bin/python -X dev -m pytest -q -p no:cacheprovider tests \
	    --ignore=tests/integration

# make test-refleaks: boucle built against a debug CPython (Debian's python3.11-dbg,
# `python3.11d`: sys.gettotalrefcount, extension suffix .cpython-311d-*.so) in its
# own venv, the core suite run on it, then tests/test_leaks.py printing the total
# reference count after warm-up and after every window of rounds of each core
# operation.  ci/refleaks.sh installs the Debian packages first and runs this.
REFLEAKS_PYTHON ?= python3.11d
REFLEAKS_VENV ?= .venv-refleaks
REFLEAKS_PY := $(REFLEAKS_VENV)/bin/python
REFLEAKS_CORE ?= tests --ignore=tests/integration --ignore=tests/cpython --ignore=tests/test_leaks.py
# Reference-side ([asyncio]) tests of behaviour that Debian's 3.11.2 asyncio predates
# (pause_reading on datagram/pipe transports, pausing in connection_made): the
# interpreter's own loop fails them there; their [boucle] halves still run.
REFLEAKS_DESELECT ?= \
    tests/test_datagram.py::test_transport_types_and_extra_info[asyncio] \
    tests/test_datagram.py::test_pause_and_resume_reading[asyncio] \
    tests/test_datagram.py::test_pause_then_resume_drops_the_read_event_already_polled[asyncio] \
    tests/test_datagram.py::test_connection_made_order_and_pause_in_connection_made[asyncio] \
    tests/test_datagram.py::test_debug_mode_logs_pause_and_resume[asyncio] \
    tests/test_pipes.py::test_read_pipe_pause_resume[asyncio] \
    tests/test_streams_transport.py::test_pause_reading_in_connection_made[asyncio]

.PHONY: test-refleaks

$(REFLEAKS_PY):
	$(REFLEAKS_PYTHON) -m venv $(REFLEAKS_VENV)
	$(REFLEAKS_PY) -m pip install $(PIP_QUIET) --upgrade pip setuptools wheel

test-refleaks: $(REFLEAKS_PY)
	@$(REFLEAKS_PY) -c 'import sys; sys.exit(0 if hasattr(sys, "gettotalrefcount") else \
	    "$(REFLEAKS_PYTHON) is not a debug build (no sys.gettotalrefcount)")'
	BOUCLE_CFLAGS="$(WERROR)" \
	    $(REFLEAKS_PY) -m pip install $(PIP_QUIET) --no-build-isolation --force-reinstall --no-deps .
	$(REFLEAKS_PY) -m pip install $(PIP_QUIET) $(TEST_DEPS)
	@cd tests && ../$(REFLEAKS_PY) -c 'import boucle._core as c, sys; \
	    print("test-refleaks: %s, %s" % (c.__file__, sys.version.split()[0])); \
	    sys.exit(0 if "d-" in c.__file__.rsplit(".cpython-", 1)[-1] else "not the debug build")'
	$(REFLEAKS_PY) -m pytest -q -p no:cacheprovider $(REFLEAKS_CORE) \
	    $(addprefix --deselect ,$(REFLEAKS_DESELECT))
	BOUCLE_LEAK_REPORT=1 $(REFLEAKS_PY) -m pytest -q -s -p no:cacheprovider tests/test_leaks.py

clean:
	rm -rf build .venv-* src/*.egg-info src/boucle/*.so
