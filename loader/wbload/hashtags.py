"""The hash tags RedisGears puts into the names of the keys a shard's recipe code creates.

Gears' `hashtag()` answers, on each shard, a short tag that hashes to the lowest slot the
shard owns (`06S` for slot 0, `8M` for 5461, `63n` for 10923; `06S` on a single node), and
rgsync names each shard's stream `..-{<tag>}`. That tag is the first string, shortest first
and then in ASCII order over digits and letters, whose slot is that slot: knowing a shard's
lowest slot, the loader names the shard's keys exactly, with no SCAN of its keyspace.
"""

from __future__ import annotations

import functools
import itertools
import string
from collections.abc import Iterator

from redis.crc import key_slot

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _candidates() -> Iterator[str]:
    for length in itertools.count(1):
        for letters in itertools.product(_ALPHABET, repeat=length):
            yield "".join(letters)


@functools.cache
def gears_hashtag(slot: int) -> str:
    """The tag Gears' `hashtag()` gives on a shard whose lowest slot is `slot`."""
    if not 0 <= slot < 16384:
        raise ValueError(f"no slot {slot}")
    return next(tag for tag in _candidates() if key_slot(tag.encode()) == slot)


def tagged(name: str, slot: int) -> str:
    """`name` as a shard whose lowest slot is `slot` names it: `<name>{<tag>}`."""
    return f"{name}{{{gears_hashtag(slot)}}}"
