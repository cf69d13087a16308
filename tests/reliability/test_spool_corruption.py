"""Corrupt spool records (issue 9 part 2): garbage written into the RocksDB meta spool of a
stopped server is logged and quarantined at the next start, and the server serves.

Also what corrupt-but-decodable records must not do: silently drop a message, or take
down the scheduler or the routing workers (which would stall every message after them).
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.reliability.abuse import meta_record, new_id, probe, undecodable_records, wait_until
from bench.reliability.crash import World
from kumocore.logs.reader import iter_records
from kumocore.spool.base import MemorySpool
from kumocore.spool.store import MessageStore
from kumocore.spool.store_recovery import QUARANTINE_PREFIX
from tests.reliability.conftest import StartKumo, unique


@pytest.mark.slow
def test_undecodable_meta_records_are_quarantined_and_the_server_serves(
    start_kumo: StartKumo, world: World
) -> None:
    server = start_kumo()
    assert server.terminate() == 0
    records = undecodable_records()
    ids = {name: new_id() for name in records}
    server.spool_put({ids[name]: value for name, value in records.items()})
    server.spool_put({key: b"Subject: orphan\r\n\r\n" for key in ids.values()}, spool="data")
    server.start()
    rcpt = f"ok.{unique('corrupt')}@crash.test"
    assert probe(server.port, rcpt).code == 250
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 10)
    log = server.log_text()
    for name, key in ids.items():
        assert f'"id": "{key.decode()}"' in log and "quarantined corrupt spool entry" in log, name
    assert server.terminate() == 0
    records = server.spool_records()
    for name, key in ids.items():
        assert key not in records, f"{name}: still in the live spool"
        assert QUARANTINE_PREFIX.encode() + key in records, f"{name}: not quarantined"
    # Quarantined entries are left alone at the next start.
    server.start()
    assert server.log_text().count("quarantined corrupt spool entry") == len(ids)


def test_a_binary_key_in_the_meta_spool_does_not_stop_the_server(
    start_kumo: StartKumo, world: World
) -> None:
    server = start_kumo()
    assert server.terminate() == 0
    server.spool_put({b"\xff\xfe\x00bad key": b"garbage", b"short": meta_record("y@crash.test")})
    server.start()
    rcpt = f"ok.{unique('badkey')}@crash.test"
    assert probe(server.port, rcpt).code == 250
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 10)


def test_a_meta_record_without_its_body_is_logged_or_quarantined_never_silently_dropped(
    start_kumo: StartKumo, world: World
) -> None:
    server = start_kumo()
    assert server.terminate() == 0
    key, rcpt = new_id(), f"ok.{unique('nobody')}@crash.test"
    server.spool_put({key: meta_record(rcpt)})
    server.start()
    probe_rcpt = f"ok.{unique('nobody-probe')}@crash.test"
    assert probe(server.port, probe_rcpt).code == 250
    assert wait_until(lambda: world.sink.recipients()[probe_rcpt] == 1, 10)
    assert server.terminate() == 0
    logged = {
        r["recipient"]
        for r in iter_records(server.log_dir)
        if r["type"] in ("Bounce", "Expiration")
    }
    quarantined = QUARANTINE_PREFIX.encode() + key in server.spool_records()
    assert rcpt in logged or quarantined or key in server.spool_records()


@pytest.mark.slow
def test_negative_attempt_counts_in_the_spool_do_not_stop_routing(
    start_kumo: StartKumo, world: World
) -> None:
    world.dns.set_servfail(True, names=["stuck.test"])  # routing fails: 451 4.4.4
    try:
        server = start_kumo()
        assert server.terminate() == 0
        server.spool_put(
            {new_id(): meta_record(f"x{n}@stuck.test", num_attempts=-1) for n in range(20)}
        )
        server.start()
        rcpt = f"ok.{unique('routing')}@crash.test"
        assert probe(server.port, rcpt).code == 250
        assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 3), server.log_tail()
    finally:
        world.dns.set_servfail(False)


@pytest.mark.slow
def test_an_absurd_due_time_in_the_spool_does_not_stop_retries(
    start_kumo: StartKumo, world: World
) -> None:
    server = start_kumo()
    assert server.terminate() == 0
    server.spool_put({new_id(): meta_record("far@crash.test", due=1e300)})
    server.start()
    rcpt = f"tempfail-once.{unique('sched')}@crash.test"
    assert probe(server.port, rcpt).code == 250
    assert wait_until(lambda: world.sink.recipients()[rcpt] == 1, 15), server.log_tail()


async def test_a_record_under_an_empty_key_is_quarantined_not_recovered_under_a_new_id() -> None:
    meta, data = MemorySpool("meta"), MemorySpool("data")
    await meta.put("", meta_record("a@crash.test"))
    recovered = [m async for m in MessageStore(data, meta).recover()]
    assert [m.id for m in recovered] in ([], [""])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    records=st.lists(
        st.tuples(
            st.one_of(
                st.binary(min_size=1, max_size=40).map(lambda b: b.hex()),
                st.text(min_size=1, max_size=20),
            ),
            st.one_of(
                st.binary(max_size=200),
                st.dictionaries(
                    st.sampled_from(
                        [
                            "v",
                            "sender",
                            "recipient",
                            "created",
                            "num_attempts",
                            "due",
                            "meta",
                            "size",
                        ]
                    ),
                    st.one_of(
                        st.none(),
                        st.integers(-(2**63), 2**63 - 1),
                        st.floats(allow_nan=False),
                        st.text(max_size=20),
                        st.lists(st.integers(-9, 9), max_size=2),
                        st.just({"a": 1}),
                    ),
                    max_size=8,
                ).map(orjson.dumps),
                st.builds(
                    lambda d: json.dumps({**json.loads(meta_record("a@b.test")), **d}).encode(),
                    st.dictionaries(
                        st.sampled_from(
                            ["sender", "recipient", "created", "num_attempts", "due", "meta"]
                        ),
                        st.one_of(
                            st.none(),
                            st.integers(-5, 5),
                            st.text(max_size=10),
                            st.floats(allow_nan=False),
                        ),
                        max_size=3,
                    ),
                ),
            ),
        ),
        max_size=6,
    )
)
async def test_recovery_quarantines_or_recovers_any_meta_record(
    records: list[tuple[str, bytes]],
) -> None:
    meta, data = MemorySpool("meta"), MemorySpool("data")
    for key, value in records:
        await meta.put(key, value)
    store = MessageStore(data, meta)
    recovered = [m async for m in store.recover()]
    live = [k for k in meta.items if not k.startswith(QUARANTINE_PREFIX)]
    assert sorted(m.id for m in recovered) == sorted(live)
