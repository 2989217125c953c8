"""Version handover between registrations of the same name (RedisGears' Python 3.7).

Recognises what rgsync registers as well as what we do: each reader's desc is JSON with
``name`` (``<NAME>.KeysReader`` / ``<NAME>.StreamReader``) and ``version``, so a stock rgsync
deployment of the same NAME is upgraded from like one of ours. Unlike rgsync, it matches the
name exactly (rgsync matches substrings, so `Movies` would unregister `MoviesWriteBehind`)
and unregisters nothing at once. Registrations made inside RG.PYEXECUTE take effect only
after it returns, and RedisGears serves other clients in between: a write there would reach
neither an old KeysReader already unregistered nor the new one not yet live. So the old
KeysReader stays until the new one has proven live, and the old StreamReader until it has
written what its version queued.
"""
import json

from redisgears import executeCommand as execute
from redisgears import getMyHashTag as hashtag
from redisgears import log

ALWAYS_NEWER = '99.99.99'  # rgsync's "newer than anything" version
REFUSAL = 'Found a version which is greater or equals current version, aborting.'


def take_over(name, version):
    """`name`'s older registrations, to retire once the new version runs: KeysReaders
    (``{'id', 'version'}``) and StreamReaders (``{'id', 'version', 'pattern'}``), in that
    order.

    Raises with rgsync's message when an equal or newer version is registered.
    """
    keys_readers, stream_readers = [], []
    for flat in execute('RG.DUMPREGISTRATIONS'):
        registration = pairs(flat)
        reader, old_version = reader_name_and_version(registration.get('desc'))
        if reader not in ('%s.KeysReader' % name, '%s.StreamReader' % name):
            continue
        if version_key(version) <= version_key(old_version):
            raise Exception(REFUSAL)
        if reader.endswith('.KeysReader'):
            keys_readers.append({'id': registration['id'], 'version': old_version})
            continue
        args = pairs(pairs(registration['RegistrationData'])['args'])
        # The pattern, not a stream name: this list is pickled to every shard, and each
        # shard's stream ends with that shard's hashtag (see predecessor_stream).
        stream_readers.append({
            'id': registration['id'],
            'version': old_version,
            'pattern': args['stream'],
        })
        note(name, '%s %s keeps draining %s' % (reader, old_version, args['stream']))
    return keys_readers + stream_readers


def predecessor_stream(predecessor):
    """An older StreamReader's stream on the shard this runs on."""
    return predecessor['pattern'][:-1] + '{%s}' % hashtag()


def pairs(flat):
    """``[k1, v1, k2, v2, ...]`` (a RESP2 map as Gears' execute returns it) -> dict."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[0::2], flat[1::2]))


def reader_name_and_version(desc):
    """(``name``, ``version``) of a registration desc in JSON, or (None, None)."""
    try:
        parsed = json.loads(desc)
    except (TypeError, ValueError):
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    return parsed.get('name'), parsed.get('version')


def version_key(version):
    """Sort key of a MAJOR.MINOR.PATCH version: none (or unreadable) lowest, 99.99.99
    highest, as rgsync orders them."""
    if version == ALWAYS_NEWER:
        return (1 << 30,)
    try:
        return tuple(int(part) for part in version.split('.'))
    except (AttributeError, ValueError):
        return (-1,)


def note(name, message):
    """A line in the Redis log, saying which write-behind it is about."""
    log('wbload %s: %s' % (name, message))
