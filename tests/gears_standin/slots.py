"""Redis Cluster slots and the hashtag RedisGears gives a shard (stdlib only)."""
import itertools
import string

ALNUM = string.digits + string.ascii_uppercase + string.ascii_lowercase


def crc16(data):
    """CRC16-CCITT (XMODEM), Redis Cluster's key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    if isinstance(key, str):
        key = key.encode("utf-8")
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % 16384


_TAGS = {}


def slot_hashtag(slot):
    """The shortest alphanumeric string hashing to `slot`, the first in ASCII order among
    equals: what Gears' hashtag() gives for a shard whose lowest slot is `slot` ('06S' for 0,
    '8M' for 5461, '63n' for 10923)."""
    tag = _TAGS.get(slot)
    if tag is None:
        for length in itertools.count(1):
            for chars in itertools.product(ALNUM, repeat=length):
                candidate = "".join(chars)
                if crc16(candidate.encode()) % 16384 == slot:
                    tag = candidate
                    break
            if tag is not None:
                break
        _TAGS[slot] = tag
    return tag
