"""Version handover between registrations of the same name (RedisGears' Python 3.7).

Like rgsync's UnregisterOldVersions, but by exact name (rgsync matches substrings, so
`Movies` would unregister `MoviesWriteBehind`) and without unregistering anything at once.
Registrations made inside RG.PYEXECUTE take effect only after it returns, and RedisGears
serves other clients in between: a write there would reach neither an old KeysReader already
unregistered nor the new one not yet live. So the old KeysReader stays until the new one has
proven live, and the old StreamReader until it has written what its version queued.
"""
import json

from redisgears import executeCommand as execute
from redisgears import getMyHashTag as hashtag
from rgsync.common import WriteBehindLog
from rgsync.redis_gears_write_behind import CompareVersions, RegistrationArrToDict


def take_over(name, version):
    """`name`'s older registrations, to retire once the new version runs: KeysReaders
    (``{'id', 'version', 'stream': None}``) and StreamReaders with their stream, in that order.

    Raises, as rgsync does, when an equal or newer version is registered.
    """
    found = []
    for registration in execute('RG.DUMPREGISTRATIONS'):
        registration = RegistrationArrToDict(registration, 0)
        try:
            desc = json.loads(registration['desc'])
        except (TypeError, ValueError):
            continue
        reader = desc.get('name') if isinstance(desc, dict) else None
        if reader not in ('%s.KeysReader' % name, '%s.StreamReader' % name):
            continue
        if CompareVersions(version, desc.get('version')) <= 0:
            raise Exception('Found a version which is greater or equals current version, '
                            'aborting.')
        found.append((reader, registration, desc.get('version')))
    keys_readers, stream_readers = [], []
    for reader, registration, old_version in found:
        if reader.endswith('.KeysReader'):
            keys_readers.append({'id': registration['id'], 'version': old_version,
                                 'stream': None})
            continue
        args = registration['RegistrationData']['args']
        pattern = dict(zip(args[::2], args[1::2]))['stream']
        stream_readers.append({
            'id': registration['id'],
            'version': old_version,
            'stream': pattern[:-1] + '{%s}' % hashtag(),
        })
        WriteBehindLog('%s %s keeps draining %s' % (reader, old_version, pattern))
    return keys_readers + stream_readers
