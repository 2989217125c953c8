"""At load the stand-in reinstalls the requirements it keeps as RedisGears 1.2.13 does (measured
on the real engine, README "Guarantees"): every requirement a session brought stays stored
after its registrations are gone; each is reinstalled from its own wheels, with force, in an
order of the engine's own (here: by name), not in the order REQUIREMENTS listed them; and
replacing (UPGRADE) the only session listing one drops it from the store."""

import redis

from conftest import start_redis, start_standin

PLACEHOLDER = "GB('KeysReader').register(prefix='__load_test__:*', mode='async_local')"
IMPORTED = "GB('ShardsIDReader').map(lambda x: __import__('pymongo').version).run()"


def stored(c):
    return {dict(zip(r[::2], r[1::2]))["Name"] for r in c.execute_command("RG.PYDUMPREQS")}


def imported(c):
    versions, errors = c.execute_command("RG.PYEXECUTE", IMPORTED)
    assert not errors
    return versions


def test_load_reinstalls_every_stored_requirement_in_its_own_order(tmp_path):
    redis_port, redis_proc = start_redis(tmp_path)
    log = str(tmp_path / "standin.log")
    procs = []

    def start():
        url, proc = start_standin("127.0.0.1", redis_port, log)
        procs.append((url, proc))
        return redis.Redis.from_url(url, decode_responses=True, socket_timeout=300)

    def restart(c):
        c.close()
        procs[-1][1].terminate()
        procs[-1][1].wait(30)
        return start()

    c = start()
    try:
        c.execute_command("RG.PYEXECUTE", PLACEHOLDER, "REQUIREMENTS", "rgsync", "pymongo==4.7.3")
        assert imported(c) == ["4.7.3"]  # installed in the order given: the pin last
        for reg in c.execute_command("RG.DUMPREGISTRATIONS"):
            c.execute_command("RG.UNREGISTER", reg[1])

        c = restart(c)
        assert stored(c) == {"rgsync", "pymongo==4.7.3"}  # outlived their registration
        assert imported(c) == ["4.1.1"]  # 'rgsync' sorts after 'pymongo==4.7.3'

        c.execute_command("RG.PYEXECUTE", PLACEHOLDER, "ID", "s1", "REQUIREMENTS", "rgsync")
        c.execute_command("RG.PYEXECUTE", PLACEHOLDER, "ID", "s1", "UPGRADE")
        assert stored(c) == {"pymongo==4.7.3"}

        c = restart(c)
        assert imported(c) == ["4.7.3"]
    finally:
        # The stand-in's environment is shared by the run: leave the pin installed.
        raw = redis.Redis.from_url(procs[-1][0], socket_timeout=300)
        _meta, chunks = raw.execute_command("RG.PYEXPORTREQ", "pymongo==4.7.3")
        raw.execute_command("RG.PYIMPORTREQ", *chunks)
        for proc in [p for _url, p in procs] + [redis_proc]:
            proc.terminate()
            proc.wait(30)
