"""Write-behind of RedisJSON documents: a sync KeysReader queues each change in a stream, an
async StreamReader hands batches to the connector. Our own code; no rgsync at run time.

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
- one ``JSON.GET`` (None when the key is gone) and one ``XADD`` per write, instead of
  ``EXISTS`` + ``JSON.GET`` + ``RENAME``/``DEL`` attempts and per-record uuid/ack
  bookkeeping, which JSON write-behind never uses. (Queuing only the key and reading the
  documents in the StreamReader was faster still, but on RedisGears 1.2.13 it left entries
  undelivered at the end of a burst: bench/README.md, "lazy read");
- every event on a key counts (``EVENT_TYPES``): renames, COPY and RESTORE too, so Mongo
  follows them; a delete carries its event, so the sink can leave expiry and eviction out;
  ``change_of`` decides what one event queues;
- a key under the prefix that is not a JSON document is queued with JSON.GET's error, so the
  sink dead-letters it with the reason instead of the change vanishing;
- the original key stays in the record the connector sees;
- upgrading loses nothing. Stock rgsync unregisters both old readers inside RG.PYEXECUTE,
  so changes still in the old stream are never written, and a write made before the new
  KeysReader takes effect (after RG.PYEXECUTE returns) reaches no stream at all. Here both old
  readers stay: for a moment both KeysReaders queue each change. The new StreamReader's
  batches prove the new KeysReader live: they unregister the old one, and are held back
  (raising, so Gears retries them) until the old StreamReader has written this shard's old
  stream to the end. Every old change of a key is written before any new one; a change
  queued twice is written twice, with the same final state. On a cluster each shard hands
  over on its own; the idle old StreamReader is retired by `wbload deploy` once every
  shard's old stream is empty (`wait_for_predecessors`).
"""
import json
import time
import uuid
from contextlib import suppress

from common.registrations import note, predecessor_stream, take_over
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


def change_of(record):
    """``(op, document, error)`` one KeysReader event queues for its key (``record['key']``,
    ``record['event']``): ``(UPSERT, document, None)``, ``(DELETE, None, None)``, or
    ``(UPSERT, None, error)`` for a key that is not a JSON document (it is dead-lettered).

    Every event re-reads the key, so the change carries its state now: gone means delete.
    """
    try:
        document = execute('JSON.GET', record['key'])
    except Exception as e:  # e.g. WRONGTYPE: the sink dead-letters it, saying why
        return UPSERT, None, 'not a JSON document: %s' % e
    if document is None:
        return DELETE, None, None
    return UPSERT, document, None


def stream_name(table, stream_uuid):
    """The stream of one registration on this shard, named as rgsync names them."""
    return '_%s-stream-%s-{%s}' % (table, stream_uuid, hashtag())


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

        def append_change(record):
            if record.get('event') == 'keymiss':  # a read that missed: nothing changed
                return
            key = record['key']
            stream = stream_name(table, stream_uuid)  # per call: the executing shard's
            op, document, error = change_of(record)
            fields = ['_original_key', key, key_field, key[id_start:], '#', op]
            if error is not None:
                fields += ['_error', error]
            elif document is not None:
                fields += [dataKey, document]
            else:  # the event lets the sink leave expiry and eviction out
                fields += ['_event', record.get('event') or '']
            execute('XADD', stream, '*', *fields)

        def write_batch(records):
            if predecessors:
                wait_for_predecessors(name, predecessors, registered_at)
            connector.WriteData(records, dataKey)

        GB('KeysReader', desc=json.dumps({
            'name': '%s.KeysReader' % name,
            'version': version,
            'desc': 'add each changed key with prefix %s:* to Stream' % keysPrefix,
        })).foreach(append_change).register(
            mode='sync', prefix='%s:*' % keysPrefix, readValue=False, eventTypes=eventTypes)

        GB('StreamReader', desc=json.dumps({
            'name': '%s.StreamReader' % name,
            'version': version,
            'desc': 'read from stream and write to DB table %s' % table,
            'deadLetter': getattr(connector, 'dead_letter_stream', None),
        })).aggregate([], _append, _extend).foreach(write_batch).count().register(
            prefix='_%s-stream-%s-*' % (table, stream_uuid),
            mode='async_local', batch=batch, duration=duration,
            onFailedPolicy='retry', onFailedRetryInterval=onFailedRetryInterval)


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
            with suppress(Exception):  # already unregistered (e.g. by wbload after deploy)
                execute('RG.UNREGISTER', predecessor['id'])
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
