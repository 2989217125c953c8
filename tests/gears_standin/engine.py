"""The engine: sessions, registrations, executions and the RG.* commands.

Keyspace events come from one upstream connection subscribed to ``__keyevent@*__:*``; a
single dispatcher thread runs KeysReader registrations serially, in Redis' order (like
Gears' one thread).  Sync registrations are kept in step with client replies by *fences*: a
client handler that forwarded writes publishes a token on ``fence_channel`` on its own
upstream connection and holds the replies until the dispatcher has seen the token; Redis
delivers notifications in command order, so every event those writes caused came first.
"""
import binascii
import logging
import os
import resource
import sys
import threading
import time
import traceback

import cloudpickle
import hiredis

from . import runtime
from .cluster import NOT_REFRESHED, ClusterState, PeerUnavailable
from .readers import KeysRegistration, StreamRegistration, key_matches
from .requirements import RequirementError, Requirements, server_site_dir
from .resp import Conn, Err, ReplyError, Status, encode

log = logging.getLogger("gears_standin.engine")

CONFIG = {
    "MaxExecutions": 1000, "MaxExecutionsPerRegistration": 100, "ProfileExecutions": 0,
    "PythonAttemptTraceback": 1, "ExecutionThreads": 3, "ExecutionMaxIdleTime": 5000,
    "PythonInstallReqMaxIdleTime": 30000, "SendMsgRetries": 3, "CreateVenv": 1,
    "DownloadDeps": 1, "ForceDownloadDepsOnEnterprise": 0,
}
STATE_DB = 15
STATE_KEY = "__gears_standin__:registrations"
STATE_FILE = "gears-standin-registrations.pickle"  # cluster mode: beside the upstream's AOF
# steps after which Gears moves records between shards: a distributed run does what comes
# before the first of them on every shard and the rest on the initiator
GLOBAL_STEPS = ("collect", "groupby", "accumulateby", "batchgroupby", "repartition")
MAX_IDLE_REACHED = "Execution max idle reached"
KEY_TYPES = ("string", "list", "hash", "set", "zset", "module", "stream")


class Session(object):
    def __init__(self, name, desc, reqs, installation_needed):
        self.name = name
        self.desc = desc
        self.reqs = reqs
        self.installation_needed = installation_needed
        self.registrations = []

    def pd(self):
        regs = ",".join("'%s'" % r for r in self.registrations)
        deps = ",".join(r.to_str() for r in self.reqs)
        return ("{'sessionName':'%s', 'sessionDescription':'%s', 'refCount': %d, "
                "'linkedTo': primary, 'dead': false, 'isInstallationNeeded':%d, "
                "'registrationsList':[%s], 'depsList':[%s]}" % (
                    self.name, self.desc if self.desc is not None else "null",
                    max(1, len(self.registrations)), 1 if self.installation_needed else 0,
                    regs, deps))


class ExecCtx(object):
    """What one RG.PYEXECUTE collects while its script runs."""

    def __init__(self, session):
        self.session = session
        self.pending = []
        self.run_reply = None


# RedisGears installs requirements holding the Redis lock, so no Python of a registration runs
# meanwhile. Here registrations run in threads: an import (of anything not yet imported) waits
# while an install and the module reset after it are under way, or a thread importing pymongo
# then would mix two versions' modules, for good.
INSTALLING = threading.RLock()


class _ImportBarrier(object):
    @staticmethod
    def find_spec(name, path=None, target=None):
        with INSTALLING:
            return None  # let the usual finders find it


IMPORT_BARRIER = _ImportBarrier()
if IMPORT_BARRIER not in sys.meta_path:
    sys.meta_path.insert(0, IMPORT_BARRIER)


class Engine(object):
    def __init__(self, host, port, password=None, username=None):
        self.host, self.port = host, port
        self.password, self.username = password, username
        self.config = dict(CONFIG)
        self.reqs = Requirements(site_dir=server_site_dir())
        self.lock = threading.RLock()      # registries
        self.py_lock = threading.RLock()   # one RG.PYEXECUTE at a time
        self._tls = threading.local()
        self.fep_counter = 0
        self.ep_counter = 0
        self.executions = []
        self.sessions = {}
        self.registrations = {}            # id -> Registration, in registration order
        self.fence_channel = "__gears_standin__:fence:%d:%s" % (
            os.getpid(), binascii.hexlify(os.urandom(4)).decode())
        self.fences = {}
        self.fence_counter = 0
        self.listener_ready = threading.Event()
        self.stopping = False
        self.cluster = ClusterState(self)
        self.state_path = None
        runtime.ENGINE = self
        self.initial_modules = set(sys.modules)

    # ------------------------------------------------------------ upstream
    def connect(self, timeout=None):
        return Conn(self.host, self.port, self.password, self.username, timeout=timeout)

    def thread_conn(self):
        conn = getattr(self._tls, "conn", None)
        if conn is None:
            conn = self._tls.conn = self.connect()
        return conn

    def drop_thread_conn(self):
        conn = getattr(self._tls, "conn", None)
        if conn is not None:
            conn.close()
        self._tls.conn = None

    def call(self, *args):
        """A command for the engine itself, on this thread's connection (one reconnect)."""
        for attempt in (1, 2):
            try:
                return self.thread_conn().call(*args)
            except (OSError, ConnectionError):
                self.drop_thread_conn()
                if attempt == 2:
                    raise
                time.sleep(0.2)

    # ------------------------------------------------------------ ids & executions
    def new_fep_id(self):
        with self.lock:
            self.fep_counter += 1
            return "%s-%d" % (self.cluster.node_id, self.fep_counter)

    def record_execution(self, registered):
        with self.lock:
            self.ep_counter += 1
            self.executions.append(("%s-%d" % (self.cluster.node_id, self.ep_counter),
                                    int(registered)))
            del self.executions[:-self.config["MaxExecutions"]]

    # ------------------------------------------------------------ listener / dispatcher
    def hashtag(self):
        return self.cluster.hashtag()

    def start(self):
        if self.cluster.detect():
            # a cluster node has only database 0: keep the state in a file beside its AOF
            reply = self.call("CONFIG", "GET", "dir")
            self.state_path = os.path.join(reply[1].decode(), STATE_FILE)
        self.restore()
        threading.Thread(target=self._listen, name="dispatcher", daemon=True).start()
        if not self.listener_ready.wait(10):
            raise RuntimeError("could not subscribe to keyspace events on the upstream")

    # ------------------------------------------------------------ persistence
    # Gears keeps sessions and (pickled) registrations in RDB/AOF.  The stand-in keeps them
    # in the upstream too, in a database clients of wbload do not use, so that a restarted
    # stand-in resumes the same registrations (same ids, same rgsync stream names).
    def _state_call(self, *args):
        conn = self.connect(timeout=30)
        try:
            conn.call("SELECT", STATE_DB)
            return conn.call(*args)
        finally:
            conn.close()

    @staticmethod
    def _session_record(session, regs):
        """A session and its registrations as saved (and as sent to peers): the steps
        pickled once, on the node that registered them."""
        return {"name": session.name, "desc": session.desc, "reqs": [r.name for r in session.reqs],
                "regs": [{"id": g.id, "reader": g.reader, "desc": g.desc, "mode": g.mode,
                          "args": g.args, "steps": g.pickled_steps} for g in regs]}

    def _load_session(self, saved):
        """Registers a saved (or received) session; returns its registrations, not started."""
        reqs, needed = self.reqs.for_session(saved["reqs"])
        if needed:
            with INSTALLING:
                self.reqs.install_session(reqs)
                self._reset_modules()
        self.reqs.add_to_dict(reqs)
        session = Session(saved["name"], saved["desc"], reqs, needed)
        regs = []
        for g in saved["regs"]:
            cls = KeysRegistration if g["reader"] == "KeysReader" else StreamRegistration
            reg = cls(self, g["id"], g["desc"], g["mode"], cloudpickle.loads(g["steps"]),
                      g["args"], session)
            reg.pickled_steps = g["steps"]
            regs.append(reg)
        with self.lock:
            for reg in regs:
                session.registrations.append(reg.id)
                self.registrations[reg.id] = reg
                self.fep_counter = max(self.fep_counter, int(reg.id.rsplit("-", 1)[1]))
            self.sessions[session.name] = session
        return regs

    def save(self):
        with self.lock:
            sessions = []
            for s in self.sessions.values():
                regs = [self.registrations[rid] for rid in s.registrations
                        if rid in self.registrations]
                sessions.append(self._session_record(s, regs))
            state = {"requirements": self.reqs.stored(), "sessions": sessions}
        blob = cloudpickle.dumps(state)
        if self.state_path is not None:
            try:
                tmp = self.state_path + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(blob)
                os.replace(tmp, self.state_path)
            except OSError:
                log.exception("could not save registrations to %s", self.state_path)
            return
        try:
            reply = self._state_call("SET", STATE_KEY, blob)
        except Exception:
            log.exception("could not save registrations to the upstream")
            return
        if isinstance(reply, ReplyError):  # e.g. READONLY in front of a replica
            log.error("could not save registrations to the upstream: %s", reply)

    def _saved_blob(self):
        if self.state_path is not None:
            try:
                with open(self.state_path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None
        return self._state_call("GET", STATE_KEY)

    def restore(self):
        try:
            blob = self._saved_blob()
        except (OSError, ConnectionError):
            log.exception("could not read saved registrations")
            return
        if not isinstance(blob, bytes):
            return
        state = cloudpickle.loads(blob)
        if isinstance(state, list):  # saved before requirements were kept
            state = {"requirements": [], "sessions": state}
        # Gears reinstalls the stored requirements first, then loads the sessions.
        with INSTALLING:
            self.reqs.reinstall_stored(state["requirements"])
        for saved in state["sessions"]:
            try:
                regs = self._load_session(saved)
                log.info("restored session %s: %s", saved["name"], [g.id for g in regs])
            except Exception:
                log.exception("could not restore session %s", saved.get("name"))
        for reg in list(self.registrations.values()):
            reg.start()

    def _listen(self):
        first = True
        while not self.stopping:
            try:
                conn = self.connect()
                conn.call("CONFIG", "SET", "notify-keyspace-events", "KEAm")
                conn.call("CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
                conn.send(["PSUBSCRIBE", "__keyevent@*__:*"], ["SUBSCRIBE", self.fence_channel])
                conn.read()
                conn.read()
                if not first:
                    log.warning("re-subscribed to the upstream; rescanning stream registrations")
                    for reg in self._regs(StreamRegistration):
                        reg.rescan()
                first = False
                self.listener_ready.set()
                while True:
                    self._dispatch(conn.read())
            except (OSError, ConnectionError) as e:
                log.warning("keyspace listener lost the upstream (%s); reconnecting", e)
                self._release_fences()
                time.sleep(0.5)
            except Exception:
                log.exception("dispatcher crashed; restarting it")
                self._release_fences()
                time.sleep(0.5)

    def _dispatch(self, msg):
        kind = msg[0]
        if kind == b"pmessage":
            channel, key = msg[2], msg[3]
            head, event = channel.split(b":", 1)
            event = event.decode("utf-8", "replace")
            db = int(head[len(b"__keyevent@"):-2])
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                key = key.decode("utf-8", "surrogateescape")
            self.on_key_event(event, key, db)
        elif kind == b"message" and msg[1] == self.fence_channel.encode():
            ev = self.fences.pop(int(msg[2]), None)
            if ev is not None:
                ev.set()

    def on_key_event(self, event, key, db=0):
        if db == STATE_DB and key == STATE_KEY:
            return
        for reg in self._regs(KeysRegistration):
            if reg.stopped:
                continue
            try:
                if reg.should_fire(event, key):
                    reg.trigger(event, key)
            except Exception:
                log.exception("KeysReader %s failed on %s %s", reg.id, event, key)
        if event == "xadd":
            for reg in self._regs(StreamRegistration):
                if key_matches(reg.args["prefix"], key):
                    reg.on_xadd(key)

    def _regs(self, cls):
        with self.lock:
            return [r for r in self.registrations.values() if isinstance(r, cls)]

    def fence_needed(self):
        with self.lock:
            return any(isinstance(r, KeysRegistration) and r.mode == "sync"
                       for r in self.registrations.values())

    def new_fence(self):
        # while the listener is (re)subscribing a fence token would never come back
        self.listener_ready.wait(10)
        with self.lock:
            self.fence_counter += 1
            ev = threading.Event()
            self.fences[self.fence_counter] = ev
            return self.fence_counter, ev

    def _release_fences(self):
        self.listener_ready.clear()
        with self.lock:
            fences, self.fences = self.fences, {}
        for ev in fences.values():
            ev.set()

    # ------------------------------------------------------------ commands
    def command(self, args):
        """Reply object for an RG.* command, or None to forward it upstream."""
        name = args[0].decode("utf-8", "replace").upper()
        handler = getattr(self, "cmd_" + name[3:].lower(), None) if name.startswith("RG.") \
            else None
        if handler is None:
            return None
        try:
            return handler(args[1:])
        except Exception as e:
            log.exception("%s failed", name)
            return Err("stand-in internal error: %s" % e)

    def internal_command(self, parts):
        """RG.* called through execute() from a recipe: the RESP2 reply it would parse."""
        args = [p if isinstance(p, bytes) else p.encode("utf-8") for p in parts]
        reply = self.command(args)
        if reply is None:
            return self.thread_conn().call(*parts)
        reader = hiredis.Reader(replyError=ReplyError)
        reader.feed(encode(reply, resp3=False))
        return reader.gets()

    @staticmethod
    def _str(args):
        return [a.decode("utf-8", "replace") for a in args]

    @staticmethod
    def _arity(name):
        return Err("ERR wrong number of arguments for '%s' command" % name)

    def cmd_pyexecute(self, args):
        if not args:
            return self._arity("rg.pyexecute")
        return self.pyexecute(self._str(args))

    def cmd_dumpregistrations(self, args):
        with self.lock:
            regs = list(self.registrations.values())
        out = []
        for reg in reversed(regs):
            out.append(["id", reg.id, "reader", reg.reader, "desc", reg.desc,
                        "RegistrationData", reg.registration_data(), "PD", reg.session.pd(),
                        "ExecutionThreadPool", "DefaultPool"])
        return out

    def cmd_unregister(self, args):
        if len(args) not in (1, 2):
            return self._arity("rg.unregister")
        rid = args[0].decode("utf-8", "replace")
        if not self.unregister(rid):
            return Err("execution is not registered")
        self.cluster.broadcast("UNREGISTER", rid)  # cluster-wide once refreshed
        return Status("OK")

    def cmd_dumpexecutions(self, args):
        with self.lock:
            execs = list(self.executions)
        return [["executionId", eid, "status", "done", "registered", reg]
                for eid, reg in reversed(execs)]

    def cmd_pydumpreqs(self, args):
        return self.reqs.dump()

    def cmd_pydumpsessions(self, args):
        with self.lock:
            sessions = list(self.sessions.values())
        return [["ID", s.name, "sessionDescription", s.desc, "refCount",
                 max(1, len(s.registrations)), "linked", "primary", "dead", "false",
                 "requirementInstallationNeeded", int(s.installation_needed),
                 "requirements", [r.name for r in s.reqs],
                 "registrations", list(s.registrations)] for s in sessions]

    def cmd_pyexportreq(self, args):
        if len(args) != 1:
            return self._arity("rg.pyexportreq")
        try:
            meta, chunks = self.reqs.export(args[0].decode("utf-8"))
        except RequirementError as e:
            return Err(str(e))
        return [meta, chunks]

    def cmd_pyimportreq(self, args):
        with self.py_lock:
            try:
                self.reqs.import_(b"".join(args))
            except RequirementError as e:
                return Err(str(e))
            # No module reset: RedisGears 1.2.13 resets its modules only after a PYEXECUTE
            # that installed something; modules already imported stay as they are.
        self.save()
        return Status("OK")

    def cmd_configget(self, args):
        out = []
        for key in self._str(args):
            val = self.config.get(key)
            out.append(Err("Unsupported config parameter: %s" % key) if val is None else val)
        return out

    def cmd_configset(self, args):
        args = self._str(args)
        out = []
        for i in range(0, len(args) - 1, 2):
            known = args[i] in self.config
            self.config[args[i]] = int(args[i + 1]) if args[i + 1].isdigit() else args[i + 1]
            out.append(Status("OK" if known else "OK - value was saved in extra config "
                                                  "dictionary"))
        return out

    def cmd_infocluster(self, args):
        return self.cluster.info()

    def cmd_pystats(self, args):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return ["TotalAllocated", rss, "PeakAllocated", rss, "CurrAllocated", rss]

    def cmd_refreshcluster(self, args):
        self.cluster.refresh()
        return Status("OK")

    def cmd_standinpeer(self, args):
        """A message from another shard's stand-in (see cluster.py)."""
        if len(args) != 3:
            return self._arity("rg.standinpeer")
        if not self.cluster.active:
            return Err(NOT_REFRESHED)
        op, sender = args[0].decode(), args[1].decode()
        payload = cloudpickle.loads(args[2])
        if op == "HELLO":
            answer = self.cluster.on_hello(sender, payload)
        elif op == "REGISTER":
            answer = self.peer_register(payload)
        elif op == "UNREGISTER":
            answer = self.unregister(payload)
        elif op == "RUN":
            answer = self.peer_run(payload)
        else:
            return Err("unknown peer message %s" % op)
        try:
            return cloudpickle.dumps(answer)
        except Exception:
            results, errors = answer
            return cloudpickle.dumps(([str(r) for r in results], errors))

    def peer_register(self, payload):
        """Registrations another shard made: the same ids, the same pickled steps."""
        old = self.sessions.get(payload["session"]["name"])
        if old is not None:
            for rid in list(old.registrations):
                self.unregister(rid)
        regs = self._load_session(payload["session"])
        for reg in regs:
            reg.start()
        self.save()
        return "OK"

    def peer_run(self, payload):
        """This shard's part of a batch run sent to another shard: every record is run (the
        initiator alone stops at its first error)."""
        records = self._reader_records(payload["reader"], payload["arg"], payload["kwargs"])
        results, errors = runtime.run_pipeline(payload["steps"], records, stop_at_error=False)
        self.record_execution(registered=False)
        return results, errors

    def _cluster_down(self):
        info = self.call("CLUSTER", "INFO")
        return isinstance(info, bytes) and b"cluster_state:ok" not in info

    # ------------------------------------------------------------ PYEXECUTE
    def pyexecute(self, args):
        started = time.monotonic()
        if self.cluster.enabled and self._cluster_down():
            return Err("CLUSTERDOWN The cluster is down")
        script = args[0]
        name = desc = None
        upgrade = force = blocking_off = False
        i = 1
        while i < len(args):
            opt = args[i].upper()
            if opt == "UNBLOCKING":
                blocking_off = True
            elif opt == "UPGRADE":
                upgrade = True
            elif opt == "FORCE_REINSTALL_REQUIREMENTS":
                force = True
            elif opt in ("ID", "DESCRIPTION"):
                if i + 1 >= len(args):
                    return Err("%s is missing" % opt)
                i += 1
                if opt == "ID":
                    name = args[i]
                    ok = all(c.isalnum() and c.isascii() or c in "-_" for c in name)
                    if not ok:
                        return Err("ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | "
                                   "'-' | '_']")
                else:
                    desc = args[i]
            else:
                break
            i += 1
        req_names = []
        if i < len(args):
            if args[i].upper() != "REQUIREMENTS":
                return Err("Unknown arguments were given: %s" % args[i])
            req_names = args[i + 1:]
        name = name or binascii.hexlify(os.urandom(20)).decode()

        with self.py_lock:
            old = self.sessions.get(name)
            if old is not None and not upgrade:
                return Err("Session %s already exists" % name)
            reqs, needed = self.reqs.for_session(req_names, force)
            if needed:
                with INSTALLING:  # no recipe code imports meanwhile (IMPORT_BARRIER)
                    try:
                        changed = self.reqs.install_session(reqs)
                    except RequirementError as e:
                        return Err(str(e))
                    # Gears resets its module cache after any install; here only when files
                    # changed: re-importing unchanged files under live registrations races.
                    if changed:
                        self._reset_modules()
            ctx = ExecCtx(Session(name, desc, reqs, needed))
            reply = self._run_script(script, ctx)
            if reply is not None:
                return reply
            if ctx.pending:
                if not self._register_on_peers(ctx, old is not None, started):
                    return [Err(MAX_IDLE_REACHED)]
                self._commit(ctx, old)
                return Status("OK")
            if ctx.run_reply is not None:
                self.reqs.add_to_dict(reqs)
                if needed:
                    self.save()  # the requirements outlive the run, in RDB/AOF too
                if blocking_off:
                    return "%s-%d" % (self.cluster.node_id, self.ep_counter)
                return ctx.run_reply
            return Status("OK")

    def _register_on_peers(self, ctx, replace, started):
        """Every other shard registers the same; if one cannot (e.g. not refreshed), none
        does, and the answer comes after Gears' max idle time, as on the real engine."""
        if not self.cluster.peers():
            return True
        payload = {"session": self._session_record(ctx.session, ctx.pending),
                   "replace": replace}
        answers = self.cluster.broadcast("REGISTER", payload)
        if not any(isinstance(a, Exception) for _p, a in answers):
            return True
        for peer, answer in answers:
            if not isinstance(answer, Exception):
                for reg in ctx.pending:
                    try:
                        self.cluster.send(peer, "UNREGISTER", reg.id)
                    except Exception:
                        log.exception("could not withdraw %s from %s", reg.id, peer.port)
        self._idle_until(started, "PythonInstallReqMaxIdleTime")
        return False

    def _idle_until(self, started, setting):
        wait = float(self.config.get(setting) or 0) / 1000.0 - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)

    def _run_script(self, script, ctx):
        """Runs the script; an Err on failure (and nothing of it stays registered)."""
        try:
            code = compile(script, "<string>", "exec")
        except Exception as e:
            return Err("Error type: %s, Value: %s" % (type(e), e))
        self._tls.pyexec = ctx
        try:
            exec(code, runtime.recipe_globals())
        except BaseException:
            return Err(runtime.exec_error_text(sys.exc_info()))
        finally:
            self._tls.pyexec = None
        return None

    def _reset_modules(self):
        """Like Gears after installing requirements: forget modules imported since start
        (C extensions already loaded stay loaded, with the consequences the README notes)."""
        for mod in list(sys.modules):
            if mod not in self.initial_modules:
                del sys.modules[mod]
        import importlib
        importlib.invalidate_caches()

    def _commit(self, ctx, old):
        if old is not None:
            for rid in list(old.registrations):
                self.unregister(rid)
        session = ctx.session
        self.reqs.add_to_dict(session.reqs)
        with self.lock:
            self.sessions[session.name] = session
            for reg in ctx.pending:
                session.registrations.append(reg.id)
                self.registrations[reg.id] = reg
        if old is not None:
            with self.lock:
                listed = {r.name for s in self.sessions.values() for r in s.reqs}
            self.reqs.unlink(old.reqs, listed)
        for reg in ctx.pending:
            reg.start()
        self.save()

    def unregister(self, rid):
        with self.lock:
            reg = self.registrations.pop(rid, None)
            if reg is None:
                return False
            session = reg.session
            if rid in session.registrations:
                session.registrations.remove(rid)
            if not session.registrations and self.sessions.get(session.name) is session:
                del self.sessions[session.name]
        reg.stop()
        self.save()
        return True

    # ------------------------------------------------------------ builder hooks
    def register_builder(self, gb, kwargs):
        mode = kwargs.get("mode", "async")
        if not isinstance(mode, str):
            raise runtime.GearsError("execution mode must be a string")
        if mode not in ("async", "sync", "async_local"):
            raise runtime.GearsError("unknown execution mode")
        prefix = kwargs.get("prefix", "*")
        if not isinstance(prefix, str):
            raise runtime.GearsError("regex argument must be a string")
        if gb.reader == "KeysReader":
            args = self._keys_args(kwargs, prefix)
            cls = KeysRegistration
        elif gb.reader == "StreamReader":
            args = self._stream_args(kwargs, prefix, mode)
            cls = StreamRegistration
        else:
            raise runtime.GearsError("reader does not support register")
        ctx = getattr(self._tls, "pyexec", None)
        session = ctx.session if ctx else Session(
            binascii.hexlify(os.urandom(20)).decode(), None, [], False)
        reg = cls(self, gb.id, gb.desc, mode, list(gb.steps), args, session)
        self._pickle_steps(gb.steps)  # what Gears does when registering: fails the same way
        reg.pickled_steps = cloudpickle.dumps(reg.steps)
        if ctx is not None:
            ctx.pending.append(reg)
        else:  # registered from inside an execution: stand-alone registration
            with self.lock:
                session.registrations.append(reg.id)
                self.sessions[session.name] = session
                self.registrations[reg.id] = reg
            reg.start()
            self.save()
        return reg.id

    @staticmethod
    def _pickle_steps(steps):
        out = []
        for step in steps:
            for fn in step[1:]:
                if not callable(fn):
                    continue
                try:
                    out.append(cloudpickle.dumps(fn))
                except Exception as e:
                    text = str(traceback.format_exception(type(e), e, e.__traceback__.tb_next))
                    name = getattr(fn, "__name__", repr(fn))
                    log.error("registration cannot be serialized (the real engine refuses "
                              "it): callback=%s %s", name, text)
                    raise runtime.GearsError(
                        "Error occured when serialized a python callback, callback=%s "
                        "error=%s" % (name, text)) from None
        return out

    @staticmethod
    def _keys_args(kw, prefix):
        args = {"prefix": prefix, "readValue": True, "eventTypes": None, "keyTypes": None,
                "commands": None}
        if kw.get("eventTypes") is not None:
            try:
                args["eventTypes"] = [e for e in kw["eventTypes"]]
            except TypeError:
                raise runtime.GearsError("given eventTypes is not iterable")
            if not all(isinstance(e, str) for e in args["eventTypes"]):
                raise runtime.GearsError("given event type is not string")
        if kw.get("keyTypes") is not None:
            try:
                args["keyTypes"] = [t for t in kw["keyTypes"]]
            except TypeError:
                raise runtime.GearsError("given keyTypes is not iterable")
            for t in args["keyTypes"]:
                if not isinstance(t, str):
                    raise runtime.GearsError("given key type is not string")
                if t not in KEY_TYPES:
                    raise runtime.GearsError("unknown key type")
        if "readValue" in kw:
            if not isinstance(kw["readValue"], bool):
                raise runtime.GearsError("readValue is not boolean")
            args["readValue"] = kw["readValue"]
        if kw.get("commands") is not None:
            args["commands"] = list(kw["commands"])
            log.warning("KeysReader 'commands' hooks are not supported by the stand-in")
        return args

    @staticmethod
    def _stream_args(kw, prefix, mode):
        def num(name, default, err):
            v = kw.get(name, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise runtime.GearsError(err)
            return int(v)

        policy = kw.get("onFailedPolicy", "continue")
        if not isinstance(policy, str):
            raise runtime.GearsError("onFailedPolicy must be a string (Continue/Abort/Retry)")
        policy = policy.lower()
        if policy not in ("continue", "abort", "retry"):
            raise runtime.GearsError("onFailedPolicy must be Continue/Abort/Retry")
        if mode == "sync" and policy != "continue":
            raise runtime.GearsError("ExecutionMode sync can only be combined with "
                                     "OnFailedPolicy Continue")
        trim = kw.get("trimStream", True)
        if not isinstance(trim, bool):
            raise runtime.GearsError("pyTrimmStream argument must be a boolean")
        return {"prefix": prefix,
                "batchSize": num("batch", 1, "batch argument must be a number"),
                "durationMS": num("duration", 0, "duration argument must be a number"),
                "onFailedPolicy": policy,
                "retryInterval": num("onFailedRetryInterval", 1,
                                     "retryInterval argument must be a number"),
                "trimStream": trim}

    def _reader_records(self, reader, arg, kwargs):
        if reader == "KeysReader":
            read_value = kwargs.get("readValue", True)
            return (self._read_key(k, read_value) for k in self._scan(arg))
        if reader == "KeysOnlyReader":
            return self._scan(arg)
        if reader == "StreamReader":
            return self._read_stream(arg, kwargs.get("fromId", "0-0"))
        if reader == "ShardsIDReader":
            return iter([self.cluster.my_id if self.cluster.active else "1"])
        if reader == "PythonReader":
            return arg()
        raise runtime.GearsError("reader %s is not supported by the stand-in" % reader)

    def run_builder(self, gb, arg, kwargs):
        reader = gb.realReader
        ctx = getattr(self._tls, "pyexec", None)
        started = time.monotonic()
        records = self._reader_records(reader, arg, kwargs)
        if ctx is not None and self.cluster.peers():
            reply = self._distributed_run(gb, reader, arg, kwargs, records, started)
        else:
            results, errors = runtime.run_pipeline(gb.steps, records)
            reply = [[_result(r) for r in results], list(errors)]
        self.record_execution(registered=False)
        if ctx is not None:
            ctx.run_reply = reply
        return None

    def _distributed_run(self, gb, reader, arg, kwargs, records, started):
        """The steps up to the first collect/groupby on every shard (this one first), the
        rest here over all their records."""
        split = next((i for i, step in enumerate(gb.steps) if step[0] in GLOBAL_STEPS),
                     len(gb.steps))
        local, rest = gb.steps[:split], gb.steps[split:]
        results, errors = runtime.run_pipeline(local, records)
        answers = self.cluster.broadcast(
            "RUN", {"reader": reader, "arg": arg, "kwargs": kwargs, "steps": local})
        if any(isinstance(a, PeerUnavailable) for _p, a in answers):
            self._idle_until(started, "ExecutionMaxIdleTime")
            return [[], [MAX_IDLE_REACHED]]
        for _peer, answer in answers:
            if isinstance(answer, Exception):
                errors.append(str(answer))
                continue
            results.extend(answer[0])
            errors.extend(answer[1])
        final, more_errors = runtime.run_pipeline(rest, results)
        return [[_result(r) for r in final], errors + more_errors]

    def _scan(self, pattern):
        cursor = "0"
        while True:
            cursor, keys = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 10000)
            for k in keys:
                yield k.decode("utf-8", "surrogateescape")
            cursor = cursor.decode()
            if cursor == "0":
                return

    def _read_key(self, key, read_value):
        from .readers import read_key_record
        return read_key_record(self.call, key, None, read_value)

    def _read_stream(self, key, from_id):
        reply = self.call("XREAD", "STREAMS", key, from_id)
        if isinstance(reply, ReplyError):
            raise runtime.GearsError(str(reply))
        for entry_id, values in (reply[0][1] if reply else []):
            vals = values or []
            pairs = [(vals[i].decode(), vals[i + 1].decode()) for i in range(0, len(vals), 2)]
            yield {"key": key, "id": entry_id.decode(), "value": dict(reversed(pairs))}


def _result(r):
    if r is None or isinstance(r, (str, bytes, int, float)):
        return r
    if isinstance(r, (list, tuple)):
        return [_result(x) for x in r]
    return str(r)
