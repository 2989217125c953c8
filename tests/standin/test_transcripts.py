"""Every case in shared/gears/transcripts (recorded on RedisGears 1.2.13), replayed against
the stand-in.  The rgsync cases live in test_rgsync.py."""


import pytest
import redis
from normalize import norm

from conftest import transcript
from testbench.polling import wait_for

PROBE_KEYS = transcript("pyexecute-register-ok.json")["command"][1]
PROBE_STREAM = transcript("pyexecute-register-stream.json")["command"][1]


def reply_of(client, command):
    try:
        return client.execute_command(*command)
    except redis.ResponseError as e:
        return {"error": str(e)}


@pytest.mark.parametrize("name", [
    "configget.json",
    "infocluster.json",
    "pyexecute-syntax-error.json",
    "pyexecute-exception-at-top.json",
    "pyexecute-no-run-or-register.json",
    "unknown-rg-command.json",
    "unregister-unknown.json",
])
def test_plain_replies(r, name):
    case = transcript(name)
    assert reply_of(r, case["command"]) == case["reply"]


def test_bad_requirement(r):
    case = transcript("pyexecute-bad-requirement.json")
    assert reply_of(r, case["command"]) == case["reply"]
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []


def test_failed_pyexecute_leaves_no_registration(r):
    code = PROBE_KEYS + "\nraise Exception('after register')"
    reply = reply_of(r, ["RG.PYEXECUTE", code])
    assert "Exception: after register" in reply["error"]
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []


def test_unpicklable_registration_is_refused(r):
    code = "import threading\nlock = threading.Lock()\nGB().foreach(lambda r: lock).register()"
    err = reply_of(r, ["RG.PYEXECUTE", code])["error"]
    assert err.startswith("['Traceback (most recent call last):\\n', '  File \"<string>\", line 3")
    assert "gears.error: Error occured when serialized a python callback, callback=<lambda>" in err
    assert "engine.py" not in err
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []


@pytest.mark.parametrize("name", ["pyexecute-run-records.json", "pyexecute-run-keys.json",
                                  "pyexecute-run-error-in-step.json"])
def test_batch_runs(r, name):
    r.set("person:1", "a")
    r.set("person:2", "b")
    case = transcript(name)
    results, errors = reply_of(r, case["command"])
    # SCAN order follows Redis' randomly seeded hash table: it varies on the real one too
    assert (sorted(results), errors) == (sorted(case["reply"][0]), case["reply"][1])


def test_keysreader_records(r):
    assert reply_of(r, ["RG.PYEXECUTE", PROBE_KEYS]) == transcript(
        "pyexecute-register-ok.json")["reply"]
    # mode='sync': the record is written before the writing client gets its reply
    r.execute_command("JSON.SET", "probe:1", "$", '{"a": 1}')
    assert r.get("__rec__") == transcript("keysreader-record-json-set.json")["reply"]
    r.set("probe:2", "v")
    assert r.get("__rec__") == transcript("keysreader-record-set.json")["reply"]
    r.delete("probe:1")
    assert r.get("__rec__") == transcript("keysreader-record-del.json")["reply"]


def test_streamreader_record_and_trim(r):
    assert reply_of(r, ["RG.PYEXECUTE", PROBE_STREAM]) == "OK"
    r.xadd("s:1", {"f1": "v1", "f2": "v2"})
    rec = wait_for(lambda: r.get("__srec__"))
    assert norm(rec) == norm(transcript("streamreader-record.json")["reply"])
    case = transcript("streamreader-after-trim.json")
    wait_for(lambda: r.execute_command(*case["command"]) == case["reply"])


def test_dumpregistrations_and_executions(r):
    r.execute_command("RG.PYEXECUTE", PROBE_KEYS)
    r.execute_command("JSON.SET", "probe:1", "$", '{"a": 1}')
    r.set("probe:2", "v")
    r.delete("probe:1")
    r.execute_command("RG.PYEXECUTE", PROBE_STREAM)
    r.xadd("s:1", {"f1": "v1", "f2": "v2"})

    def settled():
        regs = r.execute_command("RG.DUMPREGISTRATIONS")
        return regs if regs[0][7][5] == 2 else None  # StreamReader's numSuccess

    regs = wait_for(settled)
    assert norm(regs) == norm(transcript("dumpregistrations.json")["reply"])

    execs = r.execute_command("RG.DUMPEXECUTIONS")
    shape = [e[:1] + ["<ID>"] + e[2:] for e in norm(transcript("dumpexecutions.json")["reply"])]
    assert shape[0] in [norm(e) for e in execs]
    assert all(e[0] == "executionId" and e[2:4] == ["status", "done"] for e in execs)


def test_unregister(r):
    r.execute_command("RG.PYEXECUTE", PROBE_STREAM)
    rid = r.execute_command("RG.DUMPREGISTRATIONS")[0][1]
    case = transcript("unregister-ok.json")
    assert reply_of(r, ["RG.UNREGISTER", rid]) == case["reply"]
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
    assert reply_of(r, ["RG.UNREGISTER", rid]) == {"error": "execution is not registered"}


def test_pydumpreqs_and_pystats(r):
    assert isinstance(r.execute_command("RG.PYDUMPREQS"), list)
    stats = r.execute_command("RG.PYSTATS")
    assert stats[0::2] == transcript("pystats.json")["reply"][0::2]
    assert all(isinstance(v, int) for v in stats[1::2])


def test_resp3_client_gets_doubles_and_nulls(r3):
    r3.execute_command("RG.PYEXECUTE", PROBE_KEYS)
    reg = r3.execute_command("RG.DUMPREGISTRATIONS")[0]
    data = reg[7]
    assert data[data.index("avgRunDurationMS") + 1] == 0.0
    assert isinstance(data[data.index("avgRunDurationMS") + 1], float)
    assert data[data.index("lastError") + 1] is None
    r3.set("person:1", "a")
    assert r3.execute_command("RG.PYEXECUTE", "GB().map(lambda x: x['key']).run('person:*')") \
        == [["person:1"], []]


def test_forwarded_replies_keep_pipeline_order(r):
    r.execute_command("RG.PYEXECUTE", PROBE_KEYS)  # a sync registration: fences are on
    pipe = r.pipeline(transaction=False)
    pipe.set("probe:9", "x")
    pipe.execute_command("RG.INFOCLUSTER")
    pipe.get("probe:9")
    pipe.execute_command("RG.NOSUCH", "a")
    pipe.incr("n")
    out = pipe.execute(raise_on_error=False)
    assert out[:3] == [True, "no cluster mode", "x"]
    assert "unknown command 'RG.NOSUCH'" in str(out[3])
    assert out[4] == 1
    assert r.get("__rec__") == "{'event': 'set', 'key': 'probe:9', 'type': 'string', 'value': 'x'}"
    with r.pipeline(transaction=True) as tx:
        tx.set("probe:10", "y").get("probe:10")
        assert tx.execute() == [True, "y"]
    assert "probe:10" in r.get("__rec__")


def test_pubsub_passthrough(standin_stack, r):
    sub = standin_stack.client().pubsub()
    sub.subscribe("chan")
    wait_for(lambda: sub.get_message(timeout=0.1))
    r.publish("chan", "hello")
    msg = wait_for(lambda: sub.get_message(timeout=0.1))
    assert msg["data"] == "hello"
    sub.close()


def test_resp3_forwarded_replies_are_relayed(r3):
    r3.hset("h", mapping={"a": "1"})
    assert r3.hgetall("h") == {"a": "1"}
    r3.execute_command("JSON.SET", "j", "$", '{"x": 1.5}')
    assert r3.execute_command("JSON.GET", "j") == '{"x":1.5}'


def test_registrations_survive_an_upstream_restart(tmp_path_factory):
    from conftest import Stack, start_redis

    stack = Stack(tmp_path_factory.mktemp("restart"))
    try:
        r = stack.client()
        r.execute_command("RG.PYEXECUTE", PROBE_KEYS)
        stack.redis_proc.terminate()
        stack.redis_proc.wait(10)
        stack.redis_port, stack.redis_proc = start_redis(stack.tmp, port=stack.redis_port)

        def written():
            try:
                r.set("probe:1", "v")
                return r.get("__rec__")
            except redis.ConnectionError:
                return None

        assert "'key': 'probe:1'" in wait_for(written)
        assert len(r.execute_command("RG.DUMPREGISTRATIONS")) == 1
    finally:
        stack.close()


def test_registrations_survive_a_standin_restart(tmp_path_factory):
    from conftest import Stack, start_standin

    stack = Stack(tmp_path_factory.mktemp("standin-restart"))
    try:
        r = stack.client()
        r.execute_command("RG.PYEXECUTE", PROBE_KEYS)
        r.execute_command("RG.PYEXECUTE", PROBE_STREAM)
        before = [g[1] for g in r.execute_command("RG.DUMPREGISTRATIONS")]
        stack.proc.terminate()
        stack.proc.wait(10)
        upstream = redis.Redis(port=stack.redis_port, decode_responses=True)
        assert upstream.keys("*") == []  # the saved state is not in the data's database
        upstream.xadd("s:1", {"f1": "while-down"})
        stack.url, stack.proc = start_standin("127.0.0.1", stack.redis_port, str(stack.log))
        r = stack.client()
        assert [g[1] for g in r.execute_command("RG.DUMPREGISTRATIONS")] == before
        assert "while-down" in wait_for(lambda: r.get("__srec__"))
        r.set("probe:1", "v")
        assert "'key': 'probe:1'" in r.get("__rec__")
    finally:
        stack.close()


def test_command_lists_gears_commands(r):
    # as on RedisGears 1.2.13: module commands without keys (byte-compared with a real one)
    info = r.execute_command("COMMAND", "INFO", "rg.pyexecute", "get")
    assert info["rg.pyexecute"]["flags"] == ["readonly", "module"]
    assert (info["rg.pyexecute"]["first_key_pos"], info["rg.pyexecute"]["arity"]) == (0, -1)
    assert info["get"]["first_key_pos"] == 1
    assert "rg.refreshcluster" in r.command_list(module="rg")
    assert {"rg.pyexecute", "get"} <= set(r.command())
