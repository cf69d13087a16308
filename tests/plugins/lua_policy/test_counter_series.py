"""kumo.counter_series: KumoMTA's rolling counters, driven from Lua policies with a clock
the test moves (``kumo.test.advance(seconds)``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from kumocore import PolicyError, hookimpl

from .support import Recorder, make_runtime, write

U64_MAX = (1 << 64) - 1


class ClockRecorder(Recorder):
    """A recorder whose ``kumo.test.advance(seconds)`` moves the series' clock on."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 5000.0

    def clock(self) -> float:
        return self.now

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        def advance(seconds: float) -> None:
            self.now += seconds

        return {**super().kumo_register_policy_functions(), "test.advance": advance}


async def run(tmp_path: Path, source: str, recorder: ClockRecorder | None = None) -> list[Any]:
    """Load ``source`` as a policy on a runtime whose series read the recorder's clock."""
    recorder = recorder or ClockRecorder()
    runtime = make_runtime(recorder)
    runtime.pm.get_plugin("lua_policy").stdlib.counter_series.clock = recorder.clock
    await runtime.load_policy(write(tmp_path, "policy.lua", source))
    return recorder.marks


async def test_ring_of_five_two_second_buckets_rotates_as_kumomta(tmp_path: Path) -> None:
    # The sequence of KumoMTA's own rotation test (kumo-counter-series), step by step.
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local s = kumo.counter_series.define { name = 'r', num_buckets = 5, bucket_size = 2 }
        local function step(advance, add)
          kumo.test.advance(advance)
          s:increment(add)
          kumo.test.mark(s:sum())
        end
        kumo.test.mark(s:sum())
        step(0, 1)
        step(1, 1)  -- same bucket
        step(1, 1)  -- next bucket
        step(2, 3)
        step(2, 4)
        step(2, 5)
        step(2, 6)  -- wrapped: the oldest bucket (2) is replaced
        step(4, 7)  -- skipped a bucket: it is zeroed
        local spans = {}
        for _, d in ipairs { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 60 } do
          table.insert(spans, s:sum_over(d))
        end
        kumo.test.mark(spans)
        step(12, 8)  -- six buckets later: everything else aged out
        for i = 1, 4 do
          step(2, i)
        end
        kumo.test.advance(60)
        s:observe(0)
        kumo.test.mark(s:sum())
    """,
    )
    assert marks == [
        0,
        1,
        2,
        3,
        6,
        10,
        15,
        19,
        22,
        [7, 7, 7, 7, 7, 13, 13, 18, 18, 22, 22, 22],
        8,
        9,
        11,
        14,
        18,
        0,
    ]


async def test_seconds_left_over_when_the_ring_steps_are_dropped(tmp_path: Path) -> None:
    # 3 s into 2 s buckets: one step, and the step's time becomes the reference, so one
    # second later the ring is still in that bucket (KumoMTA does the same).
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local s = kumo.counter_series.define { name = 'x', num_buckets = 4, bucket_size = '2s' }
        s:increment(1)
        kumo.test.advance(3)
        s:increment(1)
        kumo.test.advance(1)
        s:increment(1)
        kumo.test.mark(s:sum_over(1))
        kumo.test.mark(s:sum())
    """,
    )
    assert marks == [2, 3]


async def test_define_caches_by_name_and_shape(tmp_path: Path) -> None:
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local seeded = kumo.counter_series.define {
          name = 'seeded', num_buckets = 6, bucket_size = '60s', initial_value = 10 }
        kumo.test.mark(seeded:sum())
        local a = kumo.counter_series.define { name = 's', num_buckets = 6, bucket_size = '1m' }
        -- the same shape (60 s is 1 m): the same series, initial_value ignored
        local b = kumo.counter_series.define {
          name = 's', num_buckets = 6, bucket_size = 60, initial_value = 999 }
        a:increment(2)
        b:delta(-1)
        kumo.test.mark({ a:sum(), b:sum() })
        a:observe(10)
        kumo.test.mark({ b:sum(), b:sum_over '2m' })
        -- another shape replaces it with a fresh series holding the new initial_value
        local c = kumo.counter_series.define {
          name = 's', num_buckets = 4, bucket_size = '30s', initial_value = 7 }
        kumo.test.mark(c:sum())
        local again = kumo.counter_series.define { name = 's', num_buckets = 4, bucket_size = 30 }
        again:increment(1)
        kumo.test.mark(c:sum())
        -- 500 ms rounds up to a 1 s bucket
        local sub = kumo.counter_series.define {
          name = 'sub', num_buckets = 3, bucket_size = '500ms' }
        sub:increment(5)
        kumo.test.advance(1)
        sub:increment(1)
        kumo.test.mark({ sub:sum(), sub:sum_over(0) })
        kumo.test.mark(kumo.counter_series.define {
          name = 'sub', num_buckets = 3, bucket_size = '1s' }:sum())
    """,
    )
    assert marks == [10, [1, 1], [10, 10], 7, 8, [6, 1], 6]


async def test_values_saturate_at_zero_and_at_u64_max(tmp_path: Path) -> None:
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local s = kumo.counter_series.define { name = 'sat', num_buckets = 2, bucket_size = 1 }
        s:increment(3)
        s:delta(-10)
        kumo.test.mark(s:sum())
        s:increment(math.maxinteger)
        kumo.test.mark({ s:sum(), math.type(s:sum()) })
        s:delta(math.maxinteger)
        s:increment(5)
        kumo.test.mark({ s:sum(), math.type(s:sum()) })
        kumo.test.advance(1)
        s:increment(7)  -- the full bucket and the new one, still capped
        kumo.test.mark({ s:sum(), s:sum_over(1) })
    """,
    )
    big = float(U64_MAX)  # past a Lua integer: a float, as mlua hands a large u64 over
    assert marks == [0, [(1 << 63) - 1, "integer"], [big, "float"], [big, 7]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("s:increment(-1)", "VALUE is out of range for u64: -1"),
        ("s:observe('x')", "VALUE must be a number, got string"),
        ("s:delta(2^63)", "VALUE is out of range for i64"),
        ("s:sum_over(-5)", "DURATION must not be negative"),
        ("s:sum_over('soon')", "DURATION: not a duration: 'soon'"),
        ("s:sum_over(math.huge)", "DURATION: not a duration: inf"),
        (
            "kumo.counter_series.define { name = 'y', num_buckets = 0, bucket_size = 1 }",
            "num_buckets must be >= 1",
        ),
        (
            "kumo.counter_series.define { name = 'y', num_buckets = 2, bucket_size = 0 }",
            "bucket_size must be >= 1 second",
        ),
        (
            "kumo.counter_series.define { name = 'y', num_buckets = 2 }",
            "missing field 'bucket_size'",
        ),
        (
            "kumo.counter_series.define { name = 'y', num_buckets = 2, bucket_size = 1, size = 3 }",
            "unknown field 'size', expected one of name, num_buckets, bucket_size, initial_value",
        ),
        (
            "kumo.counter_series.define { name = 5, num_buckets = 2, bucket_size = 1 }",
            "name must be a string, got number",
        ),
        (
            "kumo.counter_series.define { name = 'y', num_buckets = 2, bucket_size = 1,"
            " initial_value = -3 }",
            "initial_value is out of range for u64",
        ),
    ],
)
async def test_bad_arguments_fail_with_the_reason(tmp_path: Path, call: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        await run(
            tmp_path,
            f"""\
            local kumo = require 'kumo'
            local s = kumo.counter_series.define {{ name = 's', num_buckets = 2, bucket_size = 1 }}
            {call}
        """,
        )
    assert message in str(info.value)


async def test_more_than_255_buckets_is_refused(tmp_path: Path) -> None:
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local s = kumo.counter_series.define { name = 'big', num_buckets = 255, bucket_size = 1 }
        kumo.test.mark(s:sum_over '1h')
        kumo.test.mark({ pcall(kumo.counter_series.define,
          { name = 'bigger', num_buckets = 256, bucket_size = 1 }) })
    """,
    )
    assert marks[0] == 0
    ok, error = marks[1]
    assert not ok and "num_buckets is out of range for u8 (at most 255 buckets): 256" in str(error)


async def test_series_past_the_process_limit_are_refused(tmp_path: Path) -> None:
    from kumocore_lua_policy.stdlib.counter_series import MAX_SERIES

    marks = await run(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        for i = 1, {MAX_SERIES} do
          kumo.counter_series.define {{ name = 'n' .. i, num_buckets = 1, bucket_size = 1 }}
        end
        kumo.test.mark({{ pcall(kumo.counter_series.define,
          {{ name = 'one-more', num_buckets = 1, bucket_size = 1 }}) }})
        -- names already held are still served, and may be reshaped
        local s = kumo.counter_series.define {{ name = 'n7', num_buckets = 3, bucket_size = 1 }}
        s:increment(4)
        kumo.test.mark(s:sum())
    """,
    )
    ok, error = marks[0]
    assert not ok
    assert f"cannot define 'one-more': this process already holds {MAX_SERIES}" in str(error)
    assert marks[1] == 4


async def test_over_long_names_are_refused(tmp_path: Path) -> None:
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        kumo.counter_series.define { name = string.rep('a', 1024), num_buckets = 1,
                                     bucket_size = 1 }
        kumo.test.mark({ pcall(kumo.counter_series.define,
          { name = string.rep('a', 1025), num_buckets = 1, bucket_size = 1 }) })
    """,
    )
    ok, error = marks[0]
    assert not ok and "name is 1025 characters long, more than the 1024 allowed" in str(error)


async def test_series_outlive_a_policy_reload(tmp_path: Path) -> None:
    # The series belong to the process, not to one load of the policy (as KumoMTA's).
    recorder = ClockRecorder()
    runtime = make_runtime(recorder)
    runtime.pm.get_plugin("lua_policy").stdlib.counter_series.clock = recorder.clock
    source = """\
        local kumo = require 'kumo'
        local s = kumo.counter_series.define { name = 'kept', num_buckets = 3, bucket_size = 60 }
        s:increment(1)
        kumo.test.mark(s:sum())
    """
    await runtime.load_policy(write(tmp_path, "policy.lua", source))
    assert await runtime.pm.get_plugin("policy").reload()  # a fresh Lua state
    assert recorder.marks == [1, 2]


async def test_reference_examples(tmp_path: Path) -> None:
    # The examples of KumoMTA's counter_series pages, with print() marked instead.
    marks = await run(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local function current_queue_depth() return 17 end

        local series = kumo.counter_series.define {
          name = 'deliveries.ok',
          num_buckets = 5,
          bucket_size = '1m',
          initial_value = 0,
        }
        series:increment(1)

        local inflight = kumo.counter_series.define {
          name = 'inflight', num_buckets = 5, bucket_size = '1m' }
        inflight:delta(1) -- a job started
        inflight:delta(-1) -- a job finished
        kumo.test.mark(inflight:sum())

        local depth = kumo.counter_series.define {
          name = 'queue.depth', num_buckets = 6, bucket_size = '10s' }
        depth:observe(current_queue_depth())
        depth:observe(current_queue_depth())
        kumo.test.mark(depth:sum())

        local ok = kumo.counter_series.define {
          name = 'deliveries.ok', num_buckets = 5, bucket_size = '1m' }
        ok:increment(3)
        kumo.test.mark(ok:sum())
        kumo.test.advance(60)
        ok:increment(2)
        kumo.test.advance(60)
        kumo.test.mark(ok:sum_over '2m')
        kumo.test.mark(ok:sum())
        kumo.test.advance(240)
        kumo.test.mark(ok:sum())
    """,
    )
    assert marks == [0, 17, 4, 2, 6, 0]


def test_python_policies_call_define_with_keywords() -> None:
    runtime = make_runtime()
    now = [100.0]
    runtime.pm.get_plugin("lua_policy").stdlib.counter_series.clock = lambda: now[0]
    series = runtime.kumo.counter_series.define(name="py", num_buckets=2, bucket_size="1m")
    series.increment(2)
    now[0] += 60
    series.increment(5)
    assert (series.sum(), series.sum_over("1m")) == (7, 5)
    now[0] += 120
    assert series.sum() == 0
