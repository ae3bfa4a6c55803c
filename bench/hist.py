"""A log-linear latency histogram in the manner of HdrHistogram."""

from __future__ import annotations

from collections import Counter

# 2**SUB_BITS buckets per power of two: values are kept to better than 1 %.
SUB_BITS = 7


class Histogram:
    """
    Records integer microseconds into buckets whose width grows with the
    value, so memory stays small and every percentile is within 1 % of the
    true value, however many samples. `max` is exact.
    """

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.max_us = 0
        self.min_us: int | None = None
        self.total_us = 0

    @staticmethod
    def _index(v: int) -> int:
        if v < (1 << (SUB_BITS + 1)):
            return v
        shift = v.bit_length() - SUB_BITS - 1
        return (shift << (SUB_BITS + 1)) | (v >> shift)

    @staticmethod
    def _value(index: int) -> int:
        shift = index >> (SUB_BITS + 1)
        if shift == 0:
            return index
        mantissa = index & ((1 << (SUB_BITS + 1)) - 1)
        # The middle of the bucket.
        return (mantissa << shift) + (1 << (shift - 1))

    def record(self, seconds: float) -> None:
        us = max(0, round(seconds * 1_000_000))
        self.counts[self._index(us)] += 1
        self.count += 1
        self.total_us += us
        self.max_us = max(self.max_us, us)
        self.min_us = us if self.min_us is None else min(self.min_us, us)

    def merge(self, other: Histogram) -> None:
        self.counts.update(other.counts)
        self.count += other.count
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)
        if other.min_us is not None:
            self.min_us = other.min_us if self.min_us is None else min(self.min_us, other.min_us)

    def percentile_ms(self, p: float) -> float:
        """The value at percentile p (0-100), in milliseconds."""
        if not self.count:
            return float("nan")
        rank = max(1, round(p / 100 * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self._value(index), self.max_us) / 1000
        return self.max_us / 1000

    @property
    def max_ms(self) -> float:
        return self.max_us / 1000

    def summary(self) -> str:
        if not self.count:
            return "no samples"
        return (
            f"n={self.count} p50={self.percentile_ms(50):.2f} p90={self.percentile_ms(90):.2f} "
            f"p99={self.percentile_ms(99):.2f} p99.9={self.percentile_ms(99.9):.2f} "
            f"max={self.max_ms:.2f} ms"
        )
