"""Which pymongo a recipe pins, which stored requirements could replace it at a restart, and
the line status prints when Gears runs another one."""

from __future__ import annotations

from wbload.interpreter import (
    ShardPymongo,
    StoredPymongo,
    mismatch_message,
    pin_requirement,
    pinned_pymongo,
    restart_risks,
)
from wbload.registrations import _registration
from wbload.requirements import InstalledRequirement

RGSYNC = InstalledRequirement("rgsync", (
    "rgsync-1.2.0-py3-none-any.whl",
    "pymongo-4.1.1-cp37-cp37m-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "redis-4.6.0-py3-none-any.whl"))
PIN = InstalledRequirement("pymongo==4.7.3", (
    "dnspython-2.3.0-py3-none-any.whl",
    "pymongo-4.7.3-cp37-cp37m-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"))


def test_the_last_pymongo_pin_wins() -> None:
    assert pinned_pymongo(["rgsync", "pymongo==4.7.3"]) == "4.7.3"
    assert pin_requirement(["PyMongo == 4.6.3", "pymongo==4.7.3"]) == "pymongo==4.7.3"
    assert pinned_pymongo(["rgsync", "pymongo>=4"]) is None
    assert pinned_pymongo([]) is None


def test_stored_requirements_carrying_another_pymongo_are_risks() -> None:
    risks = restart_risks([PIN, RGSYNC], "4.7.3", {"rgsync": ["abc"]})
    assert risks == [StoredPymongo("rgsync", "4.1.1", ("abc",))]
    assert restart_risks([PIN], "4.7.3") == []
    # Against another pin, the pin's own requirement is one too.
    assert [r.requirement for r in restart_risks([PIN, RGSYNC], "4.8.0")] == [
        "pymongo==4.7.3", "rgsync"]


def test_mismatch_names_the_cause_and_the_fix() -> None:
    shard = ShardPymongo("1", "4.1.1", "4.1.1")
    unused = mismatch_message("Movies", "4.7.3", shard, [StoredPymongo("rgsync", "4.1.1")])
    assert unused.startswith("Movies pins pymongo 4.7.3 but Gears' Python runs pymongo 4.1.1, "
                             "installed when Redis loaded the stored requirement rgsync")
    assert "run `wbload requirements prune`, then restart Redis" in unused
    used = mismatch_message("Movies", "4.7.3", shard, [StoredPymongo("rgsync", "4.1.1", ("s",))])
    assert "`wbload undeploy` what lists rgsync" in used
    assert "\n" not in used and "\n" not in unused


def test_a_shard_without_pymongo_on_disk_or_loaded() -> None:
    shard = ShardPymongo("a" * 40, None, None)
    message = mismatch_message("Movies", "4.7.3", shard, [])
    assert f"runs no pymongo at all on shard {'a' * 40};" in message


def test_registration_requirements_and_session_come_from_its_pd() -> None:
    pd = ("{'sessionName':'8766d3', 'sessionDescription':'null', 'refCount': 2, "
          "'depsList':[{'name':'rgsync', 'basePath':'/v/rgsync_60', 'wheels':['a.whl']},"
          "{'name':'pymongo==4.7.3', 'basePath':'/v/pymongo==4.7.3_e1', 'wheels':[]}]}")
    registration = _registration(["id", "0-1", "reader", "KeysReader", "desc", "{}",
                                  "RegistrationData", ["mode", "sync"], "PD", pd])
    assert registration.requirements == ("rgsync", "pymongo==4.7.3")
    assert registration.session == "8766d3"
