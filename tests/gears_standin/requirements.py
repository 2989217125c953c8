"""REQUIREMENTS handling, as RedisGears 1.2 does it: ``pip wheel <req>`` into a directory
per requirement, then ``pip install --force-reinstall --no-index <its wheels>`` for each
requirement in order, into the interpreter environment the stand-in runs in.

Every requirement a session brought stays in the requirements dictionary (and in RDB/AOF)
after its registrations are gone. When Redis loads, Gears reinstalls each stored requirement
from its own wheels, one after another, in its dictionary's order, not in the order any
``REQUIREMENTS`` listed them: ``reinstall_stored`` does the same, sorted by name, so the set
``rgsync`` + ``pymongo==4.7.3`` ends with rgsync's pymongo 4.1.1, as it can on the real engine.

Two shortcuts keep repeated test runs fast, without changing what a client sees:
- a requirement's wheel directory is named after a hash of its name (Gears uses random hex),
  and once complete it is reused instead of calling ``pip wheel`` again;
- ``installed.json`` in the environment records the order requirements were installed in;
  when the requested list equals the tail of that record, installing it again would not
  change anything, so pip is not run.

RG.PYEXPORTREQ / RG.PYIMPORTREQ use Gears' own serialization (see PythonRequirement_Serialize),
so gears-cli's ``export-requirements``/``import-requirements`` zip files round-trip.
"""
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import threading

log = logging.getLogger("gears_standin.requirements")

PY_REQ_VERSION = 2
COMPILED_OS = "linux-x64"  # REDISGEARS_OS_VERSION of the build; only echoed back
RECORD_FILE = "installed.json"
DONE_MARKER = ".standin-complete"


class RequirementError(Exception):
    pass


class Requirement(object):
    def __init__(self, name, base_path):
        self.name = name
        self.base_path = base_path
        self.wheels = []
        self.downloaded = False
        self.installed = False
        self.ref_count = 1
        self.in_dict = False

    def to_str(self):
        wheels = ",".join("'%s'" % w for w in self.wheels)
        return "{'name':'%s', 'basePath':'%s', 'wheels':[%s]}" % (
            self.name, self.base_path, wheels)

    def metadata(self):
        return [
            "GearReqVersion", PY_REQ_VERSION,
            "Name", self.name,
            "IsDownloaded", "yes" if self.downloaded else "no",
            "IsInstalled", "yes" if self.installed else "no",
            "CompiledOs", COMPILED_OS,
            "Wheels", list(self.wheels) if self.downloaded else
            "Requirement was not yet downloaded so wheels are not available",
            "Path", self.base_path,
            "RefCount", self.ref_count,
            "IsInReqDictionary", "yes" if self.in_dict else "no",
        ]


def server_site_dir(venv_dir=None):
    """This stand-in process' own folder for requirements, first on sys.path.

    A real RedisGears has a virtualenv per server, rebuilt at every start; the stand-ins of a
    test run share one Python. Installing each one's requirements into a folder of its own
    keeps one stand-in's force-reinstall from mixing pymongo's files under another one that is
    importing them. Folders of stand-ins no longer running are removed.
    """
    root = os.path.join(venv_dir or sys.prefix, "servers")
    os.makedirs(root, exist_ok=True)
    for name in os.listdir(root):
        if name.isdigit() and name != str(os.getpid()) and not _alive(int(name)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    server = os.path.join(root, str(os.getpid()))
    shutil.rmtree(server, ignore_errors=True)  # a pid reused: start empty, as Gears does
    # laid out like a venv's, so tracebacks name .../lib/python3.7/site-packages/ as Gears'
    site = os.path.join(server, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    os.makedirs(site)
    sys.path.insert(0, site)
    return site


def _uninstall(site, distribution):
    """Remove an installed distribution from `site` as pip would (it does not, with
    --target): the files its RECORD lists, and its dist-info."""
    wanted = re.sub(r"[-_.]+", "_", distribution).lower()
    for info in os.listdir(site):
        if not info.endswith(".dist-info"):
            continue
        name = re.sub(r"[-_.]+", "_", info[:-len(".dist-info")].rsplit("-", 1)[0]).lower()
        if name != wanted:
            continue
        record = os.path.join(site, info, "RECORD")
        if os.path.exists(record):
            with open(record) as f:
                for line in f:
                    path = os.path.normpath(os.path.join(site, line.split(",")[0]))
                    if path.startswith(site + os.sep) and os.path.isfile(path):
                        os.remove(path)
        shutil.rmtree(os.path.join(site, info), ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Requirements(object):
    def __init__(self, venv_dir=None, python=None, site_dir=None):
        self.venv_dir = venv_dir or sys.prefix
        self.python = python or sys.executable
        # where this server's requirements are installed (None: into the venv itself)
        self.site_dir = site_dir
        self.by_name = {}  # Gears' RequirementsDict
        self.changed = False  # whether the last install_all ran pip
        self.lock = threading.RLock()

    # ------------------------------------------------------------ pip
    def _pip(self, args, cwd):
        cmd = [self.python, "-m", "pip"] + args + ["--disable-pip-version-check"]
        log.info("running %s (cwd %s)", " ".join(cmd), cwd)
        # Every stand-in of a test run shares this venv (a real Gears has one per server):
        # one pip at a time across processes, or two force-reinstalls interleave their files.
        with open(os.path.join(self.venv_dir, ".standin-pip.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        out = proc.stdout.decode("utf-8", "replace")
        for line in out.splitlines():
            log.info("pip: %s", line)
        return proc.returncode == 0

    def _base_path(self, name):
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
        return os.path.join(self.venv_dir, "%s_%s" % (name, digest))

    def _list_wheels(self, req):
        return sorted(f for f in os.listdir(req.base_path) if f != DONE_MARKER)

    def download(self, req):
        if req.downloaded:
            return True
        os.makedirs(req.base_path, exist_ok=True)
        if not os.path.exists(os.path.join(req.base_path, DONE_MARKER)):
            if not self._pip(["wheel", req.name], cwd=req.base_path):
                return False
            open(os.path.join(req.base_path, DONE_MARKER), "w").close()
        req.wheels = self._list_wheels(req)
        req.downloaded = True
        return True

    def _record(self):
        try:
            with open(os.path.join(self.site_dir or self.venv_dir, RECORD_FILE)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return []

    def _save_record(self, names):
        record = (self._record() + list(names))[-50:]
        with open(os.path.join(self.site_dir or self.venv_dir, RECORD_FILE), "w") as f:
            json.dump(record, f)

    def install_all(self, reqs):
        """Install in order; skipped when that would not change the environment."""
        names = [r.name for r in reqs]
        self.changed = False
        if names and self._record()[-len(names):] == names:
            log.info("requirements %s already installed in this order, skipping pip", names)
            for r in reqs:
                r.installed = True
            return True
        self.changed = True
        for r in reqs:
            wheels = [w for w in r.wheels if w.endswith((".whl", ".tar.gz", ".zip"))]
            target = []
            if self.site_dir:
                for wheel in wheels:
                    _uninstall(self.site_dir, wheel.split("-")[0])
                target = ["--target", self.site_dir, "--upgrade"]
            ok = self._pip(["install", "--no-cache-dir", "--force-reinstall", "--no-index"]
                           + target + wheels, cwd=r.base_path)
            r.installed = ok
            if not ok:
                return False
            self._save_record([r.name])
        return True

    # ------------------------------------------------------------ sessions
    def for_session(self, names, force=False):
        """-> (requirements, installation_needed), like PythonSessionCtx_CreateWithId."""
        with self.lock:
            if not force:
                found = [self.by_name.get(n) for n in names]
                if all(found):
                    for r in found:
                        r.ref_count += 1
                    return found, False
            return [Requirement(n, self._base_path(n)) for n in names], True

    def install_session(self, reqs):
        """Download + install; raises RequirementError with Gears' texts. True when pip ran
        (False: the environment already ended with these, in this order)."""
        with self.lock:
            for r in reqs:
                if not self.download(r):
                    raise RequirementError("Could not satisfy requirements (look at redis log "
                                           "file for more information)")
            if not self.install_all(reqs):
                raise RequirementError("Failed installing requirements on shard, please check "
                                       "shard logs for more details.")
            return self.changed

    def add_to_dict(self, reqs):
        with self.lock:
            for r in reqs:
                if not r.in_dict:
                    r.ref_count += 1
                    r.in_dict = True
                    old = self.by_name.get(r.name)
                    if old is not None and old is not r:
                        old.in_dict = False
                    self.by_name[r.name] = r

    def unlink(self, reqs, still_listed):
        """Like PythonSessionCtx_Unlink when a session is replaced (UPGRADE): each of its
        requirements that no other session lists leaves the dictionary (and RDB/AOF)."""
        with self.lock:
            for r in reqs:
                if r.name not in still_listed and self.by_name.get(r.name) is r:
                    del self.by_name[r.name]
                    r.in_dict = False

    def dump(self):
        with self.lock:
            return [r.metadata() for r in self.by_name.values()]

    def stored(self):
        """The names in the requirements dictionary (what RDB/AOF keeps)."""
        with self.lock:
            return list(self.by_name)

    def reinstall_stored(self, names):
        """Like Gears loading RDB/AOF: reinstall every stored requirement from its own wheels,
        with force, in load order (here: sorted by name), and put it back in the dictionary."""
        with self.lock:
            reqs = []
            for name in load_order(names):
                req = Requirement(name, self._base_path(name))
                if not self.download(req):
                    log.error("stored requirement %s has no wheels; not reinstalled", name)
                    continue
                reqs.append(req)
            log.info("reinstalling stored requirements at load, in this order: %s",
                     [r.name for r in reqs])
            if not self.install_all(reqs):
                log.error("Failed install requirement on shard, check shard log for more info.")
            self.add_to_dict(reqs)

    # ------------------------------------------------------------ export / import
    def export(self, name):
        with self.lock:
            req = self.by_name.get(name)
            if req is None:
                raise RequirementError("requirement does not exists")
            if not req.downloaded:
                raise RequirementError("Requirement was not installed yet")
            out = [_long(PY_REQ_VERSION), _string(req.name), _string(COMPILED_OS),
                   _long(1 if req.in_dict else 0), _long(len(req.wheels))]
            for w in req.wheels:
                with open(os.path.join(req.base_path, w), "rb") as f:
                    data = f.read()
                out += [_string(w), _buffer(data)]
            data = b"".join(out)
            chunk = 10 * 1024 * 1024
            return req.metadata(), [data[i:i + chunk] for i in range(0, len(data), chunk)]

    def import_(self, data):
        rd = _Reader(data)
        try:
            version = rd.long()
            if version != PY_REQ_VERSION:
                raise RequirementError("Bad serialization format on reading requirement version")
            name = rd.string()
            rd.string()  # compiled os
            in_dict = rd.long()
            wheels = [(rd.string(), rd.buffer()) for _ in range(rd.long())]
        except (struct.error, IndexError, UnicodeDecodeError):
            raise RequirementError("Failed deserialize requirement")
        with self.lock:
            req = self.by_name.get(name) or Requirement(name, self._base_path(name))
            if not req.downloaded:
                os.makedirs(req.base_path, exist_ok=True)
                for fname, blob in wheels:
                    with open(os.path.join(req.base_path, os.path.basename(fname)), "wb") as f:
                        f.write(blob)
                open(os.path.join(req.base_path, DONE_MARKER), "w").close()
                req.wheels = self._list_wheels(req)
                req.downloaded = True
            if not self.install_all([req]):
                raise RequirementError("On RedisGearsPy_ImportRequirementInternal, Failed install "
                                       "requirement on shard, check shard log for more info.")
            if in_dict:
                self.add_to_dict([req])
            return req


def load_order(names):
    """The order stored requirements are reinstalled in when Redis loads: Gears' is its
    dictionary's (a hash order, nothing a recipe chooses); the stand-in's is by name."""
    return sorted(set(names))


# Gears_BufferWriter: native long, strings with their NUL, buffers prefixed by a long
def _long(v):
    return struct.pack("<q", v)


def _buffer(b):
    return _long(len(b)) + b


def _string(s):
    return _buffer(s.encode("utf-8") + b"\0")


class _Reader(object):
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def long(self):
        (v,) = struct.unpack_from("<q", self.data, self.pos)
        self.pos += 8
        return v

    def buffer(self):
        n = self.long()
        if n < 0 or self.pos + n > len(self.data):
            raise IndexError("short buffer")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def string(self):
        return self.buffer().rstrip(b"\0").decode("utf-8")
