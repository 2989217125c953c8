"""hashtag() per shard: the shortest alphanumeric string of the shard's lowest slot, the first in
ASCII order among equals (what the real cluster showed for slots 0, 5461 and 10923)."""

import itertools

import pytest
from redis.crc import key_slot as redis_key_slot

from gears_standin.slots import ALNUM, crc16, key_slot, slot_hashtag


@pytest.mark.parametrize("slot,tag", [(0, "06S"), (5461, "8M"), (10923, "63n")])
def test_hashtags_seen_on_the_real_cluster(slot, tag):
    assert slot_hashtag(slot) == tag


@pytest.mark.parametrize("slot", [1, 42, 4096, 8191, 12000, 16383])
def test_hashtag_is_a_shortest_string_of_its_slot(slot):
    tag = slot_hashtag(slot)
    assert redis_key_slot(f"k{{{tag}}}".encode()) == slot
    shorter = ("".join(c) for n in range(1, len(tag)) for c in itertools.product(ALNUM, repeat=n))
    assert all(crc16(s.encode()) % 16384 != slot for s in shorter)


@pytest.mark.parametrize("key", ["a", "rec:moved", "MovieEntity:1", "x{06S}y", "{}a", "{a}{b}"])
def test_key_slot_is_redis_cluster_s(key):
    assert key_slot(key) == redis_key_slot(key.encode())
