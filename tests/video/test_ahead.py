"""video.ahead: the detection thread's iterator, run ahead of the fit."""

import threading
import time

import pytest

from smplx_capture_addon.video.ahead import Timed, run_ahead


def counted(made: list[int], count: int):
    for number in range(count):
        made.append(number)
        yield number


def test_items_come_in_order_made_in_another_thread():
    threads = []

    def source():
        for number in range(20):
            threads.append(threading.current_thread().name)
            yield number

    assert list(run_ahead(source(), depth=3, name="test ahead")) == list(range(20))
    assert set(threads) == {"test ahead"}


def test_the_thread_works_ahead_by_at_most_its_depth():
    made: list[int] = []
    items = run_ahead(counted(made, 100), depth=4)
    assert next(items) == 0
    deadline = time.monotonic() + 10.0  # the producer fills the queue meanwhile, then waits
    while len(made) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # One handed over, four waiting, one made and blocked on the full queue.
    assert len(made) == 6
    items.close()


def test_closing_the_consumer_stops_the_thread_early():
    made: list[int] = []
    before = threading.active_count()
    items = run_ahead(counted(made, 10_000), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert threading.active_count() == before
    assert len(made) < 10


def test_an_error_of_the_source_comes_where_its_item_would_have():
    def failing():
        yield 1
        yield 2
        raise OSError("the clip could not be read past frame 2")

    items = run_ahead(failing())
    assert next(items) == 1 and next(items) == 2
    with pytest.raises(OSError, match="past frame 2"):
        next(items)


def test_timed_counts_the_seconds_of_making_the_items():
    def slow():
        for number in range(3):
            time.sleep(0.05)
            yield number

    timed = Timed(slow())
    assert list(timed) == [0, 1, 2]
    assert 0.14 < timed.seconds < 1.0
