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
