"""Telemetry parsers and readers against recorded device outputs and fake sysfs trees (no device needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.telemetry.base import PowerReading, Scope, Unavailable
from edgekit.telemetry.clocks import (
    capped,
    find_cpu_clocks,
    find_gpu_clock,
    read_clocks,
)
from edgekit.telemetry.detect import open_source
from edgekit.telemetry.energy import energy_mj, t95, window_energy
from edgekit.telemetry.hwmon import probe_hwmon
from edgekit.telemetry.overcurrent import find_counters, read_counters
from edgekit.telemetry.rapl import HOW_TO_ENABLE, energy_delta_uj, probe_rapl
from edgekit.telemetry.rpi import (
    parse_pmic,
    parse_throttled,
    probe_pmic,
    throttle_flags,
)
from edgekit.telemetry.state import Snapshot, StateProbe
from edgekit.telemetry.tegrastats import MAX_LINE, TegrastatsSource, parse_line
from edgekit.telemetry.thermal import Trip, find_zones, read_temps
from edgekit.telemetry.throttle import judge

FIX = Path(__file__).parent / "fixtures" / "telemetry"


def line(name: str) -> str:
    return (FIX / name).read_text().strip()


# -- tegrastats ----------------------------------------------------------------------------------------------

def test_xavier_nx_jetpack5():
    s = parse_line(line("xavier_nx_jp512.txt"))
    assert s.status == "ok" and s.problems == ()
    assert s.timestamp == "07-09-2024 13:31:31" and (s.ram_used_mb, s.ram_total_mb) == (3168, 6851)
    assert s.cpu[0] == (23, 1397) and len(s.cpu) == 6
    assert s.gpu_load_pct == 0 and s.gpu_freq_mhz == (114,) and s.emc == (2, 204)
    assert s.rails_mw == {"VDD_IN": 2763, "VDD_CPU_GPU_CV": 650, "VDD_SOC": 650}
    assert s.rails_avg_mw["VDD_IN"] == 2846
    assert s.total_mw == 2763 and s.scope == Scope.MODULE_INPUT and s.total_rule == "VDD_IN"
    assert s.temps_c["CPU"] == 46.5 and s.temps_c["PMIC"] == 50


def test_orin_nano_jetpack6():
    s = parse_line(line("orin_nano_jp6.txt"))
    assert s.status == "ok" and s.total_mw == 2957 and s.scope == Scope.MODULE_INPUT
    assert s.gpu_freq_mhz == (305,) and s.temps_c["tj"] == 44.531 and s.cpu == ((1, 729), (1, 729), (4, 729),
                                                                                 (1, 729), (0, 729), (0, 729))


def test_orin_nx_offline_cores_and_gr3d_without_frequency_is_partial():
    s = parse_line(line("orin_nx_jp60.txt"))
    assert s.cpu[4:] == (None, None, None, None) and s.cpu[0] == (1, 1420)
    assert s.gpu_load_pct == 0 and s.gpu_freq_mhz == ()
    assert s.status == "partial" and s.problems == ("GR3D_FREQ without a frequency",)
    assert s.total_mw == 6120 and s.rails_mw["VDD_SOC"] == 2464


def test_agx_orin_jetpack5_sums_module_rails_without_the_carrier_rail_nc_or_disabled_sensors():
    s = parse_line(line("agx_orin_jp51.txt"))
    assert s.status == "ok"
    assert "NC" not in s.rails_mw and s.rails_mw["VIN_SYS_5V0"] == 4032
    assert s.total_mw == 2399 + 400 + 301 and s.scope == Scope.MODULE_RAILS
    assert "VIN_SYS_5V0" not in s.total_rule and "sum of module rails" in s.total_rule
    assert not {"CV0", "CV1", "GPU", "CV2"} & set(s.temps_c) and s.temps_c["Tboard"] == 32


def test_agx_orin_jetpack7_three_rail_values_two_temperatures():
    s = parse_line(line("agx_orin_jp7.txt"))
    assert s.status == "ok" and s.gpu_freq_mhz == (1300, 1300) and s.gpu_load_pct == 12
    assert s.rails_mw == {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500}
    assert s.total_mw == 5139 + 3268 and s.temps_c["cpu"] == 52.968
    assert s.ram_used_mb == 20642 and s.cpu == ((23, 2201), (18, 2201))


def test_jetpack4_rails_without_units():
    s = parse_line("RAM 2000/3964MB (lfb 5x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
                   "CPU [3%@102,2%@102,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@22C CPU@24.5C "
                   "thermal@23.75C POM_5V_IN 933/933 POM_5V_GPU 0/0 POM_5V_CPU 84/84")
    assert s.status == "ok" and s.total_mw == 933 and s.total_rule == "POM_5V_IN"
    assert s.rails_mw == {"POM_5V_IN": 933, "POM_5V_GPU": 0, "POM_5V_CPU": 84}
    assert parse_line("RAM 1/2MB CPU [1%@2] VDD_IN 3000/3000 VDD_SOC 1000/1000").total_mw == 3000


@pytest.mark.parametrize("text, total, problem", [
    ("VDD_IN 3000mW/3000mW", 3000, "no RAM field"),  # a non-root release printing only VDD_IN
    ("RAM 3645/7620MB (lfb 63x4MB) GR3D_FREQ 0% cpu@44.1C VDD_IN 2957mW/2957mW", 2957, "no CPU field"),
    ("RAM 3645/7620MB (lfb 63x4MB) CPU [1%@729] GR3D_FREQ 0%@[305] cpu@44.1C", None, "no power rail"),
])
def test_non_root_partial_lines(text, total, problem):
    s = parse_line(text)
    assert s.status == "partial" and s.total_mw == total and any(problem in p for p in s.problems)


@pytest.mark.parametrize("text", ["", "tegrastats: command failed!", "xx yy zz", "RAM", "\x00\x01"])
def test_malformed_lines_keep_the_raw_text_and_never_raise(text):
    s = parse_line(text)
    assert s.status == "malformed" and s.total_mw is None and s.raw == text and s.problems


def test_overlong_line_is_bounded():
    s = parse_line("VDD_IN 1/1 " * 1000)
    assert s.status == "malformed" and len(s.raw) == MAX_LINE


def test_tegrastats_source_reads_recorded_lines():
    lines = [line("orin_nano_jp6.txt") + "\n", "garbage line\n", line("orin_nx_jp60.txt") + "\n"]
    src = TegrastatsSource(lines=iter(lines))
    src._thread.join(5)
    r = src.read()
    assert r.power_mw == 6120 and r.rails_mw["VDD_IN"] == 6120 and src.scope == Scope.MODULE_INPUT
    src.close()


# -- INA3221 hwmon -------------------------------------------------------------------------------------------

def _write(root: Path, rel: str, text: str | int) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"{text}\n")
    return p


def _ina(root: Path, dev: str, hw: str, channels: list[tuple[str, int, int]]) -> Path:
    base = f"sys/bus/i2c/devices/{dev}/hwmon/{hw}"
    _write(root, f"{base}/name", "ina3221")
    for k, (label, mv, ma) in enumerate(channels, 1):
        _write(root, f"{base}/in{k}_label", label)
        _write(root, f"{base}/in{k}_input", mv)
        _write(root, f"{base}/curr{k}_input", ma)
    _write(root, f"{base}/in7_label", "sum of shunt voltages")
    _write(root, f"{base}/in7_input", 99)
    return root / base


def test_hwmon_orin_nano_total_is_vdd_in(tmp_path):
    _ina(tmp_path, "1-0040", "hwmon3", [("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 200), ("VDD_SOC", 5000, 300)])
    src = probe_hwmon(tmp_path)
    assert not isinstance(src, Unavailable)
    r = src.read()
    assert r.power_mw == 5000 * 1200 / 1000 and r.rails_mw["VDD_SOC"] == 1500
    assert src.scope == Scope.MODULE_INPUT and "sum of shunt voltages" not in r.rails_mw


def test_hwmon_agx_orin_sums_module_rails_over_two_chips(tmp_path):
    _ina(tmp_path, "1-0040", "hwmon1", [("VDD_GPU_SOC", 5000, 400), ("VDD_CPU_CV", 5000, 100), ("VIN_SYS_5V0", 5000, 900)])
    _ina(tmp_path, "1-0041", "hwmon2", [("VDDQ_VDD2_1V8AO", 5000, 60), ("NC", 0, 0), ("NC", 0, 0)])
    src = probe_hwmon(tmp_path)
    r = src.read()
    assert r.power_mw == 2000 + 500 + 300 and src.scope == Scope.MODULE_RAILS
    assert "VIN_SYS_5V0" not in src.detail and "NC" not in r.rails_mw


def test_hwmon_absent_and_unreadable_say_why(tmp_path):
    got = probe_hwmon(tmp_path)
    assert isinstance(got, Unavailable) and "no INA3221" in got.reason
    hw = _ina(tmp_path, "1-0040", "hwmon0", [("VDD_IN", 5000, 100)])
    (hw / "curr1_input").unlink()
    (hw / "curr1_input").mkdir()  # unreadable as a file, even for root
    got = probe_hwmon(tmp_path)
    assert isinstance(got, Unavailable) and "not readable" in got.reason and "root" in (got.fix or "")


# -- RAPL ----------------------------------------------------------------------------------------------------

MAX_UJ = 262143328850


def _rapl(root: Path, pkg_uj: int, dram_uj: int | None = 10_000) -> None:
    _write(root, "sys/class/powercap/intel-rapl:0/name", "package-0")
    _write(root, "sys/class/powercap/intel-rapl:0/energy_uj", pkg_uj)
    _write(root, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", MAX_UJ)
    _write(root, "sys/class/powercap/intel-rapl:0:0/name", "core")
    _write(root, "sys/class/powercap/intel-rapl:0:0/energy_uj", 5)
    _write(root, "sys/class/powercap/intel-rapl:0:0/max_energy_range_uj", MAX_UJ)
    if dram_uj is not None:
        _write(root, "sys/class/powercap/intel-rapl:0:2/name", "dram")
        _write(root, "sys/class/powercap/intel-rapl:0:2/energy_uj", dram_uj)
        _write(root, "sys/class/powercap/intel-rapl:0:2/max_energy_range_uj", MAX_UJ)


def test_rapl_energy_counts_package_and_dram_and_undoes_a_wrap(tmp_path):
    _rapl(tmp_path, MAX_UJ - 500)
    src = probe_rapl(tmp_path)
    assert not isinstance(src, Unavailable) and src.scope == Scope.CPU_PACKAGE and "dram" in src.detail
    e1 = src.read().energy_mj
    _write(tmp_path, "sys/class/powercap/intel-rapl:0/energy_uj", 300)  # wrapped
    _write(tmp_path, "sys/class/powercap/intel-rapl:0:2/energy_uj", 12_000)
    e2 = src.read().energy_mj
    assert e2 - e1 == pytest.approx((500 + 300 + 2_000) / 1000)  # core is inside the package: not added
    assert energy_delta_uj(MAX_UJ - 500, 300, MAX_UJ) == 800 and energy_delta_uj(10, 30, MAX_UJ) == 20


def test_rapl_without_dram_says_what_the_scope_leaves_out(tmp_path):
    _rapl(tmp_path, 1000, dram_uj=None)
    src = probe_rapl(tmp_path)
    assert "no dram zone" in src.detail


def test_rapl_absent_or_unreadable_gives_the_reason_and_the_fix(tmp_path):
    got = probe_rapl(tmp_path)
    assert isinstance(got, Unavailable) and "virtual machine" in got.reason
    _rapl(tmp_path, 1000)
    p = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    p.unlink()
    p.mkdir()
    got = probe_rapl(tmp_path)
    assert isinstance(got, Unavailable) and "Linux 5.10" in got.reason and got.fix == HOW_TO_ENABLE


def test_rapl_on_this_machine_is_measured_or_its_absence_explained():
    """The rule on the real /sys: either a working counter, or a reason (never a zero)."""
    got = probe_rapl(Path("/"))
    if isinstance(got, Unavailable):
        assert got.reason and ("virtual machine" in got.reason or "5.10" in got.reason)
    else:
        assert got.read().energy_mj is not None


# -- Raspberry Pi 5 ------------------------------------------------------------------------------------------

def test_pmic_pairs_current_and_voltage_by_rail_name():
    r = parse_pmic((FIX / "rpi5_pmic_read_adc.txt").read_text())
    assert set(r.rails_mw) == {"3V7_WL_SW", "3V3_SYS", "VDD_CORE", "HDMI"}
    assert r.rails_mw["VDD_CORE"] == pytest.approx(6.22421 * 0.861733 * 1000)
    assert r.total_mw == pytest.approx(1000 * (0.09368929 * 3.699776 + 0.0878337 * 3.310033 + 6.22421 * 0.861733
                                               + 0.0241758 * 5.08664))
    assert set(r.unpaired) == {"EXT5V", "BATT"}


def test_pmic_pairs_by_name_not_index_and_drops_nan():
    text = ("  B_V volt(1)=2.0V\n  A_A current(1)=3.0A\n  A_V volt(9)=1.0V\n  B_A current(0)=0.5A\n"
            "  BATT_V volt(25)=nanV\n garbage\n")
    r = parse_pmic(text)
    assert r.rails_mw == {"A": 3000.0, "B": 1000.0} and r.unpaired == ()


def test_pmic_absent_or_unregistered_says_why():
    def not_registered(argv):
        return 'error=1 error_msg="Command not registered"\n'

    def missing(argv):
        raise FileNotFoundError(argv[0])

    got = probe_pmic(not_registered)
    assert isinstance(got, Unavailable) and "Raspberry Pi 5" in got.reason
    got = probe_pmic(missing)
    assert isinstance(got, Unavailable) and "not a Raspberry Pi" in got.reason
    src = probe_pmic(lambda argv: (FIX / "rpi5_pmic_read_adc.txt").read_text())
    assert src.scope == Scope.SOC_RAILS and src.read().power_mw > 5000


def test_get_throttled_bits():
    bits = parse_throttled("throttled=0x50005\n")
    assert bits == 0x50005
    now, ever = throttle_flags(bits)
    assert now == ["under-voltage", "throttled"] and ever == ["under-voltage", "throttled"]
    assert parse_throttled("error") is None


# -- thermal zones, clocks, over-current -----------------------------------------------------------------------

def _thermal(root: Path, n: int, kind: str, temp: int, trips: list[tuple[str, int]]) -> None:
    base = f"sys/class/thermal/thermal_zone{n}"
    _write(root, f"{base}/type", kind)
    _write(root, f"{base}/temp", temp)
    for i, (k, t) in enumerate(trips):
        _write(root, f"{base}/trip_point_{i}_type", k)
        _write(root, f"{base}/trip_point_{i}_temp", t)


def test_thermal_zones_with_trips_and_disabled_sensors(tmp_path):
    _thermal(tmp_path, 0, "cpu-thermal", 45500, [("passive", 95000), ("critical", 105000)])
    _thermal(tmp_path, 1, "gpu-thermal", -256000, [("passive", 95000)])
    _thermal(tmp_path, 10, "tj-thermal", 47000, [("active", 40000)])
    zones = find_zones(tmp_path)
    assert [z.name for z in zones] == ["cpu-thermal", "gpu-thermal", "tj-thermal"]
    assert zones[0].trips == (Trip("passive", 95.0), Trip("critical", 105.0))
    assert read_temps(zones) == {"cpu-thermal": 45.5, "tj-thermal": 47.0}
    assert zones[2].trips_crossed(47.0) == []  # an active (fan) trip is not throttling


def test_cpufreq_and_jetson_gpu_devfreq(tmp_path):
    for c in (0, 1):
        _write(tmp_path, f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_cur_freq", 729600)
        _write(tmp_path, f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_max_freq", 1510400 if c else 1190400)
        _write(tmp_path, f"sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq", 1510400)
    d = "sys/class/devfreq/17000000.ga10b"
    _write(tmp_path, f"{d}/cur_freq", 306000000)
    _write(tmp_path, f"{d}/max_freq", 918000000)
    _write(tmp_path, f"{d}/available_frequencies", "306000000 612000000 918000000")
    _write(tmp_path, "sys/class/devfreq/other.dev/cur_freq", 1)
    clocks = find_cpu_clocks(tmp_path)
    gpu = find_gpu_clock(tmp_path)
    assert gpu is not None and gpu.hw_max_mhz == 918
    got = read_clocks([*clocks, gpu])
    assert got == {"cpu0": pytest.approx(729.6), "cpu1": pytest.approx(729.6), "gpu": pytest.approx(306.0)}
    assert capped([*clocks, gpu]) == {"cpu0": (pytest.approx(1190.4), pytest.approx(1510.4))}


def test_overcurrent_counters(tmp_path):
    _write(tmp_path, "sys/kernel/debug/bpmp/debug/soctherm/oc1/event_cnt", 3)
    _write(tmp_path, "sys/kernel/debug/bpmp/debug/soctherm/oc2/event_cnt", 0)
    assert read_counters(find_counters(tmp_path)) == {"oc1": 3, "oc2": 0}


def test_state_on_this_machine_reads_what_is_readable_and_explains_the_rest():
    probe = StateProbe(Path("/"))
    snap = probe.snapshot()
    if probe.zones and snap.temps_c:
        assert all(-40 < t < 130 for t in snap.temps_c.values())
    else:
        assert "thermal zone" in probe.absent["temperature"]
    if probe.cpu_clocks:
        assert all(0 < v < 10_000 for k, v in snap.clocks_mhz.items() if k.startswith("cpu"))
    else:
        assert "cpufreq" in probe.absent["cpu clock"]
    assert set(probe.absent) <= {"temperature", "cpu clock", "gpu clock", "over-current", "throttle bits"}


# -- throttle rules ------------------------------------------------------------------------------------------

TRIPS = {"cpu": (Trip("active", 50.0), Trip("passive", 90.0), Trip("critical", 105.0))}


def snap(t: float = 60.0, clocks: float = 1500.0, oc: int = 0, bits: int | None = None) -> Snapshot:
    return Snapshot(0, {"cpu": t}, {"cpu0": clocks}, {"oc1": oc}, bits)


def test_downclock_alone_is_not_throttling():
    v = judge([snap(clocks=1500), snap(clocks=700), snap(clocks=900)], trips=TRIPS,
              capped={"cpu0": (1200.0, 1500.0)})
    assert not v and v.reasons == ()


def test_a_trip_crossed_is_throttling_and_reports_a_cap_with_it():
    v = judge([snap(60), snap(91), snap(80)], trips=TRIPS, capped={"cpu0": (1200.0, 1500.0)})
    assert v and "passive trip point 90.0" in v.reasons[0] and "capped" in v.reasons[1]
    assert not judge([snap(60), snap(89.9)], trips=TRIPS)  # below the passive trip; the active one is a fan


def test_an_overcurrent_event_is_throttling():
    assert judge([snap(oc=2), snap(oc=3)], trips=TRIPS).reasons == ("over-current event oc1: count rose 2 -> 3",)
    assert not judge([snap(oc=3), snap(oc=3)], trips=TRIPS)


@pytest.mark.parametrize("bits, throttled", [
    ((0x0, 0x0), False),
    ((0x50000, 0x50000), False),  # happened before the window (since boot only)
    ((0x0, 0x4), True),  # throttled now
    ((0x0, 0x80000), True),  # soft temperature limit occurred during the window
    ((0x1, 0x10001), True),  # under-voltage now
])
def test_raspberry_pi_throttle_bits(bits, throttled):
    assert bool(judge([snap(bits=bits[0]), snap(bits=bits[1])], trips={})) is throttled


# -- energy --------------------------------------------------------------------------------------------------

def test_energy_of_power_samples_and_of_a_counter():
    s = 1_000_000_000
    step = [PowerReading(0, power_mw=1000), PowerReading(s, power_mw=1000), PowerReading(2 * s, power_mw=3000),
            PowerReading(3 * s, power_mw=3000)]
    # trapezoids by hand: 1 W for 1 s, the 1 -> 3 W ramp for 1 s (2 J), 3 W for 1 s
    assert energy_mj(step, 0, 3 * s, kind="power") == pytest.approx(1000 + 2000 + 3000)
    assert energy_mj(step, -s, 4 * s, kind="power") == pytest.approx(6000 + 1000 + 3000)  # held at the ends
    counter = [PowerReading(0, energy_mj=100.0), PowerReading(2 * s, energy_mj=300.0)]
    assert energy_mj(counter, s // 2, s, kind="energy") == pytest.approx(50.0)
    assert energy_mj(counter, -s, s, kind="energy") is None  # the counter must bracket the window


def test_window_energy_interval_covers_the_mean_and_shrinks_with_steady_power():
    s = 1_000_000_000
    noisy = [PowerReading(i * s // 10, power_mw=2000 + (300 if i % 3 else -600)) for i in range(101)]
    steady = [PowerReading(i * s // 10, power_mw=2000) for i in range(101)]
    a, b = window_energy(noisy, 0, 10 * s, kind="power"), window_energy(steady, 0, 10 * s, kind="power")
    assert a.power_ci_w[0] < a.mean_power_w < a.power_ci_w[1] and a.blocks == 10
    assert b.power_ci_w == (pytest.approx(2.0), pytest.approx(2.0)) and b.mean_power_w == pytest.approx(2.0)
    assert t95(9) == 2.262 and t95(1000) == 1.96


# -- source choice -------------------------------------------------------------------------------------------

def test_auto_collects_every_reason_and_a_named_missing_source_is_a_usage_error(tmp_path):
    from edgekit.core.errors import UsageError

    probers = {n: (lambda n=n: Unavailable(n, f"{n} is absent", "fix it")) for n in
               ("ina3221", "tegrastats", "rpi-pmic", "rapl", "nvml")}
    src, why = open_source("auto", probers=probers)
    assert src is None and [u.source for u in why] == ["ina3221", "tegrastats", "rpi-pmic", "rapl", "nvml"]
    src, why = open_source("auto", probers=probers, prefer_gpu=True)
    assert [u.source for u in why][-2:] == ["nvml", "rapl"]
    with pytest.raises(UsageError, match="--power rapl: rapl is absent"):
        open_source("rapl", probers=probers)
    with pytest.raises(UsageError, match="unknown power source"):
        open_source("wall")
    assert open_source("off")[0] is None


def test_nvml_with_a_fake_library_and_without_one():
    from edgekit.telemetry.nvml import probe_nvml

    class FakeNvml:
        energy = 1000

        def nvmlInit(self):
            pass

        def nvmlDeviceGetHandleByIndex(self, i):
            return i

        def nvmlDeviceGetName(self, h):
            return b"NVIDIA L4"

        def nvmlDeviceGetTotalEnergyConsumption(self, h):
            FakeNvml.energy += 500
            return FakeNvml.energy

        def nvmlShutdown(self):
            pass

    src = probe_nvml(module=FakeNvml())
    assert src.scope == Scope.GPU_BOARD and "NVIDIA L4" in src.detail
    assert src.read().energy_mj == 2000

    class NoDriver(FakeNvml):
        def nvmlInit(self):
            raise OSError("NVML Shared Library Not Found")

    got = probe_nvml(module=NoDriver())
    assert isinstance(got, Unavailable) and "no NVIDIA driver" in got.reason


def test_cooldown_waits_until_near_idle_and_gives_up_at_its_limit(tmp_path):
    import time as _time

    from edgekit.telemetry.session import Telemetry, TelemetryOptions

    _thermal(tmp_path, 0, "cpu-thermal", 60000, [("passive", 95000)])
    temp = tmp_path / "sys/class/thermal/thermal_zone0/temp"
    sleeps = []

    def cooling(s: float) -> None:  # each second of waiting cools the zone by 2 °C
        sleeps.append(s)
        temp.write_text(f"{int(temp.read_text()) - 2000}\n")

    tel = Telemetry(TelemetryOptions(power="off", cooldown=True, cooldown_delta_c=3.0), source=None,
                    unavailable=[], probe=StateProbe(tmp_path), sleep=cooling)
    tel.idle_temp_c = 50.0
    got = tel.cooldown()
    assert got["reached"] and got["target_c"] == 53.0 and got["temp_c"] == 52.0 and len(sleeps) == 4
    temp.write_text("70000\n")
    stuck = Telemetry(TelemetryOptions(power="off", cooldown=True, cooldown_max_s=0.05), source=None,
                      unavailable=[], probe=StateProbe(tmp_path), sleep=lambda s: _time.sleep(0.02))
    stuck.idle_temp_c = 50.0
    got = stuck.cooldown()
    assert not got["reached"] and got["temp_c"] == 70.0 and got["waited_s"] >= 0.05
    nothing = Telemetry(TelemetryOptions(power="off", cooldown=True), source=None, unavailable=[],
                        probe=StateProbe(tmp_path / "empty"))
    assert nothing.cooldown()["reason"].startswith("no idle temperature")


def test_hwmon_reads_the_jetpack4_iio_layout(tmp_path):
    """JetPack 4 (Nano) exposes the INA3221 as iio: rail_name_<k> and in_power<k>_input in mW."""
    base = "sys/bus/i2c/devices/6-0040/iio:device0"
    for k, (rail, mw) in enumerate((("POM_5V_IN", 2933), ("POM_5V_GPU", 120), ("POM_5V_CPU", 840))):
        _write(tmp_path, f"{base}/rail_name_{k}", rail)
        _write(tmp_path, f"{base}/in_power{k}_input", mw)
    src = probe_hwmon(tmp_path)
    r = src.read()
    assert r.power_mw == 2933 and src.scope == Scope.MODULE_INPUT and r.rails_mw["POM_5V_CPU"] == 840
