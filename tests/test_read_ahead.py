"""ReadAhead: same items in the same order, errors at their item, the position of the
item last returned (not of the ones read ahead), and a thread that stops on close."""

import threading
import time

import pytest

from stn_icnn_jax.data.read_ahead import ReadAhead


class Counter:
    """An iterator over 0..n-1 whose state is the number of items read so far."""

    def __init__(self, n, fail_at=None, delay=0.0):
        self.n, self.read, self.fail_at, self.delay = n, 0, fail_at, delay

    def __iter__(self):
        return self

    def __next__(self):
        if self.read == self.fail_at:
            raise OSError(f"record {self.read} is damaged")
        if self.read >= self.n:
            raise StopIteration
        time.sleep(self.delay)
        self.read += 1
        return self.read - 1

    def get_state(self):
        return self.read


@pytest.mark.parametrize("depth", [1, 3])
def test_items_in_order_then_stop(depth):
    with ReadAhead(Counter(7), depth=depth) as reader:
        assert list(reader) == list(range(7))
        with pytest.raises(StopIteration):
            next(reader)


def test_position_is_the_state_after_the_item_returned_not_after_those_read_ahead():
    source = Counter(10)
    with ReadAhead(source, source.get_state) as reader:
        assert reader.position is None
        for expected in range(4):
            assert next(reader) == expected
            deadline = time.monotonic() + 5
            while source.read < expected + 3 and time.monotonic() < deadline:
                time.sleep(0.01)  # let the thread read ahead (queue of 1 + one in hand)
            assert source.read == expected + 3  # the iterator itself has moved on...
            assert reader.position == expected + 1  # ...the position has not


def test_error_is_raised_in_the_callers_thread_at_its_item():
    with ReadAhead(Counter(10, fail_at=3)) as reader:
        assert [next(reader) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(OSError, match="record 3 is damaged"):
            next(reader)
        with pytest.raises(StopIteration):
            next(reader)


def test_reading_overlaps_the_callers_work():
    """Five items that each take 0.1 s to read, and 0.1 s of work per item: about 0.6 s
    read ahead, at least 1.0 s in turn."""
    start = time.perf_counter()
    with ReadAhead(Counter(5, delay=0.1)) as reader:
        for _ in reader:
            time.sleep(0.1)
    assert time.perf_counter() - start < 0.9


def test_close_stops_the_thread_before_the_end():
    before = threading.active_count()
    reader = ReadAhead(Counter(10**9))
    next(reader)
    reader.close()
    assert threading.active_count() == before


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        ReadAhead(Counter(1), depth=0)
