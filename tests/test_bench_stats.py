"""Latency statistics, the latency/throughput harness on a fake clock, memory sampling,
and the torch-free import boundary of edgekit.bench."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from edgekit.bench.harness import (
    TIERS,
    LatencyResult,
    ThroughputResult,
    make_batches,
    measure_latency,
    measure_throughput,
)
from edgekit.bench.memory import MemorySampler, model_size_bytes, read_status_kb
from edgekit.bench.stats import (
    LatencyStats,
    min_samples_for,
    order_statistic_ci,
    percentile_nearest_rank,
)
from edgekit.core.errors import UsageError


class FakeClock:
    """Nanosecond clock that moves only when the fake model 'runs'."""

    def __init__(self) -> None:
        self.now = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += int(round(ms * 1e6))


class FakeModel:
    """Records what it was fed; each call takes latency_ms(call_index) of fake time."""

    def __init__(self, clock: FakeClock, latency_ms=lambda i: 10.0) -> None:
        self.clock, self.latency_ms = clock, latency_ms
        self.fed: list = []

    def __call__(self, x) -> None:
        self.clock.advance_ms(self.latency_ms(len(self.fed)))
        self.fed.append(x)


def _samples(n: int) -> list[dict[str, np.ndarray]]:
    return [{"input": np.full((1, 3, 4, 4), i, dtype=np.float32)} for i in range(n)]


def _ids(fed) -> list[int]:
    return [int(x["input"].flat[0]) for x in fed]


# -- statistics ---------------------------------------------------------------------------

def test_percentiles_on_known_data():
    ns = np.arange(1, 101) * 1_000_000  # 1..100 ms, shuffled
    s = LatencyStats.from_ns(np.random.default_rng(0).permutation(ns))
    assert (s.n, s.min, s.max, s.p50, s.p90, s.p95, s.p99) == (100, 1.0, 100.0, 50.0, 90.0, 95.0, 99.0)
    assert s.mean == pytest.approx(50.5)
    assert s.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.cv == pytest.approx(s.std / 50.5)


def test_nearest_rank_matches_numpy_inverted_cdf_and_differs_from_ort_floor_rule():
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 10, 99, 100, 1001):
        x = np.sort(rng.random(n))
        for q in (0, 1, 50, 90, 95, 99, 100):
            assert percentile_nearest_rank(x, q) == np.percentile(x, q, method="inverted_cdf")
    ten = np.arange(1.0, 11.0)
    assert percentile_nearest_rank(ten, 90) == 9.0  # x(ceil(0.9*10)) = x(9)
    assert ten[math.floor(10 * 0.9)] == 10.0  # onnxruntime_perf_test's floor(n*p) index is one rank higher here


def test_order_statistic_ci_covers_the_true_quantile():
    rng = np.random.default_rng(2)
    n, reps = 60, 4000
    sims = np.sort(rng.random((reps, n)), axis=1)  # uniform: the true p-quantile is p
    for p in (0.5, 0.9):
        j, k = order_statistic_ci(n, p, level=0.95)
        assert j is not None and k is not None and j < k
        coverage = np.mean((sims[:, j - 1] <= p) & (p <= sims[:, k - 1]))
        assert coverage >= 0.94, (p, coverage)


def test_order_statistic_ci_known_ranks_for_the_median():
    # the classic table: 95 % CI of the median of 100 samples is [x(40), x(61)]
    assert order_statistic_ci(100, 0.5, level=0.95) == (40, 61)


def test_minimum_samples_for_tail_percentiles():
    assert min_samples_for(0.90) == 36
    assert min_samples_for(0.99) == 368
    assert min_samples_for(0.90, level=0.99, sided="upper") == 44
    assert "p90" in LatencyStats.from_ns(np.arange(1, 36) * 1e6).too_few_for
    s36 = LatencyStats.from_ns(np.arange(1, 37) * 1e6)
    assert "p90" not in s36.too_few_for and "p99" in s36.too_few_for
    assert s36.p90_ci[1] is not None and s36.p99_ci[1] is None
    assert "p99" not in LatencyStats.from_ns(np.arange(1, 369) * 1e6).too_few_for
    assert any("p99" in w for w in s36.warnings())


def test_unstable_flag_follows_the_cv_threshold():
    steady = np.full(200, 5e6) + np.random.default_rng(3).normal(0, 5e4, 200)  # ~1 % CV
    noisy = np.concatenate([np.full(180, 5e6), np.full(20, 10e6)])  # ~30 % CV
    assert not LatencyStats.from_ns(steady).unstable
    s = LatencyStats.from_ns(noisy)
    assert s.unstable and s.cv > 0.1
    assert not LatencyStats.from_ns(noisy, cv_threshold=0.5).unstable
    assert LatencyStats.from_ns(steady, cv_threshold=0.001).unstable
    assert any("unstable" in w for w in s.warnings())


def test_stats_json_round_trip():
    s = LatencyStats.from_ns(np.random.default_rng(4).lognormal(15, 0.1, 500))
    back = LatencyStats.from_json(json.loads(json.dumps(s.to_json())))
    assert back == s


@pytest.mark.parametrize("bad", [[], [1e6, float("nan")], [-1.0, 2e6]])
def test_stats_refuse_bad_samples(bad):
    with pytest.raises(UsageError):
        LatencyStats.from_ns(bad)


# -- latency harness on a fake clock -------------------------------------------------------

def test_min_duration_binds_when_iterations_come_quickly():
    clock = FakeClock()
    model = FakeModel(clock)  # 10 ms per call
    r = measure_latency(model, _samples(8), warmup_s=0, min_duration_s=1.0, min_iterations=5, clock=clock)
    assert r.iterations == 100 and not r.cut_short
    assert r.duration_s == pytest.approx(1.0)
    assert r.stats.p50 == pytest.approx(10.0) and r.stats.cv == 0.0
    assert r.throughput == pytest.approx(100.0)


def test_min_iterations_binds_when_the_duration_is_short():
    clock = FakeClock()
    r = measure_latency(FakeModel(clock), _samples(8), warmup_s=0, min_duration_s=0.1, min_iterations=50, clock=clock)
    assert r.iterations == 50 and not r.cut_short
    assert r.duration_s == pytest.approx(0.5)


def test_max_duration_caps_the_run_and_marks_it_cut_short():
    clock = FakeClock()
    r = measure_latency(FakeModel(clock), _samples(8), warmup_s=0, min_duration_s=0.1, min_iterations=1000,
                        max_duration_s=0.5, clock=clock)
    assert r.iterations == 50 and r.cut_short
    assert LatencyResult.from_json(r.to_json()).cut_short


def test_warmup_is_time_based_and_not_measured():
    clock = FakeClock()
    model = FakeModel(clock, latency_ms=lambda i: 2.0 if i < 126 else 10.0)  # cold + 125 warm-up calls are fast
    r = measure_latency(model, _samples(8), warmup_s=0.25, min_duration_s=0.1, min_iterations=10, clock=clock)
    assert r.warmup_iterations == 125 and r.warmup_s == pytest.approx(0.25)
    assert len(model.fed) == 1 + r.warmup_iterations + r.iterations
    assert r.stats.min == pytest.approx(10.0)  # no warm-up latency leaked into the window


def test_cold_first_inference_is_reported_apart():
    clock = FakeClock()
    model = FakeModel(clock, latency_ms=lambda i: 500.0 if i == 0 else 10.0)
    r = measure_latency(model, _samples(8), warmup_s=0.05, min_duration_s=0.1, min_iterations=10, clock=clock)
    assert r.cold_ms == pytest.approx(500.0)
    assert r.stats.max == pytest.approx(10.0)


def test_runtime_timing_of_the_window_only_becomes_runtime_stats():
    clock = FakeClock()
    model = FakeModel(clock, latency_ms=lambda i: 500.0 if i == 0 else 10.0)
    reads: list[int] = []

    def runtime_clock() -> int:  # the runtime timed 8.5 ms of each 10 ms call (first call: 400 ms)
        reads.append(len(model.fed))
        return 400_000_000 if len(model.fed) == 1 else 8_500_000 + 1000 * (len(model.fed) % 3)

    r = measure_latency(model, _samples(8), warmup_s=0.05, min_duration_s=0.2, min_iterations=10, clock=clock,
                        runtime_clock=runtime_clock, runtime_timer="fake runtime")
    assert len(reads) == r.iterations == 20  # read once per measured call: not the cold one, not warm-up
    assert r.runtime_stats is not None and r.runtime_stats.n == 20 and r.runtime_timer == "fake runtime"
    assert r.runtime_stats.max < 9.0 and r.runtime_stats.p50 == pytest.approx(8.501)
    assert r.stats.p50 == pytest.approx(10.0)  # the host timing is untouched by the reads
    back = LatencyResult.from_json(r.to_json())
    assert back.runtime_stats == r.runtime_stats and back.runtime_timer == "fake runtime"


def test_runtime_timing_with_gaps_is_dropped():
    clock = FakeClock()
    model = FakeModel(clock)
    r = measure_latency(model, _samples(8), warmup_s=0, min_duration_s=0.1, min_iterations=10, clock=clock,
                        runtime_clock=lambda: None if len(model.fed) % 2 else 5_000_000, runtime_timer="gappy")
    assert r.runtime_stats is None and r.runtime_timer is None  # only a timing of every call is a distribution
    other = FakeModel(FakeClock())
    plain = measure_latency(other, _samples(8), warmup_s=0, min_duration_s=0.1, min_iterations=10, clock=other.clock)
    assert plain.runtime_stats is None and LatencyResult.from_json(plain.to_json()).runtime_stats is None


def test_samples_are_cycled_in_seeded_passes_covering_all():
    clock = FakeClock()
    model = FakeModel(clock)
    r = measure_latency(model, _samples(7), warmup_s=0, min_duration_s=0.1, min_iterations=69, clock=clock, seed=5)
    ids = _ids(model.fed)
    assert len(ids) == 70 and r.n_distinct_samples == 7 and r.n_samples_visited == 7
    for start in range(0, 70, 7):  # every pass is a permutation of all samples
        assert sorted(ids[start:start + 7]) == list(range(7))
    assert all(a != b for a, b in zip(ids, ids[1:]))  # never the same tensor twice in a row
    again = FakeModel(FakeClock())
    measure_latency(again, _samples(7), warmup_s=0, min_duration_s=0.1, min_iterations=69, clock=again.clock, seed=5)
    other = FakeModel(FakeClock())
    measure_latency(other, _samples(7), warmup_s=0, min_duration_s=0.1, min_iterations=69, clock=other.clock, seed=6)
    assert _ids(again.fed) == ids and _ids(other.fed) != ids


def test_fetching_the_next_sample_is_not_timed():
    clock = FakeClock()

    class SlowSamples(list):
        def __getitem__(self, i):
            clock.advance_ms(5.0)  # a slow fetch must not show up in the latency
            return list.__getitem__(self, i)

    r = measure_latency(FakeModel(clock), SlowSamples(_samples(4)), warmup_s=0.05, min_duration_s=0.1,
                        min_iterations=10, clock=clock)
    assert r.stats.min == r.stats.max == pytest.approx(10.0) and r.cold_ms == pytest.approx(10.0)


def test_index_feed_passes_sample_indices():
    clock = FakeClock()
    model = FakeModel(clock)
    measure_latency(model, _samples(4), warmup_s=0, min_duration_s=0.01, min_iterations=8, clock=clock, feed="index")
    assert all(isinstance(i, int) for i in model.fed) and set(model.fed) == {0, 1, 2, 3}


def test_single_sample_is_refused_unless_allowed():
    clock = FakeClock()
    with pytest.raises(UsageError, match="one distinct sample"):
        measure_latency(FakeModel(clock), _samples(1), warmup_s=0, min_duration_s=0.1, min_iterations=5, clock=clock)
    r = measure_latency(FakeModel(clock), _samples(1), warmup_s=0, min_duration_s=0.1, min_iterations=5,
                        clock=clock, allow_single_sample=True)
    assert r.n_distinct_samples == 1 and r.to_json()["n_distinct_samples"] == 1


@pytest.mark.parametrize("kw", [
    {"min_iterations": 0}, {"min_iterations": -3}, {"min_iterations": 2.5}, {"min_duration_s": 0},
    {"min_duration_s": -1.0}, {"min_duration_s": float("nan")}, {"warmup_s": -0.1},
    {"max_duration_s": 0}, {"max_duration_s": 0.05}, {"feed": "tensor"}, {"cv_threshold": 0},
    {"ci_level": 1.5},
])
def test_bad_settings_are_usage_errors(kw):
    args = {"warmup_s": 0, "min_duration_s": 0.1, "min_iterations": 5} | kw
    clock = FakeClock()
    model = FakeModel(clock)
    with pytest.raises(UsageError):
        measure_latency(model, _samples(3), clock=clock, **args)
    assert model.fed == []  # refused before running anything


def test_no_samples_is_a_usage_error():
    with pytest.raises(UsageError, match="no samples"):
        measure_latency(lambda x: None, [], warmup_s=0, min_duration_s=0.1, min_iterations=1)


def test_progress_reports_phases_and_finishes():
    clock = FakeClock()
    seen: list[tuple[str, float]] = []
    measure_latency(FakeModel(clock, lambda i: 50.0), _samples(3), warmup_s=0.3, min_duration_s=1.0,
                    min_iterations=5, clock=clock, progress=lambda ph, f: seen.append((ph, f)))
    assert {ph for ph, _ in seen} == {"warmup", "measure"}
    assert seen[-1] == ("measure", 1.0) and all(0.0 <= f <= 1.0 for _, f in seen)


def test_latency_result_json_round_trip_with_samples():
    clock = FakeClock()
    r = measure_latency(FakeModel(clock, lambda i: 1.0 + (i % 3)), _samples(5), warmup_s=0.01, min_duration_s=0.05,
                        min_iterations=10, clock=clock)
    back = LatencyResult.from_json(json.loads(json.dumps(r.to_json(include_samples=True))))
    assert back == r
    assert "latencies_ns" not in r.to_json()


def test_real_clock_smoke():
    a = np.random.default_rng(0).random((64, 64))
    r = measure_latency(lambda x: x["input"] @ a, [{"input": a + i} for i in range(4)], warmup_s=0.01,
                        min_duration_s=0.05, min_iterations=20)
    assert r.iterations >= 20 and r.duration_s >= 0.05 and r.stats.min > 0


def test_tiers_follow_the_design():
    assert TIERS["ci"] == {"min_duration_s": 10.0, "min_iterations": 100}
    assert TIERS["publish"]["min_duration_s"] == 600.0


# -- throughput -------------------------------------------------------------------------------

def test_throughput_sweep_counts_samples_over_wall_time():
    clock = FakeClock()
    seen_shapes = []

    def infer_batch(feeds):
        bs = feeds["input"].shape[0]
        if bs == 8:
            raise UsageError("input 'input' has shape (8, 3, 4, 4), the model wants (1|2|4, 3, 4, 4)")
        seen_shapes.append(feeds["input"].shape)
        clock.advance_ms(1.0 + 0.5 * bs)

    res = measure_throughput(infer_batch, _samples(10), batch_sizes=[1, 4, 8], min_duration_s=0.3,
                             min_iterations=20, warmup_s=0.01, clock=clock)
    by = {p.batch_size: p for p in res.points}
    assert by[1].samples_per_s == pytest.approx(1 / 1.5e-3)
    assert by[4].samples_per_s == pytest.approx(4 / 3e-3)
    assert by[4].samples == by[4].iterations * 4 and by[4].n_distinct_batches == 3
    assert by[8].samples_per_s is None and "the model wants" in by[8].error
    assert res.best.batch_size == 4
    assert {s[0] for s in seen_shapes} == {1, 4}
    back = ThroughputResult.from_json(json.loads(json.dumps(res.to_json())))
    assert back.best.batch_size == 4 and back.points[2].error == by[8].error


def test_make_batches_cover_every_sample_and_bound_memory():
    batches = make_batches(_samples(10), 4, seed=0)
    ids = [int(v) for b in batches for v in b["input"][:, 0, 0, 0]]
    assert len(batches) == 3 and set(ids) == set(range(10))
    assert len(make_batches(_samples(10), 4, max_samples=8)) == 2
    with pytest.raises(UsageError, match="batch-1"):
        make_batches([{"input": np.zeros((3, 4, 4), np.float32)}] * 2, 2)


# -- memory -------------------------------------------------------------------------------------

def test_memory_sampler_sees_an_allocation_in_the_window():
    if not read_status_kb():
        pytest.skip("no /proc/self/status on this platform")
    with MemorySampler(interval_s=0.005) as m:
        big = np.ones(40_000_000)  # 320 MB
        time.sleep(0.05)
        del big
    r = m.result
    assert r.source == "procfs" and r.samples > 0
    assert r.peak_increase_mb > 250
    assert r.rss_after_mb < r.peak_rss_mb


def test_memory_hwm_rise_is_an_exact_window_peak(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  1000 kB\nVmRSS:\t   900 kB\n")
    with MemorySampler(interval_s=60, status_path=status) as m:  # the thread never samples
        status.write_text("Name:\tpython\nVmHWM:\t  5000 kB\nVmRSS:\t  950 kB\n")
    r = m.result
    assert r.rss_before_mb == pytest.approx(900 / 1024) and r.rss_after_mb == pytest.approx(950 / 1024)
    assert r.peak_rss_mb == pytest.approx(5000 / 1024)  # the HWM rose, so the high was inside the window


def test_model_size_on_disk(tmp_path):
    (tmp_path / "model.xml").write_bytes(b"x" * 100)
    (tmp_path / "model.bin").write_bytes(b"x" * 1000)
    (tmp_path / "edgekit.json").write_text("{}")
    assert model_size_bytes(tmp_path / "model.bin") == 1000
    assert model_size_bytes(tmp_path) == 1100
    with pytest.raises(UsageError):
        model_size_bytes(tmp_path / "missing.onnx")


# -- dependency isolation -------------------------------------------------------------------------

def test_bench_and_targets_import_no_torch_or_runtime():
    code = ("import sys, edgekit.bench, edgekit.core.targets, edgekit.bench.paired, edgekit.cli.targets; "
            "print(','.join(sorted(m for m in ('torch', 'torchvision', 'timm', 'onnxruntime', 'openvino', 'tensorrt', "
            "'scipy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_deployed_files_are_the_model_and_its_weights_only():
    from edgekit.bench.runner import deployed_files

    files = {"model.onnx": "a", "model.onnx.data": "b", "checkpoint.safetensors": "c", "prune_config.json": "d",
             "calibration.json": "e"}
    assert deployed_files("model.onnx", files) == ["model.onnx", "model.onnx.data"]
    assert deployed_files("model.xml", {"model.xml": "a", "model.bin": "b", "edgekit.json": "c"}) == [
        "model.xml", "model.bin"]
