"""A RedisGears 1.2 stand-in for tests: a RESP proxy in front of a real Redis that runs
Gears recipes (rgsync included) in its own Python 3.7 environment.  See README.md."""
