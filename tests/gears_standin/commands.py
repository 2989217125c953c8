"""COMMAND, COMMAND INFO / COUNT / LIST with RedisGears' own commands added, as a Redis with the
module loaded lists them (seen on 1.2.13).  Cluster clients (redis-py's RedisCluster) read
COMMAND to route: an RG.* command has no keys, so they ask for target nodes, as with the real
engine, instead of calling it unknown."""
import hiredis

from .resp import ReplyError

# name: (flags, first key, last key, step), as COMMAND INFO shows them on RedisGears 1.2.13
_PLAIN = ("readonly", "module")
GEARS_COMMANDS = dict(
    [(n, (_PLAIN, 0, 0, 0)) for n in (
        "RG.INNERUNREGISTER", "rg.pyimportreq", "rg.dumpplugins", "RG.CLUSTERSETFROMSHARD",
        "rg.configget", "rg.pauseregistrations", "rg.configset", "rg.dumpexecutions",
        "rg.abortexecution", "RG.INNERMSGCOMMAND", "rg.getresultsblocking", "rg.getexecution",
        "rg.infocluster", "rg.networktest", "rg.hello", "RG.PYIMPORTRETINTERNAL",
        "rg.dumpregistrations", "rg.pyexecute", "rg.pystats", "rg.clearregistrationsstats",
        "rg.dropexecution", "rg.pydumpreqs", "rg.unregister", "rg.refreshcluster",
        "rg.pyprofile", "rg.pyexportreq", "rg.clusterset", "RG.INNERREGISTER",
        "rg.unpauseregistrations", "rg.pyexecuteremote", "rg.getresults", "rg.pydumpsessions",
        "rg.pyfreeinterpreter")]
    + [("RG.INNERHOOK", (_PLAIN + ("movablekeys",), 0, 0, 0)),
       ("rg.trigger", (_PLAIN + ("movablekeys",), 0, 0, 0)),
       # (its key specification is left out)
       ("rg.triggeronkey", (_PLAIN, 2, 2, 1))])
_BY_LOWER = {n.lower(): n for n in GEARS_COMMANDS}


def _entry(name, resp3):
    flags, first, last, step = GEARS_COMMANDS[name]
    agg = b"~" if resp3 else b"*"
    out = [b"*10\r\n$%d\r\n%s\r\n:-1\r\n%s%d\r\n" % (len(name), name.encode(), agg, len(flags))]
    out += [b"+%s\r\n" % f.encode() for f in flags]
    out.append(b":%d\r\n:%d\r\n:%d\r\n" % (first, last, step))
    out.append(agg + b"0\r\n" + agg + b"0\r\n" + agg + b"0\r\n" + agg + b"0\r\n")
    return b"".join(out)


def _elements(raw):
    """The raw bytes of each element of an array reply."""
    header, _, rest = raw.partition(b"\r\n")
    count = int(header[1:])
    out = []
    reader = hiredis.Reader(replyError=ReplyError)
    pos = 0
    piece_start = 0
    while len(out) < count:
        end = rest.index(b"\r\n", pos) + 2
        reader.feed(rest[pos:end])
        pos = end
        if reader.gets() is not False:
            out.append(rest[piece_start:pos])
            piece_start = pos
    return out


def _array(elements):
    return b"*%d\r\n" % len(elements) + b"".join(elements)


def is_command_introspection(cmd):
    if cmd[0].upper() != b"COMMAND":
        return False
    return len(cmd) == 1 or cmd[1].upper() in (b"COUNT", b"INFO", b"LIST")


def patched(cmd, forward, resp3):
    """The reply to COMMAND [COUNT|INFO ...|LIST] with Gears' commands; `forward(cmd)` gives
    upstream's raw reply."""
    sub = cmd[1].upper() if len(cmd) > 1 else b""
    if sub == b"COUNT":
        raw = forward(cmd)
        return b":%d\r\n" % (int(raw[1:].strip()) + len(GEARS_COMMANDS)) if raw[:1] == b":" \
            else raw
    if sub == b"LIST":
        if len(cmd) > 2:
            filt = [a.lower() for a in cmd[2:]]
            if filt[:2] == [b"filterby", b"module"] and len(filt) == 3:
                names = list(GEARS_COMMANDS) if filt[2] == b"rg" else []
                return _array([b"$%d\r\n%s\r\n" % (len(n), n.encode()) for n in names]) \
                    if names else forward(cmd)
            return forward(cmd)
        raw = forward(cmd)
        return _array(_elements(raw) + [b"$%d\r\n%s\r\n" % (len(n), n.encode())
                                        for n in GEARS_COMMANDS])
    if sub == b"INFO" and len(cmd) > 2:
        names = cmd[2:]
        ours = [_BY_LOWER.get(n.decode("utf-8", "replace").lower()) for n in names]
        others = [n for n, o in zip(names, ours) if o is None]
        theirs = iter(_elements(forward([b"COMMAND", b"INFO"] + others)) if others else [])
        return _array([_entry(o, resp3) if o else next(theirs) for o in ours])
    raw = forward(cmd)  # COMMAND, or COMMAND INFO without names: every command
    if raw[:1] != b"*":
        return raw
    return _array(_elements(raw) + [_entry(n, resp3) for n in GEARS_COMMANDS])
