"""`python -m bench.deploy_probe ARGS...`: run `wbload ARGS...`, counting the commands it sends.

Every command redis-py puts on the wire goes through its RESP serializer's `pack`; wrapping
that counts single commands and pipelined ones alike, client-side, whatever server it is.
The counts go to the file named by $BENCH_PROBE_OUT as JSON: {"exit": code, "commands":
{"RG.PYEXECUTE": n, ...}}.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import redis.connection

COUNTS: Counter[str] = Counter()


def _name(arg: object) -> str:
    if isinstance(arg, (bytes, bytearray, memoryview)):
        arg = bytes(arg).decode(errors="replace")
    return str(arg).upper()


def _counting(pack):  # type: ignore[no-untyped-def]
    def wrapped(self, *args):  # type: ignore[no-untyped-def]
        if args:
            COUNTS[_name(args[0])] += 1
        return pack(self, *args)
    return wrapped


def install() -> None:
    for name in ("PythonRespSerializer", "HiredisRespSerializer"):
        cls = getattr(redis.connection, name, None)
        if cls is not None and not getattr(cls.pack, "_bench_counting", False):
            cls.pack = _counting(cls.pack)
            cls.pack._bench_counting = True


def main(argv: list[str]) -> int:
    install()
    from wbload.cli import main as wbload_main

    try:
        code = wbload_main.main(argv, prog_name="wbload", standalone_mode=False)
        code = int(code or 0)
    except SystemExit as e:
        code = int(e.code or 0)
    out = os.environ.get("BENCH_PROBE_OUT")
    if out:
        with open(out, "w") as f:
            json.dump({"exit": code, "commands": dict(COUNTS)}, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
