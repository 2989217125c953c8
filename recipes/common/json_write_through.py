"""Write-through for RedisJSON documents: Mongo first, then Redis, with an acknowledgement.

Runs inside RedisGears' embedded Python 3.7; wbload inlines it into recipes that import it.

rgsync's RGJSONWriteThrough cannot work with JSON (it reads the real key with HGETALL and
merges the record's value, which Gears leaves empty for module types), so this keeps its
contract and does it for JSON. The client writes the document to ``<prefix>{<key>}``:

    JSON.SET __{MovieEntity:1} $ '{"#": "=<uuid>", "title": "..."}'    (upsert)
    JSON.SET __{MovieEntity:1} $ '{"#": "~<uuid>"}'                    (delete)

A sync KeysReader writes the change to Mongo while the client waits, then applies it to
``MovieEntity:1`` and removes the temporary key. With a uuid it adds to the stream
``{MovieEntity:1}<uuid>`` (kept an hour) ``status done``, or ``status failed error <why>``
when Mongo refused: then Redis is left as it was. ``#`` without a uuid (or no ``#``: upsert)
writes the same way without acknowledgement.
"""
import json

from common.registrations import take_over
from redisgears import executeCommand as execute

ACK_SECONDS = 3600


class JSONWriteThrough(object):
    """Register a sync KeysReader on ``<throughPrefix>{<keysPrefix>:...}`` keys."""

    def __init__(self, GB, keysPrefix, connector, name, version=None, throughPrefix='__'):
        take_over(name, version)
        id_start = len(keysPrefix) + 1

        def write_through(record):
            temp_key = record['key']
            text = execute('JSON.GET', temp_key)
            if text is None or '{' not in temp_key:
                return
            key = temp_key[temp_key.index('{') + 1:temp_key.rindex('}')]
            execute('DEL', temp_key)
            ack = None
            try:
                document = json.loads(text)
                if not isinstance(document, dict):
                    raise Exception('the document must be a JSON object')
                op = document.pop('#', '=') or '='
                ack = ('{%s}%s' % (key, op[1:])) if len(op) > 1 else None
                if not key.startswith(keysPrefix + ':') or op[0] not in '=~':
                    raise Exception('expected %s:<id> and an operation = or ~'
                                    % keysPrefix)
                if op[0] == '~':
                    connector.write_now(key[id_start:], None)
                    execute('DEL', key)
                else:
                    connector.write_now(key[id_start:], dict(document))
                    execute('JSON.SET', key, '$', json.dumps(document, ensure_ascii=False))
            except Exception as e:
                if ack:
                    execute('XADD', ack, '*', 'status', 'failed', 'error', str(e))
                    execute('EXPIRE', ack, ACK_SECONDS)
                raise
            if ack:
                execute('XADD', ack, '*', 'status', 'done')
                execute('EXPIRE', ack, ACK_SECONDS)

        GB('KeysReader', desc=json.dumps({
            'name': '%s.KeysReader' % name,
            'version': version,
            'kind': 'write-through',
            'desc': 'write each %s{%s:...} change to the database, then to Redis'
                    % (throughPrefix, keysPrefix),
        })).foreach(write_through).register(
            mode='sync', prefix='%s{%s:*' % (throughPrefix, keysPrefix), readValue=False,
            eventTypes=['json.set'])
