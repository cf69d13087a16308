"""Long work on the event loop a slice at a time (kumocore.node.stepwise), and the
``/api/inject/v1`` request check written that way (kumocore.http.inject_schema)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kumocore.http.inject_schema import (
    RECIPIENTS_PER_STEP,
    RequestError,
    parse_inject_request,
    parse_steps,
)
from kumocore.node.stepwise import Steps, run_stepwise, run_whole, sorted_steps


def _busy_steps(count: int, seconds: float) -> Steps[int]:
    """``count`` steps of ``seconds`` of busy work each; returns ``count``."""
    for _ in range(count):
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            pass
        yield
    return count


async def test_run_stepwise_returns_the_result_and_lets_the_loop_run_between_slices() -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0)
    started = time.monotonic()
    # 100 steps of 1 ms in slices of 5 ms: about twenty turns of the loop in between.
    assert await run_stepwise(_busy_steps(100, 0.001), budget=0.005) == 100
    elapsed = time.monotonic() - started
    stop.set()
    await ticker
    # In one piece the other task would have run once, after all of it; here it ran
    # between slices (relative bounds: a loaded machine stretches both alike).
    assert len(gaps) >= 10, gaps
    assert max(gaps) < elapsed / 2, (max(gaps), elapsed)


async def test_run_stepwise_does_not_turn_the_loop_within_a_slice() -> None:
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.ensure_future(count_turns())
    await asyncio.sleep(0)
    assert await run_stepwise(_busy_steps(1000, 0), budget=10) == 1000
    counter.cancel()
    assert turns <= 1  # a thousand cheap steps, one slice: no turn spent per step


async def test_an_error_in_a_step_reaches_the_caller_of_run_stepwise() -> None:
    def failing() -> Steps[None]:
        yield
        raise RequestError("recipients[3].email: expected a string")

    with pytest.raises(RequestError, match=r"recipients\[3\]"):
        await run_stepwise(failing())


def test_run_whole_runs_every_step_without_a_loop() -> None:
    assert run_whole(_busy_steps(5, 0)) == 5


def _request(count: int, bad: int | None = None) -> dict[str, object]:
    recipients: list[object] = [{"email": f"r{n}@example.com"} for n in range(count)]
    if bad is not None:
        recipients[bad] = {"email": "no address"}
    return {"envelope_sender": "s@example.com", "content": "Subject: x\r\n\r\nhi",
            "recipients": recipients}


def _yields(body: dict[str, object]) -> int:
    """How many steps :func:`parse_steps` takes over ``body``; checks its result too."""
    steps = parse_steps(body)
    yielded = 0
    while True:
        try:
            next(steps)
            yielded += 1
        except StopIteration as done:
            assert done.value == parse_inject_request(body)
            return yielded


@pytest.mark.parametrize("count", [0, 1, 7, 10, 11, 95])
def test_sorted_steps_sorts_as_sorted_does_and_keeps_equal_items_in_order(count: int) -> None:
    import random

    items = [(random.randrange(5), n) for n in range(count)]  # many equal keys
    steps = sorted_steps(items, key=lambda item: item[0], run=10)
    assert run_whole(steps) == sorted(items, key=lambda item: item[0])


def test_sorted_steps_yields_once_per_run_sorted_and_per_run_merged() -> None:
    steps = sorted_steps(range(35, 0, -1), key=lambda n: n, run=10)
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            assert done.value == list(range(1, 36))
            break
        yields += 1
    assert yields == 4 + 3  # four runs sorted; 35 merged items, a yield every ten


def test_checking_a_request_yields_once_per_step_of_recipients() -> None:
    assert _yields(_request(RECIPIENTS_PER_STEP * 3 + 1)) == 3
    assert _yields(_request(RECIPIENTS_PER_STEP - 1)) == 0


def test_substitutions_count_as_work_between_yields() -> None:
    many = {f"k{n}": n for n in range(RECIPIENTS_PER_STEP * 2)}
    one_heavy = _request(1)
    one_heavy["recipients"] = [{"email": "r@example.com", "substitutions": many}]
    assert _yields(one_heavy) == 1  # one recipient, but 401 values: a step's worth
    request_wide = _request(1)
    request_wide["substitutions"] = many
    assert _yields(request_wide) == 2


async def test_a_bad_recipient_in_a_later_step_is_named_by_its_index() -> None:
    where = RECIPIENTS_PER_STEP * 2 + 5
    with pytest.raises(RequestError, match=rf"^recipients\[{where}\]\.email: "):
        await run_stepwise(parse_steps(_request(RECIPIENTS_PER_STEP * 3, bad=where)))


def test_recipients_without_substitutions_share_one_read_only_empty_map() -> None:
    request = parse_inject_request(_request(3))
    first, second = request.recipients[0].substitutions, request.recipients[1].substitutions
    assert first is second and first == {}
    with pytest.raises(TypeError, match="read-only"):
        first["x"] = 1  # type: ignore[index]
