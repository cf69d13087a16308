"""Why a queue is not moving: per-path outcome counts, last error, a message's last response."""

from __future__ import annotations

from kumocore.admin.summary import inspect_message, queue_summary


async def test_a_deferred_message_shows_its_last_response_and_its_path_counts_it(
    make_bench,
) -> None:
    bench = await make_bench(queue={"retry_interval": "1h"})
    deferred = await bench.inject("tempfail@example.com")
    await bench.inject("ok@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    await bench.wait_for_records("Delivery", 1)
    store = bench.runtime.services.store
    view = await inspect_message(bench.queues, store, deferred.id, want_body=False)
    assert view is not None
    assert view["message"]["last_response"].startswith("451 4.3.0")
    (path,) = queue_summary(bench.queues)["ready"]
    assert (path["delivered"], path["transient"], path["failed"]) == (1, 1, 0)
    assert path["last_error"].startswith("451 4.3.0")


async def test_a_retried_message_keeps_its_last_response_on_its_record_until_it_finishes(
    make_bench,
) -> None:
    bench = await make_bench(queue={"retry_interval": "2s"})  # time to look at it waiting
    message = await bench.inject("tempfail-once@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    record = bench.queues.queued.get(message.id)
    assert record is not None and str(record.last_response).startswith("451 4.3.0")
    await bench.wait_for_records("Delivery", 1, timeout=15)
    await bench.wait_until(lambda: message.id not in bench.queues.queued)
    assert await inspect_message(bench.queues, None, message.id, want_body=False) is None
