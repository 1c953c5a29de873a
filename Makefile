# boucle - the two commands of README.md, and what CI runs.
#
#   make demo            install boucle (+ uvloop) in .venv and race the loops
#   make test            build with -Werror, run the whole test suite on $(PYTHON),
#                        real-software integration tests included (ci/integration-setup.sh
#                        installs redis-server and PostgreSQL from Debian's packages when
#                        run as root, and starts them on loopback)
#   make test-asan       the suite (integration tests aside) against an ASan+UBSan build,
#                        in asyncio debug mode (-X dev)
#
# PYTHON picks the interpreter (any CPython >= 3.10 with headers).

PYTHON ?= python3
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV ?= .venv-$(PYVER)
VPY := $(VENV)/bin/python
PIP_QUIET ?= -q
WERROR := -Werror
TEST_DEPS := pytest trio

.PHONY: demo test test-asan build venv clean

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install $(PIP_QUIET) --upgrade pip setuptools wheel

venv: $(VPY)

build: $(VPY)
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

ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)

test-asan:
	$(MAKE) build VENV=.venv-asan-$(PYVER) \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined"
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    PYTHONMALLOC=malloc BOUCLE_SANITIZER=1 \
	    .venv-asan-$(PYVER)/bin/python -X dev -m pytest -q -p no:cacheprovider tests \
	    --ignore=tests/integration

clean:
	rm -rf build .venv-* src/*.egg-info src/boucle/*.so
