#!/usr/bin/env python3
"""boucle HTTP benchmark: bench/echo.py --only http.

(Not called http.py: a file of that name in bench/ would shadow the standard
library's http package for every script run from this directory.)

    python bench/http_bench.py [--quick] [--loops ...] [--http-tools loadgen,wrk] [--json FILE] ...

An httptools server on an asyncio.Protocol (bench/http_server.py) on asyncio,
uvloop and boucle, plus a C floor, driven by loadgen's HTTP mode (keep-alive,
Content-Length framing, body checked) and by wrk when it is installed.  Takes
every option of bench/echo.py; see bench/NETWORK.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo  # noqa: E402

if __name__ == "__main__":
    sys.exit(echo.main(["--only", "http"] + sys.argv[1:]))
