"""Build script for boucle's C extension (boucle._core).

boucle's core talks to epoll and eventfd directly: it builds on Linux only.
Set BOUCLE_CFLAGS to add compiler flags (CI uses -Werror, the sanitizer build
adds -fsanitize=address,undefined).
"""
import glob
import os
import shlex
import sys

from setuptools import Extension, setup

if not sys.platform.startswith("linux"):
    raise SystemExit(
        "boucle needs Linux (epoll, eventfd); this platform is %r. "
        "Use asyncio or uvloop here." % sys.platform)

extra = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
         "-Wno-unused-parameter", "-fno-strict-aliasing"]
extra += shlex.split(os.environ.get("BOUCLE_CFLAGS", ""))
link = shlex.split(os.environ.get("BOUCLE_LDFLAGS", ""))

setup(
    ext_modules=[
        Extension(
            "boucle._core",
            sources=sorted(glob.glob("src/boucle/_core/*.c")),
            depends=sorted(glob.glob("src/boucle/_core/*.h")),
            extra_compile_args=extra,
            extra_link_args=link,
        )
    ],
)
