"""The encoded-answer cache of a node (net/answers.py) on its own: per-handle invalidation, prefix records dropping
everything, the size bound, and what it holds."""

from __future__ import annotations

from handlesim.net.answers import AnswerCache

JSON, MSGPACK = "application/json", "application/msgpack"


def test_answers_are_found_by_path_and_media_and_dropped_per_handle() -> None:
    cache = AnswerCache()
    cache.remember(("/api/handles/88.1/A", JSON), "88.1/A", 200, (b"a-json",), 1)
    cache.remember(("/api/handles/88.1/A", MSGPACK), "88.1/A", 200, (b"a-msgpack",), 1)
    cache.remember(("/api/handles/88.1/A?type=URL", JSON), "88.1/A", 200, (b"a-url",), 1)
    cache.remember(("/api/handles/88.1/B", JSON), "88.1/B", 404, (b"b",), 100, 123.5)
    assert cache.lookup(("/api/handles/88.1/A", MSGPACK)) == (200, (b"a-msgpack",), 1, None, 9)
    assert cache.lookup(("/api/handles/88.1/B", JSON)) == (404, (b"b",), 100, 123.5, 1)
    assert cache.lookup(("/api/handles/88.1/B", MSGPACK)) is None
    cache.forget("88.1/A")
    assert len(cache) == 1 and cache.lookup(("/api/handles/88.1/A", JSON)) is None
    assert cache.lookup(("/api/handles/88.1/B", JSON)) is not None
    cache.forget("88.1/NEVER-ANSWERED")
    assert len(cache) == 1


def test_a_prefix_record_or_an_unknown_change_drops_every_answer() -> None:
    for key in ("0.NA/88.1", ""):
        cache = AnswerCache()
        cache.remember(("/api/handles/88.1/A", JSON), "88.1/A", 200, (b"a",), 1)
        cache.remember(("/api/handles/88.2/B", JSON), "88.2/B", 200, (b"b",), 1)
        cache.forget(key)
        assert len(cache) == 0 and list(cache.held_objects()) == []


def test_the_cache_starts_over_when_full_and_remembers_a_memo_once() -> None:
    cache = AnswerCache(limit=3)
    for n in range(3):
        cache.remember((f"/api/handles/88.1/{n}", JSON), f"88.1/{n}", 200, (b"x",), 1)
    cache.remember(("/api/handles/88.1/0", JSON), "88.1/0", 200, (b"y",), 1)  # full: cleared, then kept
    assert len(cache) == 1 and cache.lookup(("/api/handles/88.1/0", JSON)) == (200, (b"y",), 1, None, 1)
    cache.remember(("/api/handles/88.1/0", JSON), "88.1/0", 200, (b"z",), 1)
    memo = ("/api/handles/88.1/0", JSON)
    assert list(cache.held_objects()) == [memo, (200, (b"z",), 1, None, 1), (memo,)]


def test_an_answer_is_held_as_its_parts_with_the_joined_length() -> None:
    cache = AnswerCache()
    shared = b'{"index":100}'
    entry = cache.remember(("/api/handles/88.1/A", JSON), "88.1/A", 200, (b"[", shared, b",", shared, b"]"), 1)
    assert entry == cache.lookup(("/api/handles/88.1/A", JSON)) and entry[4] == len(b"".join(entry[1])) == 29
    assert entry[1][1] is entry[1][3], "a fragment is held once, however many answers (or places) share it"


def test_hits_are_counted_by_response_code_and_outlive_a_clear() -> None:
    cache = AnswerCache()
    cache.hits[1] += 2
    cache.hits[100] += 1
    cache.clear()
    assert dict(cache.hits) == {1: 2, 100: 1}
