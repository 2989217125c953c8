"""What a recipe sees: GB/GearsBuilder, execute, log, atomic, hashtag, configGet and an
importable ``redisgears`` module; plus the step pipeline that runs an execution.

Semantics follow RedisGears 1.2's plugins/python/GearsBuilder.py and execution_plan.c:
an exception in a step turns the record into an error record (the text is ``str()`` of
``traceback.format_exception`` starting at the user's frame), the reader stops once an
error reached the end, and ``run()``/``register()`` append ``map(str)`` + ``collect``.
"""
import copy
import logging
import os
import sys
import threading
import traceback
import types

from .resp import ReplyError

log_ = logging.getLogger("gears_standin.recipe")

ENGINE = None  # set by engine.Engine
_HERE = os.path.dirname(os.path.abspath(__file__))
_tls = threading.local()

error = type("error", (Exception,), {"__module__": "gears"})
GearsError = error
FENCE_TIMEOUT_S = 120  # as a client's fence (server.FENCE_TIMEOUT)


# ---------------------------------------------------------------- execute & friends

def _to_py(reply, top=True):
    """A RESP2 reply the way Gears' replyToPyList converts it."""
    if isinstance(reply, ReplyError):
        if top:
            # a key of another shard: Gears refuses it itself, before Redis could redirect
            # (keys of several slots too, as seen on the real cluster)
            if str(reply).startswith(("MOVED ", "ASK ", "CROSSSLOT ")):
                raise GearsError("Operation not permitted")
            # Gears keeps the reply's line ending: str(e) == 'WRONGTYPE ...\r\n' (seen on 1.2.13)
            raise GearsError(str(reply) + "\r\n")
        return str(reply)
    if isinstance(reply, list):
        return [_to_py(r, False) for r in reply]
    if isinstance(reply, bytes):
        try:
            return reply.decode("utf-8")
        except UnicodeDecodeError:
            return bytearray(reply)
    if isinstance(reply, float):  # cannot happen on RESP2, keep the module's behaviour
        return str(reply)
    return reply


def _arg(a):
    if isinstance(a, (bytes, bytearray)):
        return bytes(a)
    return str(a)


def executeCommand(*args):
    if not args:
        return []
    if not isinstance(args[0], str):
        raise GearsError("the given command must be a string")
    parts = [args[0]] + [_arg(a) for a in args[1:]]
    if parts[0].lower().startswith("rg."):
        reply = ENGINE.internal_command(parts)
    else:
        try:
            reply = ENGINE.thread_conn().call(*parts)
            _events_handled()
        except (OSError, ConnectionError) as e:
            ENGINE.drop_thread_conn()
            raise GearsError(str(e))
    return _to_py(reply)


def _events_handled():
    """In a StreamReader execution: return only once the sync KeysReaders have run on every
    event Redis published so far (an expiry, a keymiss this command caused). In Gears they
    run inside the command that caused them, or inside the expiry itself, before any
    execution sees the key gone; here they run on the dispatcher, so fence like a client."""
    if not threading.current_thread().name.startswith("stream-") or not ENGINE.fence_needed():
        return
    token, handled = ENGINE.new_fence()
    ENGINE.thread_conn().call("PUBLISH", ENGINE.fence_channel, token)
    handled.wait(FENCE_TIMEOUT_S)


execute = executeCommand


def log(msg, level="notice", **_kw):
    if not isinstance(msg, str):
        raise GearsError("Log message must be a string")
    if level not in ("debug", "verbose", "notice", "warning"):
        raise GearsError("Log level should be one of the following : debug,verbose,notice,warning")
    lvl = {"debug": logging.DEBUG, "verbose": logging.DEBUG, "notice": logging.INFO,
           "warning": logging.WARNING}[level]
    log_.log(lvl, "GEARS: %s", msg)


def getMyHashTag():
    # '06S' on one node (rgsync's streams end with {06S}) or an unrefreshed cluster node; a
    # refreshed cluster node gives the hashtag of its lowest slot
    return ENGINE.hashtag()


hashtag = getMyHashTag


def config_get(key):
    if not isinstance(key, str):
        raise GearsError("get_config key must be a string")
    val = ENGINE.config.get(key)
    return None if val is None else str(val)


configGet = config_get


def gearsConfigGet(key, default=None):
    val = configGet(key)
    return val if val is not None else default


class atomic(object):
    """Gears' atomicCtx; upstream commands are not made atomic by the stand-in."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


atomicCtx = atomic


def isInAtomicBlock():
    return False


def isAsyncAllow():
    return False


def getGearsSession():
    return getattr(_tls, "session", None)


def setGearsSession(s):
    _tls.session = s


# ---------------------------------------------------------------- errors

class ErrorRecord(object):
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


def user_error_text():
    """Error text for an exception raised by a user callback called from our frame."""
    etype, value, tb = sys.exc_info()
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if os.path.dirname(os.path.abspath(f.filename)) == _HERE]
    if not ours:
        return str(traceback.format_exception(etype, value, tb))
    # execute() and friends are C code in Gears: none of their frames in the traceback
    frames = [f for f in frames if f not in ours]
    return str(["Traceback (most recent call last):\n"] + traceback.format_list(frames)
               + traceback.format_exception_only(etype, value))


# ---------------------------------------------------------------- steps

def _call_step(kind, it, fn, *extra):
    for r in it:
        if isinstance(r, ErrorRecord):
            yield r
            continue
        try:
            if kind == "map":
                yield fn(r)
            elif kind == "filter":
                if fn(r):
                    yield r
            elif kind == "foreach":
                fn(r)
                yield r
            elif kind == "flatmap":
                res = fn(r)
                if isinstance(res, list):
                    for x in res:
                        yield x
                else:
                    yield res
        except Exception:
            yield ErrorRecord(user_error_text())


def _accumulate(it, fn):
    acc = None
    seen = False
    for r in it:
        if isinstance(r, ErrorRecord):
            yield r
            continue
        try:
            acc = fn(acc, r)
            seen = True
        except Exception:
            yield ErrorRecord(user_error_text())
    if seen:
        yield acc


def _groupby(it, extractor, reducer):
    groups = {}
    for r in it:
        if isinstance(r, ErrorRecord):
            yield r
            continue
        try:
            k = extractor(r)
            groups[k] = reducer(k, groups.get(k), r)
        except Exception:
            yield ErrorRecord(user_error_text())
    for k, v in groups.items():
        yield {"key": k, "value": v}


def _batchgroupby(it, extractor, reducer):
    groups = {}
    for r in it:
        if isinstance(r, ErrorRecord):
            yield r
            continue
        try:
            groups.setdefault(extractor(r), []).append(r)
        except Exception:
            yield ErrorRecord(user_error_text())
    for k, rs in groups.items():
        try:
            yield {"key": k, "value": reducer(k, rs)}
        except Exception:
            yield ErrorRecord(user_error_text())


def _limit(it, length, offset=0):
    n = 0
    for r in it:
        if isinstance(r, ErrorRecord):
            yield r
            continue
        if offset <= n < offset + length:
            yield r
        n += 1


def apply_steps(steps, records):
    it = iter(records)
    for step in steps:
        kind, args = step[0], step[1:]
        if kind in ("map", "filter", "foreach", "flatmap"):
            it = _call_step(kind, it, *args)
        elif kind == "accumulate":
            it = _accumulate(it, *args)
        elif kind in ("localgroupby", "groupby", "accumulateby"):
            it = _groupby(it, *args)
        elif kind == "batchgroupby":
            it = _batchgroupby(it, *args)
        elif kind == "limit":
            it = _limit(it, *args)
        # collect / repartition: one shard, nothing to move
    return it


def run_pipeline(steps, reader_records, stop_at_error=True):
    """Run an execution; returns (results, errors). The reader stops after the first error
    reaches the end (as ExecutionPlan's READER step does on the node that runs it; the other
    shards of a distributed run send every error they got)."""
    results, errors = [], []

    def guarded():
        for r in reader_records:
            if errors and stop_at_error:
                return
            yield r

    for r in apply_steps(steps, guarded()):
        if isinstance(r, ErrorRecord):
            errors.append(r.text)
        else:
            results.append(r)
    return results, errors


# ---------------------------------------------------------------- the builder

class GearsBuilder(object):
    def __init__(self, reader="KeysReader", defaultArg="*", desc=None):
        self.realReader = reader
        self.reader = reader
        self.desc = desc
        self.defaultArg = defaultArg
        self.steps = []
        self.id = ENGINE.new_fep_id()

    def _add(self, *step):
        self.steps.append(step)
        return self

    # primitive steps (PyFlatExecution)
    def map(self, f):
        return self._add("map", f)

    def filter(self, f):
        return self._add("filter", f)

    def foreach(self, f):
        return self._add("foreach", f)

    def flatmap(self, f):
        return self._add("flatmap", f)

    def accumulate(self, f):
        return self._add("accumulate", f)

    def localgroupby(self, extractor, reducer):
        return self._add("localgroupby", extractor, reducer)

    def groupby(self, extractor, reducer):
        return self._add("groupby", extractor, reducer)

    def accumulateby(self, extractor, reducer):
        return self._add("accumulateby", extractor, reducer)

    def batchgroupby(self, extractor, reducer):
        return self._add("batchgroupby", extractor, reducer)

    def collect(self):
        return self._add("collect")

    def repartition(self, extractor):
        return self._add("repartition", extractor)

    def limit(self, length, start=0):
        return self._add("limit", length, start)

    # composed steps (as in GearsBuilder.py)
    def aggregate(self, zero, seqOp, combOp):
        self.accumulate(lambda a, r: seqOp(a if a else copy.deepcopy(zero), r))
        self.collect()
        self.accumulate(lambda a, r: combOp(a if a else copy.deepcopy(zero), r))
        return self

    def aggregateby(self, extractor, zero, seqOp, combOp):
        self.localgroupby(lambda x: extractor(x),
                          lambda k, a, r: seqOp(k, a if a else copy.deepcopy(zero), r))
        self.groupby(lambda r: r["key"],
                     lambda k, a, r: combOp(k, a if a else copy.deepcopy(zero), r["value"]))
        return self

    def count(self):
        self.accumulate(lambda a, r: 1 + (a if a else 0))
        self.collect()
        self.accumulate(lambda a, r: r + (a if a else 0))
        return self

    def countby(self, extractor=lambda x: x):
        return self.aggregateby(extractor, 0, lambda k, a, r: 1 + a, lambda k, a, r: r + a)

    def sort(self, reverse=True):
        self.aggregate([], lambda a, r: a + [r], lambda a, r: a + r)
        self.map(lambda r: sorted(r, reverse=reverse))
        return self.flatmap(lambda r: r)

    def distinct(self):
        return self.aggregate(set(), lambda a, r: a | {r}, lambda a, r: a | r).flatmap(
            lambda x: list(x))

    def avg(self, extractor=lambda x: float(x)):
        return self.map(extractor).aggregate(
            (0, 0), lambda a, r: (a[0] + r, a[1] + 1),
            lambda a, r: (a[0] + r[0], a[1] + r[1])).map(lambda x: x[0] / x[1])

    def run(self, arg=None, convertToStr=True, collect=True, **kwargs):
        if convertToStr:
            self.map(lambda x: str(x))
        if collect:
            self.collect()
        arg = arg if arg else self.defaultArg
        return ENGINE.run_builder(self, arg, kwargs)

    def register(self, prefix="*", convertToStr=True, collect=True, **kwargs):
        if convertToStr:
            self.map(lambda x: str(x))
        if collect:
            self.collect()
        if "regex" in kwargs:
            log("Using regex argument with register is deprecated and missleading, "
                "use prefix instead.", level="warning")
            prefix = kwargs["regex"]
        kwargs["prefix"] = prefix
        return ENGINE.register_builder(self, kwargs)


GB = GearsBuilder


# ---------------------------------------------------------------- module & globals

def _build_module():
    m = types.ModuleType("redisgears")
    for name in ("executeCommand", "getMyHashTag", "log", "config_get", "atomicCtx",
                 "isInAtomicBlock", "isAsyncAllow", "getGearsSession", "setGearsSession",
                 "error", "GearsError"):
        setattr(m, name, globals()[name])
    m.configGet = config_get
    m.atomic = atomic
    m.GearsBuilder = GearsBuilder
    m.GB = GearsBuilder
    return m


redisgears_module = _build_module()
sys.modules["redisgears"] = redisgears_module


def recipe_globals():
    """A fresh globals dict for a session (Gears copies its pyGlobals per session)."""
    g = {
        "__name__": "not_main",
        "__builtins__": __builtins__,
        "GB": GearsBuilder,
        "GearsBuilder": GearsBuilder,
        "execute": executeCommand,
        "atomic": atomic,
        "hashtag": getMyHashTag,
        "log": log,
        "configGet": configGet,
        "gearsConfigGet": gearsConfigGet,
        "redisgears": redisgears_module,
        "rg": redisgears_module,
    }
    g["Log"] = log
    g["ConfigGet"] = configGet
    g["GearsConfigGet"] = gearsConfigGet
    return g


def exec_error_text(exc_info):
    """Error reply text for a failed script, like Gears' getPyError()."""
    etype, value, tb = exc_info
    # skip our own frames: the traceback starts at the script's <module> frame
    while tb is not None and tb.tb_frame.f_code.co_filename != "<string>":
        tb = tb.tb_next
    if tb is None:
        return "Error type: %s, Value: %s" % (etype, value)
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if os.path.dirname(os.path.abspath(f.filename)) == _HERE
            and os.path.basename(f.filename) != "runtime.py"]
    if not ours:
        return str(traceback.format_exception(etype, value, tb))
    # the engine is C code in Gears: no frames of it in a recipe's traceback
    frames = [f for f in frames if f not in ours]
    return str(["Traceback (most recent call last):\n"] + traceback.format_list(frames)
               + traceback.format_exception_only(etype, value))
