"""Run a client benchmark candidate once, with no timing: the process that
``client_instructions.sh`` counts under callgrind.

    python benchmarks/run_candidate.py benchmarks/client_session.py:run 1000 64 /small
"""

from __future__ import annotations

import sys

import uvloop
from client_rusage import load

if __name__ == "__main__":
    spec, n, concurrency, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    uvloop.run(load(spec)("http://127.0.0.1:18080" + path, n, concurrency))
