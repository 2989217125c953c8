"""Client-side CPU of one sink's WriteData for a batch, outside RedisGears (Python 3.7).

Run by bench/p7_sink_cpu.py with the Python and packages Gears uses (3.7, pymongo 4.7.3,
rgsync 1.2.0): `python sink_cpu_worker.py SPEC_JSON`; prints one JSON line. Standalone on
purpose (Python 3.7 syntax, no bench imports): it loads recipes/common/mongo_sink.py and
rgsync's MongoConnector by file, with a stub `redisgears` module (they import it).
"""
import importlib.util
import json
import os
import statistics
import sys
import time
import types


def stub_redisgears():
    module = types.ModuleType('redisgears')

    def execute(*args):
        raise RuntimeError('no Redis outside Gears: %r' % (args,))

    module.executeCommand = execute
    module.log = lambda *a, **k: None
    module.getMyHashTag = lambda: '06S'
    sys.modules['redisgears'] = module


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sinks(spec):
    stub_redisgears()
    ours = load('wbload_mongo_sink', spec['mongo_sink'])
    rgsync_dir = spec['rgsync_dir']
    package = types.ModuleType('rgsync')  # not its __init__: that imports every connector
    package.__path__ = [rgsync_dir]
    sys.modules['rgsync'] = package
    load('rgsync.common', os.path.join(rgsync_dir, 'common.py'))
    stock = load('rgsync_mongo', os.path.join(rgsync_dir, 'Connectors', 'mongo_connector.py'))
    url, db = spec['mongo_url'], spec['database']
    return {
        'ours': (ours.MongoSink(url, db, 'cpu_ours', 'movieId'), True),
        'stock': (stock.MongoConnector(stock.MongoConnection('', '', '', '', url), db,
                                       'cpu_stock', 'movieId'), False),
    }


def records(docs, first, original_key):
    out = []
    for i, text in enumerate(docs):
        key_id = str(first + i)
        value = {'movieId': key_id, '#': '=', 'redisgears': text}
        if original_key:
            value['_original_key'] = 'MovieEntity:' + key_id
        out.append({'id': '1-%d' % i, 'key': '_movies-stream-x', 'value': value})
    return out


def main():
    spec = json.loads(sys.argv[1])
    docs = spec['docs']
    out = {'python': sys.version.split()[0]}
    import pymongo
    out['pymongo'] = pymongo.version
    for label, (sink, original_key) in sinks(spec).items():
        cpu, wall = [], []
        for b in range(spec['batches'] + 1):  # batch 0 connects: not counted
            batch = records(docs, (b % 5) * len(docs), original_key)  # upserts: new, then updates
            c0, w0 = time.process_time(), time.perf_counter()
            sink.WriteData(batch, 'redisgears')
            c1, w1 = time.process_time(), time.perf_counter()
            if b:
                cpu.append(c1 - c0)
                wall.append(w1 - w0)
        out[label] = {
            'cpu_us_per_doc': statistics.median(cpu) / len(docs) * 1e6,
            'wall_ms_per_batch': statistics.median(wall) * 1e3,
            'cpu_ms_per_batch_rounds': [round(c * 1e3, 2) for c in cpu],
        }
    print(json.dumps(out))


if __name__ == '__main__':
    main()
