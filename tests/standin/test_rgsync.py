"""The stock rgsync RGJSONWriteBehind + MongoConnector through the stand-in, against the
transcripts recorded on RedisGears 1.2.13 (first run on a machine pip-installs rgsync and
pymongo 4.7.3 into the stand-in's environment, ~15 s; later runs reuse them)."""

import ast

import pymongo
import pytest
from normalize import norm

from conftest import Stack, transcript
from testbench.polling import wait_for

RECIPE = """from rgsync import RGJSONWriteBehind, RGJSONWriteThrough
from rgsync.Connectors import MongoConnector, MongoConnection
connection = MongoConnection('', '', '', '', 'mongodb://127.0.0.1:%d/')
movieConnector = MongoConnector(connection, 'movies_db', 'movies', 'movieId')
RGJSONWriteBehind(GB, keysPrefix='MovieEntity', connector=movieConnector, \
name='MoviesWriteBehind', version='%s')
"""
REQS = ["REQUIREMENTS", "rgsync", "pymongo==4.7.3"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("rgsync"))  # fresh: no requirement installed yet
    yield s
    s.close()


def field(reg, name):
    data = reg[7]
    return data[data.index(name) + 1]


def deploy(r, mongo_port, version):
    try:
        return r.execute_command("RG.PYEXECUTE", RECIPE % (mongo_port, version), *REQS)
    except Exception as e:
        return {"error": str(e)}


def test_lifecycle_matches_gears(stack, mongo_port):
    r = stack.client(socket_timeout=300)
    assert deploy(r, mongo_port, "1.0.0") == transcript(
        "pyexecute-rgsync-json-writebehind.json")["reply"]

    r.execute_command("JSON.SET", "MovieEntity:1", "$", '{"movieId": "1", "title": "Heat"}')
    regs = wait_for(lambda: (lambda d: d if field(d[0], "numSuccess") == 2 else None)(
        r.execute_command("RG.DUMPREGISTRATIONS")), timeout=20)
    expected = transcript("dumpregistrations-rgsync-json-writebehind.json")
    assert norm(regs) == norm(expected["reply"])
    streams = r.keys("_movies-stream-*")
    assert len(streams) == 1 and streams[0].endswith("-{06S}")
    docs = pymongo.MongoClient(port=mongo_port).movies_db.movies.find({}, {"_id": 0})
    assert list(docs) == [{"movieId": "1", "title": "Heat"}]

    same = transcript("pyexecute-rgsync-same-version.json")
    assert norm(deploy(r, mongo_port, "1.0.0")) == norm(same["reply"])

    assert deploy(r, mongo_port, "1.0.1") == "OK"
    assert r.keys("_movies-stream-*") == streams  # the new stream appears on the first write

    case = transcript("resp3-vs-resp2-dumpregistrations.json")
    r3 = stack.client(protocol=3)
    assert norm(r3.execute_command("RG.DUMPREGISTRATIONS")) == norm(
        ast.literal_eval(case["reply_repr_resp3"]))
    assert norm(r.execute_command("RG.DUMPREGISTRATIONS")) == norm(
        ast.literal_eval(case["reply_repr_resp2"]))
    run = r3.execute_command("RG.PYEXECUTE", "GB().map(lambda x: x['key']).run('MovieEntity:*')")
    assert run == ast.literal_eval(case["run_reply_repr_resp3"])


def test_apostrophe_stalls_the_stream(stack, mongo_port):
    r = stack.client(socket_timeout=300)
    stack.reset()
    pymongo.MongoClient(port=mongo_port).movies_db.movies.delete_many({})
    assert deploy(r, mongo_port, "2.0.0") == "OK"
    r.execute_command("JSON.SET", "MovieEntity:2", "$",
                      '{"movieId": "2", "title": "Schindler\'s List"}')
    r.execute_command("JSON.SET", "MovieEntity:3", "$", '{"movieId": "3", "title": "Alien"}')

    def stream_reg():
        return [g for g in r.execute_command("RG.DUMPREGISTRATIONS")
                if g[3] == "StreamReader"][0]

    wait_for(lambda: field(stream_reg(), "numFailures") >= 2, timeout=15)  # retried after 5 s
    reg = stream_reg()
    assert field(reg, "status") == "WAITING_FOR_RETRY_ON_FAILURE"
    assert "AttributeError: 'str' object has no attribute 'items'" in field(reg, "lastError")
    (stream,) = r.keys("_movies-stream-*")
    assert r.xlen(stream) == 2
    assert pymongo.MongoClient(port=mongo_port).movies_db.movies.count_documents({}) == 0


def test_requirement_export_import_offline(stack, tmp_path_factory, mongo_port):
    r = stack.client()
    meta, chunks = stack.client(decode_responses=False).execute_command(
        "RG.PYEXPORTREQ", "pymongo==4.7.3")
    names = [m.decode() if isinstance(m, bytes) else m for m in meta[0::2]]
    assert names == ["GearReqVersion", "Name", "IsDownloaded", "IsInstalled", "CompiledOs",
                     "Wheels", "Path", "RefCount", "IsInReqDictionary"]
    other = Stack(tmp_path_factory.mktemp("import"))
    try:
        o = other.client()
        assert o.execute_command("RG.PYDUMPREQS") == []
        assert o.execute_command("RG.PYIMPORTREQ", *chunks) == "OK"
        (req,) = o.execute_command("RG.PYDUMPREQS")
        assert req[3] == "pymongo==4.7.3" and req[7] == "yes"
        o.execute_command("RG.PYEXECUTE", "GB('StreamReader').register(prefix='x')",
                          "REQUIREMENTS", "pymongo==4.7.3")
        pd = o.execute_command("RG.DUMPREGISTRATIONS")[0][9]
        assert "'isInstallationNeeded':0" in pd
        assert "pip wheel" not in other.log.read_text()
    finally:
        other.close()
    assert r.ping()
