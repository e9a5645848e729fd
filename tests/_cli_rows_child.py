"""Runs ``mrclient ARGV`` for each command line read from stdin (a JSON list of lists), in this one process.

Prints one JSON object per command line: its exit status and what it wrote on
stderr. A bad value must end the command while its options are read (exit 2),
so one process serves every row instead of one interpreter start per row; a
command line that does not exit there runs its command, and the test sees it.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from mrclient.cli import main

for argv in json.load(sys.stdin):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            status = main(argv)
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else 1
    print(json.dumps({"status": status, "stderr": stderr.getvalue()}), flush=True)
