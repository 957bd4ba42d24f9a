"""scripts/bench end to end with tiny bounds: every figure and output is there.

Figures are never compared with numbers here (the machine decides them); the
test checks that each one was measured and that the outputs are well formed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]

FIGURE_KEYS = {"ops", "timed_s", "ops_per_s", "p50_ms", "p99_ms"}
LOAD_KEYS = {"clients", "requests", "errors", "requests_per_s", "p50_ms", "p99_ms"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--smoke",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), out, done.stdout


def test_bounds_and_product_figures_are_measured(
    smoke_run: tuple[dict, Path, str],
) -> None:
    results, _, _ = smoke_run

    for source in ("pkcs11_raw", "adapter", "software"):
        for operation in ("sign", "ecdh"):
            figure = results["bounds"][source][operation]
            assert FIGURE_KEYS <= figure.keys(), (source, operation)
            assert figure["ops"] > 0 and figure["ops_per_s"] > 0
    for name in (
        "create",
        "verify_offset_0",
        "verify_offset_19",
        "verify_offset_19_biometry",
        "verify_wrong_code",
    ):
        assert FIGURE_KEYS <= results["inprocess"][name].keys(), name
        assert results["inprocess"][name]["ops"] > 0
    assert sorted(results["lookahead"], key=int) == ["1", "20", "64"]


def test_http_runs_cover_every_client_count_without_errors(
    smoke_run: tuple[dict, Path, str],
) -> None:
    http = smoke_run[0]["http"]

    assert http["workers_that_signed"] == http["workers"]
    assert http["workers_that_ran_ecdh"] == http["workers"]
    for endpoint in ("create", "verify"):
        runs = http["levels"][endpoint]
        assert [run["clients"] for run in runs] == [1, 2, 4, 8, 16]
        for run in runs:
            assert LOAD_KEYS <= run.keys()
            assert run["requests"] > 0
            # Right codes and valid requests only: any error is a bug.
            assert run["errors"] == 0, run["error_samples"]
        assert LOAD_KEYS <= http[endpoint].keys()


def test_ratios_targets_and_outputs(smoke_run: tuple[dict, Path, str]) -> None:
    results, out, stdout = smoke_run

    for name in ("create_vs_raw_sign", "verify_vs_raw_ecdh", "http_vs_inprocess"):
        assert results["ratios"][name] > 0, name
    assert set(results["targets"]) == {
        "create_vs_raw_sign",
        "verify_vs_raw_ecdh",
        "http_errors",
        "p99_ms_at_best_throughput",
    }
    assert all(isinstance(t["met"], bool) for t in results["targets"].values())
    assert results["machine"]["nproc"] >= 1
    assert "SoftHSM" in results["bounds"]["pkcs11_raw"]["library"]

    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| create_vs_raw_sign |" in out.with_suffix(".md").read_text().replace(
        "`", ""
    )
    assert "raw PKCS#11 ECDSA sign" in stdout
    assert "create_vs_raw_sign" in stdout
