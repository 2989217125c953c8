"""rgsync's RGJSONWriteBehind with the whole key id, a cheaper synchronous step and an
upgrade that loses nothing.

Runs inside RedisGears' embedded Python 3.7; wbload inlines it into recipes that import it.

It keeps RGJSONWriteBehind's model: a sync KeysReader named ``<name>.KeysReader`` appends
each change to a stream, an async StreamReader named ``<name>.StreamReader`` hands batches to
the connector's ``WriteData``; an equal or newer registered version is refused with rgsync's
own message. It differs where stock rgsync is wrong or slow:
- the key field's value is everything after ``<prefix>:`` (stock keeps only up to the next
  ``:``, so ``MovieEntity:tt:99`` became ``tt``);
- one ``JSON.GET`` (None when the key is gone) and one ``XADD`` per write, instead of
  ``EXISTS`` + ``JSON.GET`` + ``RENAME``/``DEL`` attempts and per-record uuid/ack
  bookkeeping, which JSON write-behind never uses. (Queuing only the key and reading the
  documents in the StreamReader was faster still, but on RedisGears 1.2.13 it left entries
  undelivered at the end of a burst: bench/README.md, "lazy read");
- every event on a key counts (eventTypes None): renames, COPY and RESTORE too, so Mongo
  follows them; a delete carries its event, so the sink can leave expiry and eviction out;
- a key under the prefix that is not a JSON document is queued with JSON.GET's error, so the
  sink dead-letters it with the reason instead of the change vanishing;
- the original key stays in the record the connector sees;
- upgrading loses nothing. Stock rgsync unregisters both old readers inside RG.PYEXECUTE,
  so changes still in the old stream are never written, and a write made before the new
  KeysReader takes effect (after RG.PYEXECUTE returns) reaches no stream at all. Here both old
  readers stay: for a moment both KeysReaders queue each change. The new StreamReader's first
  batch proves the new KeysReader live: it unregisters the old one, then holds its own
  batches back (raising, so Gears retries them) until the old StreamReader has written its
  stream to the end, and unregisters that too. Every old change of a key is written before
  any new one; a change queued twice is written twice, with the same final state.
"""
import json
import uuid
from contextlib import suppress

from common.registrations import take_over
from redisgears import executeCommand as execute
from rgsync import RGJSONWriteBehind
from rgsync.common import CreateGetStreamNameCallback, WriteBehindLog


class JSONWriteBehind(RGJSONWriteBehind):
    """Register the KeysReader/StreamReader pair for ``<keysPrefix>:*`` -> ``connector``."""

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

        def append_change(record):
            if record.get('event') == 'keymiss':  # a read that missed: nothing changed
                return
            key = record['key']
            stream = get_stream_name(table)  # per call: the hashtag is the executing shard's
            try:
                document = execute('JSON.GET', key)
            except Exception as e:  # not a JSON document: the sink dead-letters it, saying why
                execute('XADD', stream, '*', '_original_key', key,
                        key_field, key[id_start:], '#', '=', '_error',
                        'not a JSON document: %s' % e)
                return
            if document is None:  # the event lets the sink ignore expiry and eviction
                execute('XADD', stream, '*', '_original_key', key,
                        key_field, key[id_start:], '#', '~', '_event', record.get('event') or '')
            else:
                execute('XADD', stream, '*', '_original_key', key,
                        key_field, key[id_start:], '#', '=', dataKey, document)

        def write_batch(records):
            wait_for_predecessors(predecessors)
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


def wait_for_predecessors(predecessors):
    """Retire the older version: unregister its KeysReader (this batch exists, so the new one
    is live), then raise (Gears retries the batch later) while its stream still has changes
    to write; unregister its StreamReader once the stream is empty."""
    while predecessors:
        predecessor = predecessors[0]
        if predecessor['stream'] is None:  # an older KeysReader
            with suppress(Exception):  # already unregistered (e.g. by wbload after deploy)
                execute('RG.UNREGISTER', predecessor['id'])
            predecessors.pop(0)
            continue
        waiting = execute('XLEN', predecessor['stream'])
        if waiting:
            raise Exception('waiting for version %s to write its last %d change(s) first'
                            % (predecessor['version'], waiting))
        with suppress(Exception):  # already unregistered (e.g. by wbload after the drain)
            execute('RG.UNREGISTER', predecessor['id'])
        execute('DEL', predecessor['stream'])
        WriteBehindLog('version %s drained and unregistered' % predecessor['version'])
        predecessors.pop(0)


# New lists, never in place: the aggregate's zero value is shared between executions.
def _append(records, record):
    return records + [record]


def _extend(records, more):
    return records + more
