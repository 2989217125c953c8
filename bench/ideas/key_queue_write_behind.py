"""IDEA (bench only, issue 14): rgsync's model, but the stream holds only WHICH key changed.

A drop-in for recipes/common/json_write_behind.py (same class name and arguments), built into
a copy of recipes/ by ``python -m bench.ideas.key_queue OUTDIR``. Runs inside RedisGears'
embedded Python 3.7.

- sync KeysReader ``<name>.KeysReader``: one ``XADD <stream> * k <key>`` per change, nothing
  read. A ``keymiss`` event (a client, or this StreamReader, read a key that does not exist)
  is no change and queues nothing. (With eventTypes None Gears fires the KeysReader on
  keymiss too: reading the documents of a batch in the StreamReader, where the KeysReader's
  own re-entrancy guard does not apply, would re-queue every deleted key forever; and in
  today's recipe an application's read of a missing key deletes the Mongo document.)
- async StreamReader ``<name>.StreamReader``, registered with trimStream=False: per batch,
  the keys in stream order, one ``JSON.MGET`` of the distinct ones (gone -> delete, not JSON
  -> dead letter), the sink's ``WriteData``; then ``XTRIM MINID`` just past the last entry
  of the batch, so only entries this reader has written are ever removed (Gears' own
  ``XTRIM MAXLEN <its count>`` would remove unread ones whenever its count ran low).
- watchdog: a key ``wbload:tick:<name>:{shard}`` that expires every second; its
  ``expired`` event runs an async_local KeysReader that re-arms it and, when the stream
  holds entries Gears has not delivered, no batch is in flight and Gears' delivery point
  has not moved since the previous tick, XADDs an empty ``k`` entry: that XADD's
  notification is what makes Gears' StreamReader run, so a change waits at most ~2 s for
  a later write even if Gears' count of pending entries were wrong. (Async: a sync handler
  re-creating the key inside its own expiry, when a command on that key found it expired,
  crashed Redis 7.0.15 with ``db.c:191 'de != NULL'``.)
- upgrades: as today (common/registrations.take_over + wait_for_predecessors): the old
  version's stream is written to the end before this version writes anything.
"""
import json
import uuid
from contextlib import suppress

from common.registrations import take_over
from redisgears import executeCommand as execute
from redisgears import getMyHashTag as hashtag
from rgsync import RGJSONWriteBehind
from rgsync.common import CreateGetStreamNameCallback, WriteBehindLog

GEARS_GROUP = '__gears_consumer_group__'
TICK_MS = 1000


class JSONWriteBehind(RGJSONWriteBehind):
    """Register KeysReader / StreamReader / watchdog for ``<keysPrefix>:*`` -> ``connector``."""

    def __init__(self, GB, keysPrefix, connector, name, version=None,
                 onFailedRetryInterval=5, batch=100, duration=100,
                 eventTypes=None, dataKey='redisgears'):
        self.connector = connector
        self.mappings = {'sync_data': dataKey}
        stream_uuid = str(uuid.uuid4())
        self.GetStreamName = CreateGetStreamNameCallback(stream_uuid)
        predecessors = take_over(name, version)

        table = connector.TableName()
        get_stream_name = self.GetStreamName
        key_field = connector.PrimaryKey()
        id_start = len(keysPrefix) + 1
        tick_prefix = 'wbload:tick:%s:' % name

        def queue_change(record):
            if record.get('event') == 'keymiss':
                return
            execute('XADD', get_stream_name(table), '*', 'k', record['key'])

        def write_batch(records):
            wait_for_predecessors(predecessors)
            stream = records[-1]['key'] if records else None
            changes = _read_changes(records, key_field, id_start, dataKey)
            if changes:
                connector.WriteData(changes, dataKey)
            if stream is not None:
                execute('XTRIM', stream, 'MINID', _next_id(records[-1]['id']))
            _arm_tick(tick_prefix)

        def tick(record):
            state_key = record['key']
            stream = get_stream_name(table)
            _arm_tick(tick_prefix)
            last = _kick_if_stuck(stream, execute('GET', state_key + ':seen'))
            execute('SET', state_key + ':seen', last or '')

        GB('KeysReader', desc=json.dumps({
            'name': '%s.KeysReader' % name,
            'version': version,
            'desc': 'add each changed key with prefix %s:* to Stream' % keysPrefix,
        })).foreach(queue_change).register(
            mode='sync', prefix='%s:*' % keysPrefix, readValue=False, eventTypes=eventTypes)

        GB('StreamReader', desc=json.dumps({
            'name': '%s.StreamReader' % name,
            'version': version,
            'desc': 'read from stream and write to DB table %s' % table,
            'deadLetter': getattr(connector, 'dead_letter_stream', None),
        })).aggregate([], _append, _extend).foreach(write_batch).count().register(
            prefix='_%s-stream-%s-*' % (table, stream_uuid),
            mode='async_local', batch=batch, duration=duration, trimStream=False,
            onFailedPolicy='retry', onFailedRetryInterval=onFailedRetryInterval)

        GB('KeysReader', desc=json.dumps({
            'name': '%s.Watchdog' % name,
            'version': version,
            'desc': 'wake the StreamReader if changes wait undelivered',
        })).foreach(tick).register(
            mode='async_local', prefix=tick_prefix + '*', readValue=False,
            eventTypes=['expired'])
        # Armed by the first batch on each shard (hashtag() is the executing shard's).


def _arm_tick(tick_prefix):
    execute('SET', '%s{%s}' % (tick_prefix, hashtag()), '1', 'PX', str(TICK_MS), 'NX')


def _kick_if_stuck(stream, seen):
    """XADD an empty entry when entries wait undelivered, no batch is in flight (nothing
    delivered unacknowledged) and Gears' delivery point has not moved since the last tick;
    the delivery point now (or None: no stream/group yet)."""
    try:
        groups = execute('XINFO', 'GROUPS', stream)
    except Exception:  # no stream yet
        return None
    for group in groups:
        info = dict(zip(group[::2], group[1::2]))
        if info.get('name') != GEARS_GROUP:
            continue
        last = info.get('last-delivered-id')
        if int(info.get('pending') or 0):
            return last  # a batch is running or failed (Gears retries it): not stuck
        undelivered = execute('XRANGE', stream, '(' + last, '+', 'COUNT', '1')
        if undelivered and last == seen:
            WriteBehindLog('changes waited undelivered in %s: waking the StreamReader' % stream)
            execute('XADD', stream, '*', 'k', '')
        return last
    return None


def _read_changes(records, key_field, id_start, dataKey):
    """The batch as the sink's records: each key's document as it is now (one JSON.MGET)."""
    keys = []
    for record in records:
        key = record['value'].get('k')
        if key and key not in keys:
            keys.append(key)
    if not keys:
        return []
    current = dict(zip(keys, execute('JSON.MGET', *(keys + ['.']))))
    changes = []
    for record in records:
        key = record['value'].get('k')
        if not key:
            continue  # a watchdog wake-up
        value = {'_original_key': key, key_field: key[id_start:], '#': '='}
        document = current.get(key)
        if document is not None:
            value[dataKey] = document
        else:
            kind = execute('TYPE', key)
            if kind == 'none':
                value['#'] = '~'
            else:  # there, but not JSON: the sink dead-letters it with the reason
                value['_error'] = 'not a JSON document (type %s)' % kind
        changes.append({'key': record['key'], 'id': record['id'], 'value': value})
    return changes


def _next_id(entry_id):
    """The smallest stream id after `entry_id` (XTRIM MINID keeps ids >= it)."""
    ms, _, seq = entry_id.partition('-')
    return '%s-%d' % (ms, int(seq or 0) + 1)


def wait_for_predecessors(predecessors):
    """As recipes/common/json_write_behind.py: retire the older version's KeysReader, wait
    (raising: Gears retries) until its stream is written to the end, then retire its reader."""
    while predecessors:
        predecessor = predecessors[0]
        if predecessor['stream'] is None:
            with suppress(Exception):
                execute('RG.UNREGISTER', predecessor['id'])
            predecessors.pop(0)
            continue
        waiting = execute('XLEN', predecessor['stream'])
        if waiting:
            raise Exception('waiting for version %s to write its last %d change(s) first'
                            % (predecessor['version'], waiting))
        with suppress(Exception):
            execute('RG.UNREGISTER', predecessor['id'])
        execute('DEL', predecessor['stream'])
        WriteBehindLog('version %s drained and unregistered' % predecessor['version'])
        predecessors.pop(0)


def _append(records, record):
    return records + [record]


def _extend(records, more):
    return records + more
