"""Write-behind of RedisJSON documents: a sync KeysReader queues which key changed in a stream,
an async StreamReader reads the documents of a batch once and hands them to the connector.
Our own code; no rgsync at run time.

Runs inside RedisGears' embedded Python 3.7; wbload inlines it into recipes that import it.

It keeps rgsync's RGJSONWriteBehind model and the names a server shows, so stock rgsync
deployments are recognised and upgraded from: a sync KeysReader whose desc names it
``<name>.KeysReader`` appends each change to the stream ``_<table>-stream-<uuid>-{<hashtag>}``,
an async StreamReader ``<name>.StreamReader`` hands batches to the connector's ``WriteData``;
an equal or newer registered version is refused with rgsync's own message. It does not need
rgsync's package, whose requirement brings pymongo 4.1.1 (Gears may reinstall it over the
recipe's pin when Redis restarts). Where it differs from stock rgsync:
- the key field's value is everything after ``<prefix>:`` (stock keeps only up to the next
  ``:``, so ``MovieEntity:tt:99`` became ``tt``);
- the KeysReader reads no document (only the key's TTL): one ``XADD <stream> * k <key>``
  per change (~100 bytes a queued change instead of the whole document). The StreamReader
  reads the batch's distinct keys with one ``JSON.MGET`` (on a cluster too: a batch's keys
  are all on the shard that reads it, and Gears lets that shard read across slots), so
  each change is written with the key's state when it is written: Mongo's copy only moves
  forward and ends at Redis' final state (bench/README.md, "Issue 14");
- every event on a key counts (``EVENT_TYPES``): renames, COPY and RESTORE too, so Mongo
  follows them; a read that missed (``keymiss``, which Gears also delivers) is no change.
  An expiry or eviction is queued with its event (and remembered per shard until written,
  for a change whose key expired before it was written), so the sink can leave them out;
  a change of a key Redis may remove on its own (it has a TTL, or Redis evicts any key)
  carries a copy of the document, so its last state still reaches Mongo if the key is gone
  before the change is written;
  ``change_of`` decides what one event queues, ``operation_of`` what a key's changes write;
- a key under the prefix that is not a JSON document is written as an error, so the sink
  dead-letters it with the reason instead of the change vanishing;
- the original key stays in the record the connector sees;
- nothing unread is ever trimmed, and no change waits for a later write: the StreamReader is
  registered with ``trimStream=False`` and trims only what it wrote (``XTRIM MINID``), and a
  batch that leaves entries behind adds an empty wake-up entry, whose notification makes
  Gears run it again even if its count of pending entries had fallen short (Gears decides
  to stop only when a batch is done: bench/README.md, "Gears' pending count");
- upgrading loses nothing. Stock rgsync unregisters both old readers inside RG.PYEXECUTE,
  so changes still in the old stream are never written, and a write made before the new
  KeysReader takes effect (after RG.PYEXECUTE returns) reaches no stream at all. Here both old
  readers stay: for a moment both KeysReaders queue each change. The new StreamReader's
  batches prove the new KeysReader live: they unregister the old one, and are held back
  (raising, so Gears retries them) until the old StreamReader has written this shard's old
  stream to the end (an older version's stream holds whole documents; its own reader
  writes them). Every old change of a key is written before any new one (on a cluster once
  the old KeysReader is retired; until then, whenever the old stream is empty both readers
  write, each a change's state at or after it, so both end on the key's final state); a
  change queued twice is written twice, with the same final state. On a cluster each
  shard hands over on its own; the idle old StreamReader is retired by `wbload deploy` once
  every shard's old stream is empty (`wait_for_predecessors`).
"""
import json
import time
import uuid

from common.registrations import note, predecessor_stream, take_over
from redisgears import atomicCtx
from redisgears import executeCommand as execute
from redisgears import getMyHashTag as hashtag

# None: every keyspace event of a key under the prefix triggers the KeysReader.
EVENT_TYPES = None

# On a cluster, how long after registering the new version its batches retire the older
# KeysReader, when wbload has not done it already (it does once every shard lists the new
# pair): RedisGears gives up on a registration after 30 s, so by then every shard has applied
# it or none has. On one node a batch of the new version proves its KeysReader live.
CLUSTER_HANDOVER_GRACE_S = 35.0

# What a queued change says in its '#' field (the connector reads the same letters).
UPSERT, DELETE = '=', '~'
# The fields of a queued change: the key, the event of an expiry or eviction, and a copy of
# the document when Redis may remove the key on its own before the change is written.
KEY, EVENT, SNAPSHOT = 'k', 'e', 'd'
# How long the KeysReader trusts what it last read of Redis' eviction settings.
EVICTION_CHECK_S = 1.0
# Not a change: a read of a missing key.
READ_EVENTS = frozenset(['keymiss'])
# Redis' housekeeping, not the application's: the sink may leave these deletes out.
HOUSEKEEPING_EVENTS = frozenset(['expired', 'evicted'])


def change_of(record):
    """The fields one KeysReader event (``record['key']``, ``record['event']``) queues for
    its key, or None when it is no change."""
    event = record.get('event')
    if event in READ_EVENTS:
        return None
    if event in HOUSEKEEPING_EVENTS:
        return [KEY, record['key'], EVENT, event]
    return [KEY, record['key']]


def operation_of(document, error, kind):
    """``(op, error)`` a key's changes write, from its state now: ``(UPSERT, None)`` with its
    JSON ``document``, ``(DELETE, None)`` when it is gone (``TYPE`` ``kind`` none), or
    ``(UPSERT, error)`` for a key that is not a JSON document (the sink dead-letters it)."""
    if error is not None:
        return UPSERT, error
    if document is not None:
        return UPSERT, None
    if kind == 'none':
        return DELETE, None
    return UPSERT, 'not a JSON document (the key holds a %s)' % kind


def stream_name(table, stream_uuid):
    """The stream of one registration on this shard, named as rgsync names them."""
    return '_%s-stream-%s-{%s}' % (table, stream_uuid, hashtag())


def housekeeping_name(name):
    """This shard's hash: key -> the stream id of its last queued expiry or eviction."""
    return 'wbload:expired:%s{%s}' % (name, hashtag())


class JSONWriteBehind(object):
    """Register the KeysReader/StreamReader pair for ``<keysPrefix>:*`` -> ``connector``."""

    def __init__(self, GB, keysPrefix, connector, name, version=None,
                 onFailedRetryInterval=5, batch=100, duration=100,
                 eventTypes=EVENT_TYPES, dataKey='redisgears'):
        stream_uuid = str(uuid.uuid4())
        predecessors = take_over(name, version)
        registered_at = time.time()

        table = connector.TableName()
        key_field = connector.PrimaryKey()
        id_start = len(keysPrefix) + 1

        # A copy is worth it only where Mongo keeps what Redis removes on its own.
        keep_documents = not getattr(connector, 'delete_on_expiry', False)

        def queue_change(record):
            fields = change_of(record)
            if fields is None:
                return
            if keep_documents and EVENT not in fields and may_vanish(record['key']):
                fields += snapshot_of(record['key'])
            # Per call: the executing shard's stream (and hash).
            entry_id = execute('XADD', stream_name(table, stream_uuid), '*', *fields)
            if EVENT in fields:
                execute('HSET', housekeeping_name(name), record['key'], entry_id)

        def write_batch(records):
            if predecessors:
                wait_for_predecessors(name, predecessors, registered_at)
            if not records:
                return
            stream = records[-1]['key']
            changes = read_changes(records, name, key_field, id_start, dataKey)
            if changes:
                connector.WriteData(changes, dataKey)
            forget_housekeeping(records, name)
            execute('XTRIM', stream, 'MINID', next_id(records[-1]['id']))
            if execute('XLEN', stream):
                execute('XADD', stream, '*', KEY, '')  # a wake-up: see the docstring

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


def read_changes(records, name, key_field, id_start, dataKey):
    """The batch as the connector's records, one per key (its last entry): each key's state
    now (``operation_of``)."""
    last = {}  # key -> its last record in the batch, keys in the order of their last change
    snapshots = {}  # key -> the document its last change (not an expiry) copied, if any
    for record in records:
        key = record['value'].get(KEY)
        if key:  # an empty one is a wake-up
            last.pop(key, None)
            last[key] = record
            if not record['value'].get(EVENT):
                snapshots[key] = record['value'].get(SNAPSHOT)
    if not last:
        return []
    # One view of the keys: an async step releases Redis between commands, so a key read as
    # gone could otherwise be re-created (or expire again) before its TYPE or marker is read.
    with atomicCtx():
        documents = read_documents(list(last))
        keys = [key for key in last if key in documents]  # the others moved to another shard
        gone = [key for key in keys if documents[key] == (None, None)]
        expired = (dict(zip(gone, execute('HMGET', housekeeping_name(name), *gone)))
                   if gone else {})
        kinds = dict((key, execute('TYPE', key)) for key in gone)
    changes = []
    for key in keys:
        record = last[key]
        document, error = documents[key]
        op, error = operation_of(document, error, kinds.get(key))
        value = {'_original_key': key, key_field: key[id_start:], '#': op}
        if error is not None:
            value['_error'] = error
        elif op == UPSERT:
            value[dataKey] = document
        else:  # the event lets the sink leave expiry and eviction out
            value['_event'] = removal_event(record, expired.get(key))
            if value['_event'] in HOUSEKEEPING_EVENTS and snapshots.get(key) is not None:
                # Redis removed it before its last change was written: write that change
                # from the copy first (the sink keeps or drops the removal after it).
                kept = dict(value, **{'#': UPSERT, dataKey: snapshots[key]})
                del kept['_event']
                changes.append({'key': record['key'], 'id': record['id'], 'value': kept})
        changes.append({'key': record['key'], 'id': record['id'], 'value': value})
    return changes


def may_vanish(key):
    """Whether Redis may remove `key` on its own (a TTL, or eviction of any key) before its
    change is written: then the change carries a copy of the document."""
    return evicts_any_key() or execute('PTTL', key) > 0


_eviction = {'checked': 0.0, 'any_key': False}  # per shard, refreshed every EVICTION_CHECK_S


def evicts_any_key():
    """Whether this Redis may evict keys without a TTL (maxmemory with an allkeys policy)."""
    now = time.time()
    if now - _eviction['checked'] >= EVICTION_CHECK_S:
        policy = execute('CONFIG', 'GET', 'maxmemory-policy')[1]
        limit = execute('CONFIG', 'GET', 'maxmemory')[1]
        _eviction['any_key'] = policy.startswith('allkeys') and int(limit) > 0
        _eviction['checked'] = now
    return _eviction['any_key']


def snapshot_of(key):
    """The fields that copy `key`'s JSON document (none for a key that is not JSON: its
    change is then dead-lettered, saying what it holds)."""
    try:
        document = execute('JSON.GET', key)
    except Exception:
        return []
    return [SNAPSHOT, document] if document is not None else []


def read_documents(keys):
    """key -> (its JSON document or None, an error or None); a key whose slot this shard no
    longer owns (resharding moved it: its new shard queues it on arrival) is left out."""
    try:
        return dict((key, (document, None))
                    for key, document in zip(keys, execute('JSON.MGET', *(keys + ['.']))))
    except Exception:  # one key's error fails them all: one by one, to say which
        pass
    documents = {}
    for key in keys:
        try:
            documents[key] = (execute('JSON.GET', key), None)
        except Exception as e:  # e.g. WRONGTYPE: the sink dead-letters it, saying why
            if 'not permitted' not in str(e):
                documents[key] = (None, 'not a JSON document: %s' % e)
    return documents


def removal_event(record, expired_id):
    """What removed a key that is gone: the record's own expiry or eviction, or one queued
    after it (the key expired before this change was written), else '' (the application)."""
    event = record['value'].get(EVENT)
    if event:
        return event
    if expired_id and id_key(expired_id) > id_key(record['id']):
        return 'expired'
    return ''


def forget_housekeeping(records, name):
    """Drop the batch's expiries and evictions from the shard's hash (unless a later one of
    the same key replaced them)."""
    ids = dict((r['value'].get(KEY), r['id']) for r in records if r['value'].get(EVENT))
    if not ids:
        return
    keys = list(ids)
    marker = housekeeping_name(name)
    with atomicCtx():  # an expiry between HMGET and HDEL must keep its newer marker
        for key, seen in zip(keys, execute('HMGET', marker, *keys)):
            if seen == ids[key]:
                execute('HDEL', marker, key)


def id_key(entry_id):
    ms, _, seq = entry_id.partition('-')
    return int(ms), int(seq or 0)


def next_id(entry_id):
    """The smallest stream id after `entry_id` (XTRIM MINID keeps ids >= it)."""
    ms, seq = id_key(entry_id)
    return '%d-%d' % (ms, seq + 1)


def wait_for_predecessors(name, predecessors, registered_at):
    """Hand over from the older version, on the shard this batch runs on.

    Its KeysReader is unregistered: this batch proves the new KeysReader live here; on a
    cluster (where unregistering is cluster-wide) only CLUSTER_HANDOVER_GRACE_S after the
    registration, so that every other shard has applied it first (each applies it when it
    receives it). Until then both KeysReaders queue each change, which costs a duplicate. Until its
    stream on this shard is empty, raise (Gears retries the batch later): every old change of
    a key is written before any new one. The older StreamReader itself is left registered,
    idle: on a cluster other shards may still be draining theirs, and unregistering is
    cluster-wide; `wbload deploy` retires it once every shard's stream is empty.
    """
    keys_readers = [p for p in predecessors if 'pattern' not in p]
    if keys_readers and (not in_cluster()
                         or time.time() - registered_at >= CLUSTER_HANDOVER_GRACE_S):
        for predecessor in keys_readers:
            try:
                execute('RG.UNREGISTER', predecessor['id'])
            except Exception as e:  # already unregistered (e.g. by wbload) is fine; else
                if 'not registered' not in str(e):  # raise: Gears retries the batch
                    raise
            note(name, 'version %s no longer queues changes' % predecessor['version'])
            predecessors.remove(predecessor)
        keys_readers = []
    for predecessor in [p for p in predecessors if 'pattern' in p]:  # StreamReaders
        waiting = execute('XLEN', predecessor_stream(predecessor))
        if waiting:
            raise Exception('waiting for version %s to write its last %d change(s) first'
                            % (predecessor['version'], waiting))
        if not keys_readers:  # nothing queues into it any more: empty for good here
            note(name, 'version %s wrote its last change on this shard'
                 % predecessor['version'])
            predecessors.remove(predecessor)


def in_cluster():
    """Whether this shard's RedisGears runs in cluster mode (it answers `no cluster mode`
    on a single node)."""
    return isinstance(execute('RG.INFOCLUSTER'), list)


# New lists, never in place: the aggregate's zero value is shared between executions.
def _append(records, record):
    return records + [record]


def _extend(records, more):
    return records + more
