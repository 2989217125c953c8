"""How the loader names each shard's keys and reads RedisGears' view of a cluster, checked
against what a real RedisGears 1.2.13 3-shard cluster answered (shared/gears/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from wbload.connection import RedisTarget
from wbload.errors import ServerUnsuitable
from wbload.hashtags import gears_hashtag, tagged
from wbload.topology import Deployment, Shard, _gears_view, gears_cluster_problems

GEARS = Path(__file__).resolve().parents[2].parent / "shared" / "gears"


def transcript(name: str) -> Any:
    return json.loads((GEARS / "transcripts-cluster" / name).read_text())


@pytest.mark.parametrize(("node", "slot"), [(7001, 0), (7002, 5461), (7003, 10923)])
def test_hashtag_is_the_one_gears_gives_the_shard(node: int, slot: int) -> None:
    answered = transcript(f"03-hashtag-keysreader-{node}.json")
    assert gears_hashtag(slot) in json.dumps(answered)
    assert key_slot(gears_hashtag(slot).encode()) == slot


def test_single_node_hashtag_is_that_of_slot_0() -> None:
    assert gears_hashtag(0) == "06S"


def test_every_slot_has_a_tag_hashing_to_it() -> None:
    for slot in (1, 42, 5460, 8191, 12000, 16383):
        assert key_slot(gears_hashtag(slot).encode()) == slot


def test_tagged_name_lands_on_the_shard() -> None:
    shard = Shard("127.0.0.1:7002", client=None, slots=((5461, 10922),))  # type: ignore[arg-type]
    name = shard.tagged("wbload:dead-letter:Movies")
    assert name == "wbload:dead-letter:Movies{8M}"
    assert shard.owns(name)
    assert shard.stream("_movies-stream-abc-*") == "_movies-stream-abc-{8M}"
    assert tagged("_movies-stream-abc-", 0) == "_movies-stream-abc-{06S}"


def test_stream_names_match_what_rgsync_made_on_each_shard() -> None:
    for node, slot in ((7001, 0), (7002, 5461), (7003, 10923)):
        scan = transcript(f"10-scan-streams-{node}.json")["reply"]
        (stream,) = scan[1]
        pattern = stream.rsplit("{", 1)[0] + "*"
        shard = Shard(f"127.0.0.1:{node}", None, ((slot, slot + 5460),))  # type: ignore[arg-type]
        assert shard.stream(pattern) == stream


def test_gears_view_lists_every_shard() -> None:
    view = _gears_view(transcript("02-infocluster-7001.json")["reply"])
    assert view == {"127.0.0.1:7001": 0, "127.0.0.1:7002": 5461, "127.0.0.1:7003": 10923}


def test_gears_view_of_an_unrefreshed_node_is_none() -> None:
    assert _gears_view(transcript("09-infocluster-norefresh-7002.json")["reply"]) is None


class FakeNode:
    """Answers RG.INFOCLUSTER as a recorded node did."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def execute_command(self, *args: str) -> Any:
        assert args == ("RG.INFOCLUSTER",)
        return self.reply


RANGES = ((0, 5460), (5461, 10922), (10923, 16383))  # as the recorded cluster's


def cluster(*replies: Any) -> Deployment:
    shards = [Shard(f"127.0.0.1:{7001 + i}", FakeNode(r), (RANGES[i],))  # type: ignore[arg-type]
              for i, r in enumerate(replies)]
    return Deployment(RedisTarget("redis://127.0.0.1:7001"), shards[0].client, shards, True)


def test_an_unrefreshed_node_is_named_with_the_fix() -> None:
    good = transcript("02-infocluster-7001.json")["reply"]
    unrefreshed = transcript("09-infocluster-norefresh-7002.json")["reply"]
    problems = gears_cluster_problems(cluster(good, unrefreshed, good))
    assert len(problems) == 1
    assert "127.0.0.1:7002" in problems[0] and "wbload refresh" in problems[0]
    assert "\n" not in problems[0]


def test_a_refreshed_cluster_has_no_problem() -> None:
    good = transcript("02-infocluster-7001.json")["reply"]
    deployment = cluster(good, good, good)
    assert gears_cluster_problems(deployment) == []
    deployment.require_gears_ready()


def test_require_gears_ready_raises_the_first_problem() -> None:
    good = transcript("02-infocluster-7001.json")["reply"]
    deployment = cluster(good, "no cluster mode", good)
    deployment.problems.extend(gears_cluster_problems(deployment))
    with pytest.raises(ServerUnsuitable, match="7002"):
        deployment.require_gears_ready()


def test_a_key_goes_to_the_shard_owning_its_slot() -> None:
    good = transcript("02-infocluster-7001.json")["reply"]
    deployment = cluster(good, good, good)
    for key in ("MovieEntity:1", "MovieEntity:2", "wbload:secret{63n}"):
        slot = key_slot(key.encode())
        assert deployment.shard_of(key).min_slot == next(a for a, b in RANGES if a <= slot <= b)


def test_gears_with_another_lowest_slot_than_redis_is_a_problem() -> None:
    good = transcript("02-infocluster-7001.json")["reply"]
    deployment = cluster(good, good, good)
    moved = Shard("127.0.0.1:7002", deployment.shards[1].client, ((5000, 10922),))
    deployment.shards[1] = moved
    (problem,) = gears_cluster_problems(deployment)
    assert "127.0.0.1:7002" in problem and "5461" in problem and "5000" in problem
