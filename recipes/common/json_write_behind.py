"""rgsync's RGJSONWriteBehind with the whole key id and a cheaper synchronous step.

Runs inside RedisGears' embedded Python 3.7; wbload inlines it into recipes that import it.

It keeps RGJSONWriteBehind's model: a sync KeysReader named ``<name>.KeysReader`` appends
each change to a stream, an async StreamReader named ``<name>.StreamReader`` hands batches to
the connector's ``WriteData``, versions are compared and old ones unregistered by rgsync's own
code. It differs where stock rgsync is wrong or slow:
- the key field's value is everything after ``<prefix>:`` (stock keeps only up to the next
  ``:``, so ``MovieEntity:tt:99`` became ``tt``);
- one ``JSON.GET`` (None when the key is gone) instead of ``EXISTS`` + ``JSON.GET`` +
  ``RENAME``/``DEL`` attempts per write, and no per-record uuid/ack bookkeeping, which JSON
  write-behind never uses;
- expiry, eviction and renames count as changes, so Mongo follows them too;
- the original key stays in the record the connector sees.
"""
import json
import uuid

from redisgears import executeCommand as execute
from rgsync import RGJSONWriteBehind
from rgsync.common import CreateGetStreamNameCallback
from rgsync.redis_gears_write_behind import RGWriteBase

JSON_WRITE_EVENTS = [
    'json.set', 'json.del', 'json.merge', 'json.mset', 'json.clear', 'json.toggle',
    'json.numincrby', 'json.nummultby', 'json.strappend', 'json.arrinsert',
    'json.arrappend', 'json.arrtrim', 'json.arrpop', 'change',
    'del', 'expired', 'evicted', 'rename_from', 'rename_to',
]


class JSONWriteBehind(RGJSONWriteBehind):
    """Register the KeysReader/StreamReader pair for ``<keysPrefix>:*`` -> ``connector``."""

    def __init__(self, GB, keysPrefix, connector, name, version=None,
                 onFailedRetryInterval=5, batch=100, duration=100,
                 eventTypes=None, dataKey='redisgears'):
        stream_uuid = str(uuid.uuid4())
        self.GetStreamName = CreateGetStreamNameCallback(stream_uuid)
        # Unregisters older versions of `name`, refuses an equal or newer one.
        RGWriteBase.__init__(self, {'sync_data': dataKey}, connector, name, version)

        table = connector.TableName()
        get_stream_name = self.GetStreamName
        key_field = connector.PrimaryKey()
        id_start = len(keysPrefix) + 1

        def append_change(record):
            key = record['key']
            stream = get_stream_name(table)  # per call: the hashtag is the executing shard's
            document = execute('JSON.GET', key)
            if document is None:
                execute('XADD', stream, '*', '_original_key', key,
                        key_field, key[id_start:], '#', '~')
            else:
                execute('XADD', stream, '*', '_original_key', key,
                        key_field, key[id_start:], '#', '=', dataKey, document)

        def write_batch(records):
            connector.WriteData(records, dataKey)

        GB('KeysReader', desc=json.dumps({
            'name': '%s.KeysReader' % name,
            'version': version,
            'desc': 'add each changed key with prefix %s:* to Stream' % keysPrefix,
        })).foreach(append_change).register(
            mode='sync', prefix='%s:*' % keysPrefix, readValue=False,
            eventTypes=eventTypes or JSON_WRITE_EVENTS)

        GB('StreamReader', desc=json.dumps({
            'name': '%s.StreamReader' % name,
            'version': version,
            'desc': 'read from stream and write to DB table %s' % table,
        })).aggregate([], _append, _extend).foreach(write_batch).count().register(
            prefix='_%s-stream-%s-*' % (table, stream_uuid),
            mode='async_local', batch=batch, duration=duration,
            onFailedPolicy='retry', onFailedRetryInterval=onFailedRetryInterval)


# New lists, never in place: the aggregate's zero value is shared between executions.
def _append(records, record):
    return records + [record]


def _extend(records, more):
    return records + more
