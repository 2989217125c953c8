"""Make stand-in replies and recorded RedisGears 1.2.13 replies comparable: ids, session
names, uuids, stream ids, install paths and timings differ from run to run."""

import re

TIMING = {"lastRunDurationMS", "totalRunDurationMS", "avgRunDurationMS",
          "lastEstimatedLagMS", "avgEstimatedLagMS"}

SUBS = [
    (re.compile(r"0{40}-\d+"), "<ID>"),
    (re.compile(r"'sessionName':'[0-9a-f]{40}'"), "'sessionName':'<SESSION>'"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<UUID>"),
    (re.compile(r"\b\d{13}-\d+\b"), "<STREAM-ID>"),
    (re.compile(r"'basePath':'[^']*/([^'/]+)_[0-9a-f]{10}'"), r"'basePath':'<gears-venv>/\1_<H>'"),
    (re.compile(r'"[^"]*(/lib/python3\.7/site-packages/)'), r'"<gears-venv>\1'),
]
WHEELS = re.compile(r"'wheels':\[([^\]]*)\]")


def norm_str(s):
    for pattern, repl in SUBS:
        s = pattern.sub(repl, s)
    return WHEELS.sub(lambda m: "'wheels':[{}]".format(",".join(sorted(m.group(1).split(",")))), s)


def norm(x):
    """Recursively normalise; timing values become the name of their type."""
    if isinstance(x, list):
        out = []
        for i, v in enumerate(x):
            if i and isinstance(x[i - 1], str) and x[i - 1] in TIMING:
                out.append(type(v).__name__)
            else:
                out.append(norm(v))
        return out
    if isinstance(x, dict):
        return {k: norm(v) for k, v in x.items()}
    if isinstance(x, str):
        return norm_str(x)
    return x


RUNID_KEYS = {"MyRunId", "runid"}
NODE_COUNTER = re.compile(r"(<NODE\d>)-\d+")


def cluster_norm(x, ids, ports):
    """norm() for cluster replies: node ids become <NODEi>, ports <PORTi> (i = the node's
    index in slot order), run ids <RUNID> (a nil run id stays nil)."""
    def text(v):
        for node_id, i in ids.items():
            v = v.replace(node_id, f"<NODE{i}>")
        for port, i in ports.items():
            v = v.replace(f"127.0.0.1:{port}", f"127.0.0.1:<PORT{i}>")
        return norm_str(NODE_COUNTER.sub(r"\1-<N>", v))

    def walk(v):
        if isinstance(v, list):
            out = []
            for i, item in enumerate(v):
                prev = v[i - 1] if i and isinstance(v[i - 1], str) else None
                if prev in RUNID_KEYS and isinstance(item, str):
                    out.append("<RUNID>")
                elif prev == "port" and isinstance(item, int):
                    out.append(f"<PORT{ports.get(item)}>")
                elif prev in TIMING:
                    out.append(type(item).__name__)
                else:
                    out.append(walk(item))
            return out
        if isinstance(v, dict):
            return {k: walk(item) for k, item in v.items()}
        if isinstance(v, str):
            return text(v)
        return v

    return walk(x)
