"""MongoDB sink for rgsync write-behind: one Redis JSON document -> one Mongo document.

Runs inside RedisGears' embedded Python 3.7. wbload inlines this file into every recipe that
imports it (Gears executes a single text), so it must stay Python 3.7 and import only what
the recipe's REQUIREMENTS install.

Unlike rgsync's stock MongoConnector, it
- parses the document with ``json.loads`` (no quote rewriting), so apostrophes, quotes,
  unicode, nesting, big integers, booleans and nulls arrive as ``JSON.GET`` returned them;
- replaces the whole document (fields removed in Redis disappear in Mongo) and deletes it
  when the key is gone;
- keeps one lazily created ``MongoClient`` per registration (never pickled);
- writes a batch as one ordered bulk write, collapsing repeated changes of a key to the
  last one; transient failures raise so Gears retries the batch;
- can take its URL from the Redis server's environment (``env:VAR``) or from a Redis key
  (``redis:KEY``, to protect with an ACL) when it connects, so no password needs to be in
  the recipe text or in the registration Gears pickles into RDB/AOF and replicas;
- moves a change Mongo rejects for good (bad field name, too large, duplicate on a unique
  index, not a JSON object...) to a dead-letter stream, with the reason, instead of
  stalling every later write.
"""
import json
import os
import time

from redisgears import executeCommand as execute
from redisgears import log

OP_FIELD = '#'
OP_UPSERT = '='
OP_DELETE = '~'
ORIGINAL_KEY_FIELD = '_original_key'

# Per-document write errors that a retry can fix (the server was busy, stepping down or
# shutting down). Any other write error is about the document itself: it is dead-lettered.
_TRANSIENT_WRITE_ERRORS = frozenset([
    6, 7, 89, 9001,          # HostUnreachable, HostNotFound, NetworkTimeout, SocketException
    24, 46, 112,             # LockTimeout, LockBusy, WriteConflict
    50, 262,                 # MaxTimeMSExpired, ExceededTimeLimit
    64, 91, 133, 189,        # WriteConcernFailed, ShutdownInProgress, ..., PrimarySteppedDown
    10107, 13435, 13436,     # NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary
    11600, 11601, 11602,     # InterruptedAtShutdown, Interrupted, InterruptedDueToReplStateChange
])


def mask_url(url):
    """The URL with the password replaced by ****, for logs and errors."""
    scheme, sep, rest = url.partition('://')
    if not sep or '@' not in rest:
        return url
    credentials, _, host = rest.rpartition('@')
    user, has_password, _ = credentials.partition(':')
    return '%s://%s%s@%s' % (scheme, user, ':****' if has_password else '', host)


class RejectedChange(Exception):
    """A change Mongo will never accept as it is; it goes to the dead-letter stream."""


class MongoSink(object):
    """rgsync connector object mirroring Redis JSON documents into a Mongo collection.

    ``url`` is a MongoDB URL, or where to read one when connecting: ``env:VAR`` (the Redis
    server's environment) or ``redis:KEY`` (a string key).
    """

    def __init__(self, url, database, collection, key_field, dead_letter_stream=None,
                 timeout_ms=5000):
        self.url = url
        self.database = database
        self.collection_name = collection
        self.key_field = key_field
        self.dead_letter_stream = dead_letter_stream
        self.timeout_ms = timeout_ms
        self._client = None

    def __repr__(self):
        return 'MongoSink(%s, %s.%s by %s)' % (
            mask_url(self.url), self.database, self.collection_name, self.key_field)

    def __getstate__(self):
        # Gears pickles registrations into RDB/AOF and replicas; a live client cannot be.
        state = dict(self.__dict__)
        state['_client'] = None
        return state

    # --- the connector interface rgsync calls -------------------------------------------
    def TableName(self):
        return self.collection_name

    def PrimaryKey(self):
        return self.key_field

    def WriteData(self, data, dataKey='redisgears'):
        """Write one StreamReader batch; raise on a transient failure so Gears retries it."""
        changes = []
        for record in data:
            try:
                changes.append(self._change(record['value'], dataKey))
            except RejectedChange as e:
                self._dead_letter(record['value'], dataKey, str(e))
        changes = _last_change_per_key(changes)
        if changes:
            self._bulk_write(changes, dataKey)

    def write_now(self, key_id, document):
        """Write one change at once (write-through): replace, or delete when `document` is
        None. Raises on any failure, permanent or not: the caller reports it to the client."""
        change = (key_id, OP_DELETE if document is None else OP_UPSERT, document, None)
        if document is not None:
            document[self.key_field] = key_id
        try:
            self._collection().bulk_write(self._requests([change])[1], ordered=True)
        except Exception as e:
            from pymongo.errors import ConnectionFailure
            if isinstance(e, ConnectionFailure):
                self._reconnect_next_time()
            details = getattr(e, 'details', None) or {}
            errors = details.get('writeErrors') if isinstance(details, dict) else None
            raise Exception(errors[0].get('errmsg') if errors else str(e))

    # --- internals ---------------------------------------------------------------------
    def mongo_url(self):
        """The URL to connect to, read from where ``url`` says."""
        if self.url.startswith('env:'):
            url = os.environ.get(self.url[4:])
            where = 'environment variable %s of the Redis server' % self.url[4:]
        elif self.url.startswith('redis:'):
            url = execute('GET', self.url[6:])
            where = 'Redis key %s' % self.url[6:]
        else:
            return self.url
        if not url:
            raise Exception('no MongoDB URL in the %s' % where)
        return url

    def _collection(self):
        if self._client is None:
            from pymongo import MongoClient
            self._client = MongoClient(
                self.mongo_url(),
                serverSelectionTimeoutMS=self.timeout_ms,
                connectTimeoutMS=self.timeout_ms,
                socketTimeoutMS=max(self.timeout_ms * 6, 30000),
            )
        return self._client[self.database][self.collection_name]

    def _change(self, value, dataKey):
        """(key id, op, document or None, stream value) for one stream entry."""
        key_id = value.get(self.key_field)
        op = value.get(OP_FIELD)
        if key_id is None or op not in (OP_UPSERT, OP_DELETE):
            raise RejectedChange('not a write-behind change (no %r or no operation)'
                                 % self.key_field)
        if op == OP_DELETE:
            return key_id, op, None, value
        if value.get('_error'):
            raise RejectedChange(value['_error'])
        text = value.get(dataKey)
        if text is None:
            raise RejectedChange('no document in the change')
        try:
            document = json.loads(text)
        except ValueError as e:
            raise RejectedChange('document is not valid JSON: %s' % e)
        if not isinstance(document, dict):
            raise RejectedChange('document is a JSON %s, not an object'
                                 % type(document).__name__)
        document[self.key_field] = key_id
        return key_id, op, document, value

    def _bulk_write(self, changes, dataKey):
        from bson.errors import InvalidDocument
        from pymongo.errors import BulkWriteError, ConnectionFailure
        while changes:
            changes, requests = self._requests(changes, dataKey)
            if not requests:
                return
            try:
                self._collection().bulk_write(requests, ordered=True)
                return
            except BulkWriteError as e:
                changes = self._after_write_error(e.details, changes, dataKey)
            except (InvalidDocument, OverflowError):
                changes = self._without_unencodable(changes, dataKey)
            except ConnectionFailure:
                self._reconnect_next_time()
                raise

    def _reconnect_next_time(self):
        """Drop the client so the next batch connects again (and re-reads its URL)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _requests(self, changes, dataKey=None):
        """(changes, requests) for a bulk write; with `dataKey`, a change pymongo refuses
        to turn into a request (e.g. a first field named $set) is dead-lettered."""
        from pymongo import DeleteOne, ReplaceOne
        from pymongo.common import validate_ok_for_replace
        kept, requests = [], []
        for change in changes:
            key_id, op, document, value = change
            try:
                if op == OP_DELETE:
                    request = DeleteOne({self.key_field: key_id})
                else:
                    # pymongo checks this only inside bulk_write, failing the whole batch.
                    validate_ok_for_replace(document)
                    request = ReplaceOne({self.key_field: key_id}, document, upsert=True)
            except (ValueError, TypeError) as e:
                if dataKey is None:
                    raise
                self._dead_letter(value, dataKey, 'Mongo cannot take the document: %s' % e)
                continue
            kept.append(change)
            requests.append(request)
        return kept, requests

    def _after_write_error(self, details, changes, dataKey):
        """Dead-letter the change an ordered bulk write stopped at; return those after it."""
        errors = details.get('writeErrors') or []
        if not errors or details.get('writeConcernErrors'):
            raise Exception('Mongo bulk write failed: %s' % _short(details))
        error = errors[0]
        if error.get('code') in _TRANSIENT_WRITE_ERRORS:
            raise Exception('Mongo write failed (will retry): %s' % error.get('errmsg'))
        index = error['index']
        self._dead_letter(changes[index][3], dataKey, 'Mongo rejected the write: %s (code %s)'
                          % (error.get('errmsg'), error.get('code')))
        return changes[index + 1:]

    def _without_unencodable(self, changes, dataKey):
        """Dead-letter the documents pymongo cannot encode (e.g. an int above 2**63)."""
        import bson
        kept = []
        for change in changes:
            document = change[2]
            try:
                if document is not None:
                    size = len(bson.encode(document))
                    if size > 16 * 1024 * 1024:
                        raise ValueError('document is %d bytes, over Mongo\'s 16 MiB' % size)
                kept.append(change)
            except Exception as e:
                self._dead_letter(change[3], dataKey, 'Mongo cannot store the document: %s' % e)
        if len(kept) == len(changes):
            raise Exception('Mongo refused to encode the batch but every document encodes')
        return kept

    def _dead_letter(self, value, dataKey, reason):
        key = value.get(ORIGINAL_KEY_FIELD) or value.get(self.key_field) or ''
        log('wbload: dead-lettered a change of %s: %s' % (key, reason), level='warning')
        if not self.dead_letter_stream:
            raise Exception('change of %s rejected and no dead-letter stream: %s'
                            % (key, reason))
        execute('XADD', self.dead_letter_stream, '*',
                'key', key,
                'id', value.get(self.key_field) or '',
                'op', value.get(OP_FIELD) or '',
                'document', value.get(dataKey) or '',
                'error', reason,
                'time', '%.3f' % time.time())


def _last_change_per_key(changes):
    """Keep only the last change of each key, in the order of those last changes.

    A replace or delete carries the key's whole state, so earlier ones in the same batch
    can be skipped without changing what Mongo ends with.
    """
    last = {}
    for position, change in enumerate(changes):
        last[change[0]] = position
    return [change for position, change in enumerate(changes) if last[change[0]] == position]


def _short(details):
    text = str(details)
    return text if len(text) <= 300 else text[:300] + '...'
