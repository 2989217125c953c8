"""Registrations: KeysReader (fired by keyspace events, run by the dispatcher thread) and
StreamReader (one thread each, a port of streams_reader.c's batching/retry/trim logic).

Counters follow the real readers: one execution = one numTriggered; it ends as a success
(lastError cleared), a failure (lastError = its first error) or an abort.
"""
import collections
import logging
import queue
import threading
import time

from . import runtime
from .resp import Double, ReplyError

log = logging.getLogger("gears_standin.readers")

GROUP = "__gears_consumer_group__"
CONSUMER = "__gears_client__"
BUILTIN_TYPES = {"string": "string", "list": "list", "hash": "hash", "set": "set",
                 "zset": "zset", "stream": "unknown", "none": "empty"}


def key_matches(prefix, key):
    """KeysReader_IsKeyMatch / StreamReader_IsKeyMatch: 'x*' is a prefix, else exact."""
    if prefix.endswith("*"):
        return key.startswith(prefix[:-1])
    return key == prefix


def _s(b):
    if isinstance(b, bytes):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return bytearray(b)
    return b


def key_type(call, key):
    t = _s(call("TYPE", key))
    return BUILTIN_TYPES.get(t, "module")


def read_key_record(call, key, event, read_value=True):
    """The record KeysReader gives a step (see KeysReader_ReadKey)."""
    rec = {"event": event, "key": key}
    if not read_value:
        return rec
    t = key_type(call, key)
    value = None
    if t == "string":
        value = _s(call("GET", key))
    elif t == "hash":
        flat = call("HGETALL", key)
        value = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
    elif t == "list":
        value = [_s(v) for v in call("LRANGE", key, 0, -1)]
    return {"event": event, "key": key, "type": t, "value": value}


class Registration(object):
    reader = None

    def __init__(self, engine, rid, desc, mode, steps, args, session):
        self.engine = engine
        self.id = rid
        self.desc = desc
        self.mode = mode
        self.steps = steps
        self.args = args
        self.session = session
        self.pickled_steps = None
        self.stopped = False
        self.numTriggered = self.numSuccess = self.numFailures = self.numAborted = 0
        self.lastRunDuration = self.totalRunDuration = 0  # ns
        self.lastError = None

    def _finish(self, errors, started_ns, aborted=False):
        self.lastRunDuration = time.time_ns() - started_ns
        self.totalRunDuration += self.lastRunDuration
        if errors:
            self.numFailures += 1
            self.lastError = errors[0]
        elif aborted:
            self.numAborted += 1
        else:
            self.numSuccess += 1
            self.lastError = None
        self.engine.record_execution(registered=True)

    def _common_data(self):
        done = self.numSuccess + self.numFailures + self.numAborted
        total_ms = self.totalRunDuration // 1000000
        return [
            "mode", self.mode,
            "numTriggered", self.numTriggered,
            "numSuccess", self.numSuccess,
            "numFailures", self.numFailures,
            "numAborted", self.numAborted,
            "lastRunDurationMS", self.lastRunDuration // 1000000,
            "totalRunDurationMS", total_ms,
            "avgRunDurationMS", Double(float(total_ms) / done if done else 0.0),
        ]

    def start(self):
        pass

    def stop(self):
        self.stopped = True


class KeysRegistration(Registration):
    reader = "KeysReader"

    def should_fire(self, event, key):
        types = self.args.get("eventTypes")
        if types is not None and event.lower() not in [t.lower() for t in types]:
            return False
        if not key_matches(self.args["prefix"], key):
            return False
        ktypes = self.args.get("keyTypes")
        if ktypes is not None:
            return key_type(self.engine.call, key) in ktypes
        return True

    def trigger(self, event, key):
        self.numTriggered += 1
        started = time.time_ns()
        read_value = self.args.get("readValue", True)

        def records():
            try:
                rec = read_key_record(self.engine.call, key, event, read_value)
            except Exception:
                rec = runtime.ErrorRecord(runtime.user_error_text())
            yield rec

        _results, errors = runtime.run_pipeline(self.steps, records())
        self._finish(errors, started)

    def registration_data(self):
        a = self.args
        return self._common_data() + [
            "lastError", self.lastError,
            "args", ["regex", a["prefix"], "eventTypes", a.get("eventTypes"),
                     "keyTypes", a.get("keyTypes"), "hookCommands", a.get("commands")],
        ]


class _Stream(object):
    """SingleStreamReaderCtx"""

    def __init__(self, key, epoch):
        self.key = key
        self.pending = 0
        self.next_batch = 0
        self.batch_start = collections.deque()  # ns; 0 = unknown
        self.timer_at = None
        self.created_epoch = epoch


class StreamRegistration(Registration):
    reader = "StreamReader"

    def __init__(self, *a, **kw):
        Registration.__init__(self, *a, **kw)
        self.status = "PAUSED"
        self.epoch = 0
        self.streams = {}
        self.retry_at = None
        self.lastBatchLag = self.totalBatchLag = 0  # ns
        self.events = queue.Queue()
        self.thread = None

    # ------------------------------------------------------------ thread plumbing
    def start(self):
        self.thread = threading.Thread(target=self._loop, name="stream-%s" % self.id,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        self.status = "UNREGISTERED"
        self.events.put(("stop", None))

    def on_xadd(self, key):
        self.events.put(("xadd", key))

    def rescan(self):
        self.events.put(("rescan", None))

    def _loop(self):
        try:
            self._start_scan()
        except Exception:
            log.exception("stream registration %s: initial scan failed", self.id)
            self._retry_later()
        while not self.stopped:
            now = time.time()
            deadlines = [s.timer_at for s in self.streams.values() if s.timer_at is not None]
            if self.retry_at is not None:
                deadlines.append(self.retry_at)
            timeout = max(0.0, min(deadlines) - now) if deadlines else 1.0
            try:
                kind, key = self.events.get(timeout=timeout)
            except queue.Empty:
                kind = key = None
            try:
                if kind == "xadd":
                    self._on_xadd(key)
                elif kind == "rescan":
                    self._clean()
                    self._start_scan()
                self._fire_timers()
            except Exception:
                if self.stopped:
                    return
                log.exception("stream registration %s: upstream trouble, rescanning later",
                              self.id)
                self._clean()
                self._retry_later()

    def _retry_later(self):
        if self.retry_at is None:
            self.retry_at = time.time() + max(1, self.args["retryInterval"])

    def _fire_timers(self):
        now = time.time()
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            self._start_scan()
        for s in list(self.streams.values()):
            if s.timer_at is not None and now >= s.timer_at and self.streams.get(s.key) is s:
                s.timer_at = None
                s.next_batch = 0
                self._run(s, self.args["batchSize"], False)

    # ------------------------------------------------------------ streams_reader.c
    def _clean(self):
        self.streams = {}

    def _start_scan(self):
        if self.stopped:
            return
        self.epoch += 1
        self.status = "OK"
        cursor = "0"
        keys = []
        while True:
            cursor, batch = self.engine.call("SCAN", cursor, "MATCH", self.args["prefix"],
                                             "COUNT", 1000, "TYPE", "stream")
            keys.extend(_s(k) for k in batch)
            cursor = _s(cursor)
            if cursor == "0":
                break
        for key in keys:
            if self.status != "OK" or self.stopped:
                return
            if key not in self.streams:
                self._create_stream(key, set_current_time=False)

    def _create_stream(self, key, set_current_time):
        s = _Stream(key, self.epoch)
        s.pending = self.engine.call("XLEN", key)
        batch = self.args["batchSize"]
        for _ in range(0, s.pending, max(1, batch)):
            s.batch_start.append(time.time_ns() if set_current_time else 0)
        self.streams[key] = s
        self._run(s, 0, True)  # first read what was delivered but never acked
        return s

    def _on_xadd(self, key):
        if self.status != "OK" or self.stopped:
            return
        s = self.streams.get(key)
        if s is None:
            self._create_stream(key, set_current_time=True)
            return
        batch = self.args["batchSize"]
        s.pending += 1
        s.next_batch += 1
        if s.next_batch == 1:
            s.batch_start.append(time.time_ns())
        if s.next_batch == batch:
            s.next_batch = 0
        if batch <= s.pending:
            s.timer_at = None
            self._run(s, batch, False)
        elif s.timer_at is None and self.args["durationMS"] > 0:
            s.timer_at = time.time() + self.args["durationMS"] / 1000.0

    def _read(self, s, batch, read_pending):
        args = ["XREADGROUP", "GROUP", GROUP, CONSUMER]
        if batch > 0:
            args += ["COUNT", batch]
        args += ["STREAMS", s.key, "0" if read_pending else ">"]
        reply = self.engine.call(*args)
        if isinstance(reply, ReplyError):
            self.engine.call("XGROUP", "CREATE", s.key, GROUP, "0")
            reply = self.engine.call(*args)
        if not isinstance(reply, list) or not reply:
            return []
        records = []
        for entry_id, values in reply[0][1]:
            value = {}
            if isinstance(values, list):
                pairs = [(_s(values[i]), _s(values[i + 1])) for i in range(0, len(values), 2)]
                # Gears builds this dict in a hash table; its iteration order for small
                # field sets comes out reversed (see transcripts/streamreader-record.json)
                for k, v in reversed(pairs):
                    value[k] = v
            records.append({"key": s.key, "id": _s(entry_id), "value": value})
        return records

    def _run(self, s, batch, read_pending):
        """StreamReader_RunOnEvent + ExecutionDone, looping instead of re-triggering."""
        while s is not None and not self.stopped:
            self.numTriggered += 1
            started = time.time_ns()
            records = self._read(s, batch, read_pending)
            ids = [r["id"] for r in records]
            _results, errors = runtime.run_pipeline(self.steps, records)
            self._finish(errors, started)
            nxt = self._after_execution(s, ids, errors, read_pending)
            if nxt is None:
                return
            batch, read_pending = nxt

    def _after_execution(self, s, ids, errors, read_pending):
        ack_and_trim = False
        if errors:
            if s.created_epoch == self.epoch:
                if self.lastError.startswith("PAUSE") or self.status == "PAUSED":
                    self._clean()
                    self.status = "PAUSED"
                elif self.args["onFailedPolicy"] != "continue":
                    self._clean()  # on restart all pending data is read again
                    if self.args["onFailedPolicy"] == "retry":
                        self.status = "WAITING_FOR_RETRY_ON_FAILURE"
                        if self.retry_at is None:
                            self.retry_at = time.time() + self.args["retryInterval"]
                    else:
                        self.status = "ABORTED"
                else:
                    ack_and_trim = True
        else:
            ack_and_trim = True
        if not (ack_and_trim and s.created_epoch == self.epoch):
            return None
        if not read_pending:
            if s.batch_start:
                start = s.batch_start.popleft()
                if start:
                    self.lastBatchLag = time.time_ns() - start
                    self.totalBatchLag += self.lastBatchLag
            else:
                s.pending = self.engine.call("XLEN", s.key)
        if ids:
            s.pending = max(0, s.pending - len(ids))
            self.engine.call("XACK", s.key, GROUP, *ids)
            if self.args["trimStream"]:
                # Gears trims with MAXLEN <its count of unprocessed entries>; here that count
                # can lag behind (events are queued while an execution runs), so trim exactly
                # what was processed instead: everything up to the last acked id.
                ms, seq = max(tuple(int(x) for x in i.split("-")) for i in ids)
                self.engine.call("XTRIM", s.key, "MINID", "%d-%d" % (ms, seq + 1))
        return self._another_execution(s, bool(ids), read_pending)

    def _another_execution(self, s, has_data, read_pending):
        batch = self.args["batchSize"]
        if not s.pending:
            return None
        if not has_data and not read_pending and s.next_batch == 0:
            s.pending = 0
            return None
        if batch <= s.pending:
            return batch, False
        start = s.batch_start[0] if s.batch_start else 0
        if not start:
            s.next_batch = 0
            return batch, False
        duration = self.args["durationMS"]
        if duration:
            elapsed_ms = (time.time_ns() - start) / 1e6
            if elapsed_ms >= duration:
                s.next_batch = 0
                return batch, False
            s.timer_at = time.time() + (duration - elapsed_ms) / 1000.0
        return None

    # ------------------------------------------------------------ dump
    def registration_data(self):
        a = self.args
        done = self.numSuccess + self.numFailures + self.numAborted
        lag_ms = self.totalBatchLag // 1000000
        return self._common_data() + [
            "lastEstimatedLagMS", self.lastBatchLag // 1000000,
            "avgEstimatedLagMS", Double(float(lag_ms) / done if done else 0.0),
            "lastError", self.lastError,
            "args", ["batchSize", a["batchSize"], "durationMS", a["durationMS"],
                     "stream", a["prefix"], "trimStream", 1 if a["trimStream"] else 0,
                     "onFailedPolicy", a["onFailedPolicy"], "retryInterval", a["retryInterval"]],
            "status", self.status,
        ]
