"""Timing helpers shared by the benchmark's processes (no project imports).

Every measurement times each operation on its own with ``perf_counter_ns``,
so upkeep done between two operations (resetting a failure counter, for
example) is left out of the figures. A sample stops at whichever bound comes
first: a number of operations or a time budget.

A figure is made of several samples taken in rounds, each round measuring
every figure once, so that a burst of other work on the machine lands on one
round of each figure rather than on all of one figure: the rate is the median
of the rounds' rates, the percentiles are over all operations of all rounds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The duration of each operation of a sample (ns) and the CPU time they took.
Sample = tuple[list[int], int]


@dataclass(frozen=True)
class Budget:
    """How long one measurement may run: ``seconds`` of timed work or ``max_ops``."""

    seconds: float
    max_ops: int
    warmup: int = 3


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(durations_ns: Sequence[int], cpu_ns: int | None = None) -> dict[str, Any]:
    """ops/s over the timed work, per-operation p50 and p99 in ms.

    ``cpu_ns`` is the CPU time this thread spent in the timed operations; the
    gap between it and the wall time is waiting (disk, locks, other processes
    holding the cores).
    """
    total = sum(durations_ns)
    ms = [d / 1e6 for d in durations_ns]
    figure: dict[str, Any] = {
        "ops": len(durations_ns),
        "timed_s": round(total / 1e9, 4),
        "ops_per_s": round(len(durations_ns) / (total / 1e9), 1) if total else 0.0,
        "p50_ms": round(percentile(ms, 0.50), 4),
        "p99_ms": round(percentile(ms, 0.99), 4),
    }
    if cpu_ns is not None and durations_ns:
        figure["cpu_ms_per_op"] = round(cpu_ns / len(durations_ns) / 1e6, 4)
    return figure


def sample(
    operation: Callable[[], object],
    budget: Budget,
    *,
    between: Callable[[], object] | None = None,
) -> Sample:
    """Run ``operation`` until the budget is spent; untimed ``between()`` before each.

    ``between`` does upkeep that must not count (it runs outside the timer),
    before the warm-up operations too.
    """
    for _ in range(budget.warmup):
        if between is not None:
            between()
        operation()

    durations: list[int] = []
    spent = 0
    cpu = 0
    limit = int(budget.seconds * 1e9)
    clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns
    while len(durations) < budget.max_ops and spent < limit:
        if between is not None:
            between()
        cpu_start = cpu_clock()
        start = clock()
        operation()
        elapsed = clock() - start
        cpu += cpu_clock() - cpu_start
        durations.append(elapsed)
        spent += elapsed
    return durations, cpu


def measure(
    operation: Callable[[], object],
    budget: Budget,
    *,
    between: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """One sample, summarized."""
    return summarize(*sample(operation, budget, between=between))


def combine(samples: Sequence[Sample]) -> dict[str, Any]:
    """One figure from the samples of several rounds (see the module's docstring)."""
    pooled = [d for durations, _ in samples for d in durations]
    figure = summarize(pooled, sum(cpu for _, cpu in samples))
    rates = [len(d) / (sum(d) / 1e9) for d, _ in samples if d and sum(d)]
    if rates:
        figure["ops_per_s"] = round(statistics.median(rates), 1)
        figure["ops_per_s_rounds"] = [round(rate, 1) for rate in rates]
    return figure
