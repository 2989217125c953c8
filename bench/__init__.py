"""wbload's performance bench (issue 6): `python -m bench --help`, bench/README.md.

Self-contained: it needs only the project's own dependencies (redis, pymongo, wbload); it
loads the test bench's server helpers from tests/ by file, and only when it starts its own
servers.
"""
