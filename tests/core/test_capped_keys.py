"""The cardinality cap of metric labels (kumocore.capped_keys): the first keys keep their
own place, later ones go to ``other``, reserved keys always have a place."""

from __future__ import annotations

import random

from kumocore.capped_keys import capped_entry, capped_key


def _count(held: dict[str, int], key: str, limit: int, reserved: frozenset[str] = frozenset(),
           other: str = "other") -> str:  # fmt: skip
    """Count one under ``key``'s capped key, as a counter site does; the key counted."""
    chosen = capped_key(held, key, limit, other, reserved)
    held[chosen] = held.get(chosen, 0) + 1
    return chosen


def test_keys_below_the_limit_are_counted_under_their_own_name() -> None:
    held: dict[str, int] = {}
    assert [_count(held, key, 3) for key in ("a", "b", "c")] == ["a", "b", "c"]


def test_once_the_limit_is_reached_every_new_key_goes_to_other() -> None:
    held: dict[str, int] = {}
    chosen = [_count(held, key, 2) for key in ("a", "b", "c", "d")]
    assert chosen == ["a", "b", "other", "other"]
    assert held == {"a": 1, "b": 1, "other": 2}  # other past the cap: one series more


def test_known_keys_stay_under_their_own_name_after_the_cap_is_reached() -> None:
    held: dict[str, int] = {}
    for key in ("a", "b", "c", "a", "b"):
        _count(held, key, 2)
    assert held == {"a": 2, "b": 2, "other": 1}


def test_other_counted_before_the_cap_takes_a_place_like_any_key() -> None:
    held: dict[str, int] = {}
    assert [_count(held, key, 2) for key in ("other", "a", "b")] == ["other", "a", "other"]
    assert held == {"other": 2, "a": 1}


def test_the_other_key_may_be_shaped_after_the_key_it_replaces() -> None:
    held = {("svc", "query", "ok"): 1}
    key = ("new", "script", "error")
    assert capped_key(held, key, 1, ("other", *key[1:])) == ("other", "script", "error")


def test_reserved_keys_keep_their_place_after_the_other_keys_used_up_theirs() -> None:
    reserved = frozenset({"own", "other"})
    held: dict[str, int] = {}
    chosen = [_count(held, key, 4, reserved) for key in ("a", "b", "c", "own")]
    assert chosen == ["a", "b", "other", "own"]  # 4 places: 2 reserved, 2 for the rest
    assert len(held) == 4


def test_reserved_places_are_kept_before_the_reserved_keys_are_first_used() -> None:
    held: dict[str, int] = {}
    reserved = frozenset({"x", "y", "other"})
    assert [_count(held, key, 5, reserved) for key in "abc"] == ["a", "b", "other"]


def test_reserved_places_are_counted_as_one_count_of_the_unreserved_keys_admitted() -> None:
    """The cap by places left, as a counter of admitted keys would keep it, for random
    streams of keys: the same choice each time."""
    rng = random.Random(7)
    reserved = frozenset({"r1", "r2", "r3", "other"})
    for limit in (3, 4, 6, 10):
        held: dict[str, int] = {}
        room = limit - len(reserved)
        for _ in range(200):
            key = rng.choice(["r1", "r2", "r3", "other", *(f"k{n}" for n in range(12))])
            expected = key
            if key not in held and key not in reserved:
                expected, room = (key, room - 1) if room > 0 else ("other", room)
            assert _count(held, key, limit, reserved) == expected


def test_capped_entry_makes_an_entry_under_the_key_it_is_kept_under() -> None:
    held: dict[str, list[str]] = {}
    assert capped_entry(held, "a", 1, "other", lambda key: [key]) == ["a"]
    assert capped_entry(held, "b", 1, "other", lambda key: [key]) == ["other"]
    assert held == {"a": ["a"], "other": ["other"]}


def test_capped_entry_past_the_cap_shares_others_entry_and_known_keys_keep_theirs() -> None:
    held: dict[str, list[int]] = {}
    a = capped_entry(held, "a", 1, "other", lambda _key: [])
    late = capped_entry(held, "b", 1, "other", lambda _key: [])
    assert capped_entry(held, "c", 1, "other", lambda _key: []) is late is held["other"]
    assert capped_entry(held, "a", 1, "other", lambda _key: []) is a


def test_capped_entry_makes_a_reserved_keys_entry_when_the_others_are_full() -> None:
    held: dict[str, str] = {}
    reserved = frozenset({"own", "other"})
    capped_entry(held, "a", 3, "other", str.upper, reserved)
    assert capped_entry(held, "b", 3, "other", str.upper, reserved) == "OTHER"
    assert capped_entry(held, "own", 3, "other", str.upper, reserved) == "OWN"
