"""The benchmark's timing and verdict helpers, on made-up inputs (no clock checks)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench
from bench_common import Budget, measure, percentile, summarize


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))

    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_summarize_counts_every_duration() -> None:
    summary = summarize([1_000_000, 3_000_000])

    assert summary["ops"] == 2
    assert summary["ops_per_s"] == 500.0
    assert summary["p50_ms"] == 1.0
    assert summary["p99_ms"] == 3.0


def test_measure_stops_at_the_operation_bound_and_runs_upkeep_before_each() -> None:
    calls: list[str] = []

    figure = measure(
        lambda: calls.append("op"),
        Budget(seconds=60.0, max_ops=5, warmup=2),
        between=lambda: calls.append("upkeep"),
    )

    assert figure["ops"] == 5
    assert calls == ["upkeep", "op"] * 7


def _results(create: float, verify: float, p99: float, errors: int) -> dict:
    figure = {"ops": 1, "timed_s": 1.0, "p50_ms": 1.0, "p99_ms": 1.0}
    run = {
        "clients": 2,
        "requests": 10,
        "errors": errors,
        "requests_per_s": 50.0,
        "p50_ms": 5.0,
        "p99_ms": p99,
    }
    results = {
        "bounds": {
            "pkcs11_raw": {
                "sign": {**figure, "ops_per_s": 1000.0},
                "ecdh": {**figure, "ops_per_s": 500.0},
            },
            "adapter": {
                "sign": {**figure, "ops_per_s": 900.0},
                "ecdh": {**figure, "ops_per_s": 450.0},
            },
            "software": {
                "sign": {**figure, "ops_per_s": 4000.0},
                "ecdh": {**figure, "ops_per_s": 2000.0},
            },
        },
        "inprocess": {
            "create": {**figure, "ops_per_s": create},
            "verify_offset_0": {**figure, "ops_per_s": verify},
        },
        "http": {
            "levels": {"create": [run], "verify": [run]},
            "warmup": [],
            "create": run,
            "verify": run,
        },
    }
    results["ratios"] = bench.ratios(results)
    return results


def test_ratios_divide_product_by_bound() -> None:
    ratios = _results(create=700.0, verify=300.0, p99=10.0, errors=0)["ratios"]

    assert ratios["create_vs_raw_sign"] == 0.7
    assert ratios["verify_vs_raw_ecdh"] == 0.6
    assert ratios["http_vs_inprocess"] == pytest.approx(50 / 700, abs=1e-3)
    assert ratios["adapter_vs_raw_sign"] == 0.9


def test_targets_met_at_the_thresholds() -> None:
    verdict = bench.targets(_results(create=700.0, verify=300.0, p99=49.9, errors=0))

    assert all(t["met"] for t in verdict.values())


@pytest.mark.parametrize(
    ("create", "verify", "p99", "errors", "missed"),
    [
        (699.0, 300.0, 10.0, 0, "create_vs_raw_sign"),
        (700.0, 299.0, 10.0, 0, "verify_vs_raw_ecdh"),
        (700.0, 300.0, 50.0, 0, "p99_ms_at_best_throughput"),
        (700.0, 300.0, 10.0, 1, "http_errors"),
    ],
)
def test_each_target_can_be_missed(
    create: float, verify: float, p99: float, errors: int, missed: str
) -> None:
    verdict = bench.targets(_results(create, verify, p99, errors))

    assert [name for name, t in verdict.items() if not t["met"]] == [missed]
