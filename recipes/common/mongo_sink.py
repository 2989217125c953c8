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
- creates a unique index on the key field when it connects (idempotent): no write is a
  collection scan, no two documents share a key; a collection with duplicates is refused in
  one line with the fix, and the batch waits (nothing is lost);
- writes a batch as one unordered bulk write after collapsing repeated changes of a key to
  the last one (order between keys no longer matters), with write concern ``majority``
  unless the URL sets ``w=``/``journal=``; transient failures raise so Gears retries the batch;
- ignores deletes caused by expiry or eviction (Redis' housekeeping, not the app's) unless
  ``delete_on_expiry``;
- can take its URL from the Redis server's environment (``env:VAR``) or from a Redis key
  (``redis:KEY``, to protect with an ACL) when it connects, so no password needs to be in
  the recipe text or in the registration Gears pickles into RDB/AOF and replicas;
- moves a change Mongo rejects for good (bad field name, too large, duplicate on a unique
  index, not a JSON object...) to a dead-letter stream, with the reason, instead of
  stalling every later write. Dead letters are written only once the batch's bulk write
  succeeded, so a batch Gears retries does not dead-letter the same change again; the
  stream is trimmed to about ``dead_letter_maxlen`` entries, the number trimmed counted in
  ``<stream>:trimmed``.
"""
import json
import os
import time

from redisgears import executeCommand as execute
from redisgears import getMyHashTag as hashtag
from redisgears import log

OP_FIELD = '#'
OP_UPSERT = '='
OP_DELETE = '~'
ORIGINAL_KEY_FIELD = '_original_key'
EVENT_FIELD = '_event'
HOUSEKEEPING_EVENTS = frozenset(['expired', 'evicted'])
# Not a change at all: a read of a missing key (RedisGears' KeysReader sees those too).
READ_EVENTS = frozenset(['keymiss'])
TRIMMED_SUFFIX = ':trimmed'
_DUPLICATE_KEY = 11000
_INDEX_CONFLICTS = frozenset([85, 86])  # IndexOptionsConflict, IndexKeySpecsConflict

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
                 timeout_ms=5000, socket_timeout_ms=None, delete_on_expiry=False,
                 dead_letter_maxlen=100000):
        self.url = url
        self.database = database
        self.collection_name = collection
        self.key_field = key_field
        self.dead_letter_stream = dead_letter_stream
        self.timeout_ms = timeout_ms
        # Write-behind: a big batch may take longer than connecting; write-through passes
        # its own small value, since Redis is blocked while it waits.
        self.socket_timeout_ms = socket_timeout_ms or max(timeout_ms * 6, 30000)
        self.delete_on_expiry = delete_on_expiry
        self.dead_letter_maxlen = dead_letter_maxlen
        self._client = None
        self._indexed = False

    def __repr__(self):
        return 'MongoSink(%s, %s.%s by %s)' % (
            mask_url(self.url), self.database, self.collection_name, self.key_field)

    def __getstate__(self):
        # Gears pickles registrations into RDB/AOF and replicas; a live client cannot be.
        state = dict(self.__dict__)
        state['_client'] = None
        state['_indexed'] = False
        return state

    # --- the connector interface rgsync calls -------------------------------------------
    def TableName(self):
        return self.collection_name

    def PrimaryKey(self):
        return self.key_field

    def WriteData(self, data, dataKey='redisgears'):
        """Write one StreamReader batch; raise on a transient failure so Gears retries it.

        Dead letters are written after the bulk write succeeded: a batch that raises (and is
        retried) has dead-lettered nothing yet.
        """
        changes, letters = [], []
        for record in data:
            try:
                change = self._change(record['value'], dataKey)
            except RejectedChange as e:
                letters.append((record['value'], str(e)))
                continue
            if change is not None:
                changes.append(change)
        changes = _last_change_per_key(changes)
        if changes:
            self._bulk_write(changes, dataKey, letters)
        if letters:
            self._dead_letter(letters, dataKey)

    def write_now(self, key_id, document):
        """Write one change at once (write-through): replace, or delete when `document` is
        None. Raises on any failure, permanent or not: the caller reports it to the client."""
        change = (key_id, OP_DELETE if document is None else OP_UPSERT, document, None)
        if document is not None:
            document[self.key_field] = key_id
        try:
            collection = self._collection()
            self._ensure_index(collection)
            collection.bulk_write(self._requests([change])[1], ordered=True)
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
            key = self.url[6:]
            try:
                url = execute('GET', key)
            except Exception as e:
                if 'not permitted' not in str(e):
                    raise
                # another shard's key: wbload deploy keeps a copy per shard
                key = '%s{%s}' % (key, hashtag())
                url = execute('GET', key)
            where = 'Redis key %s' % key
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
                socketTimeoutMS=self.socket_timeout_ms,
            )
            self._indexed = False
        database = self._client[self.database]
        return database.get_collection(self.collection_name,
                                       write_concern=self._write_concern(self._client))

    def _write_concern(self, client):
        """``majority`` (an acknowledged write survives a failover), unless the URL chose."""
        from pymongo.write_concern import WriteConcern
        chosen = client.write_concern.document
        if 'w' in chosen or 'j' in chosen:
            return client.write_concern
        # Half the socket timeout: Mongo's own "not acknowledged by a majority in time"
        # (transient: the batch is retried) arrives before the socket gives up.
        wtimeout = chosen.get('wtimeout', self.socket_timeout_ms // 2)
        return WriteConcern('majority', wtimeout=wtimeout)

    def _ensure_index(self, collection):
        """Create the unique index on the key field once per connection (idempotent)."""
        if self._indexed:
            return
        from pymongo.errors import OperationFailure
        try:
            collection.create_index([(self.key_field, 1)], unique=True)
        except OperationFailure as e:
            duplicate = None if e.code in _INDEX_CONFLICTS else self._a_duplicate(collection)
            raise Exception(_index_refused(self.collection_name, self.key_field, e, duplicate))
        self._indexed = True

    def _a_duplicate(self, collection):
        """A key value two documents share, or None (only asked once the index was refused)."""
        try:
            found = list(collection.aggregate([
                {'$group': {'_id': '$' + self.key_field, 'n': {'$sum': 1}}},
                {'$match': {'n': {'$gt': 1}}},
                {'$limit': 1},
            ]))
        except Exception:  # the refusal itself is reported; this only adds an example
            return None
        return found[0]['_id'] if found else None

    def _change(self, value, dataKey):
        """(key id, op, document or None, stream value) for one stream entry; None for a
        change Mongo does not follow (an expiry or eviction)."""
        key_id = value.get(self.key_field)
        op = value.get(OP_FIELD)
        if key_id is None or op not in (OP_UPSERT, OP_DELETE):
            raise RejectedChange('not a write-behind change (no %r or no operation)'
                                 % self.key_field)
        if op == OP_DELETE:
            event = value.get(EVENT_FIELD)
            if event in READ_EVENTS:
                return None
            if event in HOUSEKEEPING_EVENTS and not self.delete_on_expiry:
                return None  # Redis dropped its copy; the system of record keeps the document
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

    def _bulk_write(self, changes, dataKey, letters):
        """One unordered bulk write of `changes`; adds the rejected ones to `letters`."""
        from bson.errors import InvalidDocument
        from pymongo.errors import BulkWriteError, ConnectionFailure
        while changes:
            changes, requests = self._requests(changes, letters)
            if not requests:
                return
            try:
                collection = self._collection()
                self._ensure_index(collection)
                collection.bulk_write(requests, ordered=False)
                return
            except BulkWriteError as e:
                self._after_write_errors(e.details, changes, letters)
                return
            except (InvalidDocument, OverflowError):
                changes = self._without_unencodable(changes, letters)
            except ConnectionFailure:
                self._reconnect_next_time()
                raise

    def _reconnect_next_time(self):
        """Drop the client so the next batch connects again (and re-reads its URL)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _requests(self, changes, letters=None):
        """(changes, requests) for a bulk write; with `letters`, a change pymongo refuses
        to turn into a request (e.g. a first field named $set) goes there."""
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
                if letters is None:
                    raise
                letters.append((value, 'Mongo cannot take the document: %s' % e))
                continue
            kept.append(change)
            requests.append(request)
        return kept, requests

    def _after_write_errors(self, details, changes, letters):
        """Every write error of an unordered bulk write, in one pass: raise (Gears retries
        the batch) if any is transient or a write concern failed, else add each rejected
        change to `letters`. The other writes of the batch were applied."""
        errors = details.get('writeErrors') or []
        if not errors or details.get('writeConcernErrors'):
            raise Exception('Mongo bulk write failed (will retry): %s' % _short(details))
        transient = [e for e in errors if e.get('code') in _TRANSIENT_WRITE_ERRORS]
        if transient:
            raise Exception('Mongo write failed (will retry): %s' % transient[0].get('errmsg'))
        for error in errors:
            letters.append((changes[error['index']][3], 'Mongo rejected the write: %s (code %s)'
                            % (error.get('errmsg'), error.get('code'))))

    def _without_unencodable(self, changes, letters):
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
                letters.append((change[3], 'Mongo cannot store the document: %s' % e))
        if len(kept) == len(changes):
            raise Exception('Mongo refused to encode the batch but every document encodes')
        return kept

    def dead_letter_stream_name(self):
        """Where dead letters go, resolved on the shard that writes them: recipe code may
        touch only its own shard's keys, so each shard keeps ``<stream>{<hashtag>}``."""
        if not self.dead_letter_stream:
            return None
        return '%s{%s}' % (self.dead_letter_stream, hashtag())

    def _dead_letter(self, letters, dataKey):
        """Append `letters` ((stream value, reason) pairs) to the dead-letter stream, then trim
        it to about `dead_letter_maxlen` entries, counting what was trimmed."""
        keys = [value.get(ORIGINAL_KEY_FIELD) or value.get(self.key_field) or ''
                for value, _ in letters]
        stream = self.dead_letter_stream_name()
        log('wbload: dead-lettered %d change(s) (%s%s): %s' % (
            len(letters), ', '.join(keys[:3]), ', ...' if len(keys) > 3 else '',
            letters[0][1]), level='warning')
        if not stream:
            raise Exception('change of %s rejected and no dead-letter stream: %s'
                            % (keys[0], letters[0][1]))
        now = '%.3f' % time.time()
        for key, (value, reason) in zip(keys, letters):
            execute('XADD', stream, '*',
                    'key', key,
                    'id', value.get(self.key_field) or '',
                    'op', value.get(OP_FIELD) or '',
                    'document', value.get(dataKey) or '',
                    'error', reason,
                    'time', now)
        trimmed = execute('XTRIM', stream, 'MAXLEN', '~', str(self.dead_letter_maxlen))
        if trimmed:
            execute('INCRBY', stream + TRIMMED_SUFFIX, str(trimmed))


def _last_change_per_key(changes):
    """Keep only the last change of each key, in the order of those last changes.

    A replace or delete carries the key's whole state, so earlier ones in the same batch
    can be skipped without changing what Mongo ends with.
    """
    last = {}
    for position, change in enumerate(changes):
        last[change[0]] = position
    return [change for position, change in enumerate(changes) if last[change[0]] == position]


def _index_refused(collection, key_field, error, duplicate=None):
    """One line: why Mongo refused the unique index, and what to do."""
    code = getattr(error, 'code', None)
    if code == _DUPLICATE_KEY or duplicate is not None:
        example = '' if duplicate is None else ' (e.g. %s)' % json.dumps(duplicate, default=str)
        return ('Mongo refused the unique index on %s.%s: documents share a %s%s; delete '
                'the duplicates (keep one per %s), the waiting changes are written after'
                % (collection, key_field, key_field, example, key_field))
    if code in _INDEX_CONFLICTS:
        return ('Mongo refused the unique index on %s.%s: an index on %s exists without '
                'unique (%s); drop it, the sink creates the unique one'
                % (collection, key_field, key_field, _first_line(error)))
    return 'Mongo refused the unique index on %s.%s (will retry): %s' % (
        collection, key_field, _first_line(error))


def _first_line(error):
    details = getattr(error, 'details', None)
    message = details.get('errmsg') if isinstance(details, dict) else None
    text = str(message or error).strip().splitlines()
    text = text[0] if text else type(error).__name__
    return text if len(text) <= 200 else text[:200] + '...'


def _short(details):
    text = str(details)
    return text if len(text) <= 300 else text[:300] + '...'
