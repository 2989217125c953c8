"""`python -m bench.ideas.lazy_read OUTDIR`: a copy of recipes/ with the "lazy read" idea.

The idea, for the synchronous part (the KeysReader runs inside every JSON.SET):
ours does one JSON.GET and one XADD carrying the whole document per write. Here the
KeysReader only XADDs *which* key changed; the StreamReader (asynchronous, off the write
path) reads the current documents of its batch with one JSON.MGET just before the sink
writes them; a key that is gone becomes a delete, one that is not JSON a dead letter. Still
RGJSONWriteBehind's model: the same two registrations, stream, batches and sink.

Measure it beside ours with
    python -m bench.ideas.lazy_read /tmp/wbidea
    python -m bench --variant lazy-read=/tmp/wbidea/movies.py ...

It patches the text of recipes/common/json_write_behind.py and fails loudly when that file
no longer has the shape it expects.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

APPEND_CHANGE = '''        def append_change(record):
            # IDEA (bench only): no JSON.GET here; the stream says which key changed.
            key = record['key']
            execute('XADD', get_stream_name(table), '*', '_original_key', key,
                    key_field, key[id_start:], '#', '=')

'''

READ_CURRENT = '''

def _read_current(records, dataKey):
    """IDEA: each change gets its key's document as it is now (one JSON.MGET per batch);
    a key that is gone becomes a delete, one that is not JSON a dead letter."""
    keys = []
    for record in records:
        key = record['value'].get('_original_key')
        if key is not None and key not in keys:
            keys.append(key)
    current = dict(zip(keys, execute('JSON.MGET', *(keys + ['.'])))) if keys else {}
    for record in records:
        value = record['value']
        key = value.get('_original_key')
        document = current.get(key)
        if document is None and key is not None and execute('EXISTS', key):
            value['#'] = '='  # there, but not JSON: the sink dead-letters it with the reason
            value['_error'] = 'not a JSON document (type %s)' % execute('TYPE', key)
        elif document is None:
            value['#'] = '~'
            value.pop(dataKey, None)
        else:
            value['#'] = '='
            value[dataKey] = document
'''


def patch(text: str) -> str:
    start = text.index("        def append_change(record):")
    end = text.index("        def write_batch(records):")
    text = text[:start] + APPEND_CHANGE + text[end:]
    call = "            connector.WriteData(records, dataKey)\n"
    if text.count(call) != 1:
        raise ValueError("json_write_behind.py changed shape: cannot place _read_current")
    text = text.replace(call, "            _read_current(records, dataKey)\n" + call)
    return text + READ_CURRENT


def make(out: Path) -> Path:
    """Copy recipes/ to `out`, patched; the path of the movies recipe in it."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(RECIPES, out, ignore=shutil.ignore_patterns("__pycache__"))
    module = out / "common" / "json_write_behind.py"
    module.write_text(patch(module.read_text()))
    return out / "movies.py"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make(Path(sys.argv[1])))
