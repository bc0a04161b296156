"""postlab.machine: which dtype `auto` picks and why, decided by hand from injected numbers (never from
this machine's speed), the per-machine cache, and `auto` in config fields."""

import json

import pytest

from postlab import machine
from postlab.config import describe_fields, load_config
from postlab.train.common import OptimConfig

XEON = "model name\t: Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz\nflags\t\t: fpu sse avx avx2 fma avx512f avx512bw\n"
AMX = "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_info_reads_model_and_bf16_flags():
    info = machine.cpu_info(XEON + "\n" + XEON)  # one block per core: the first is enough
    assert info["cpu"] == "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz"
    # AVX-512 without its bf16 dot products (this Xeon) is told apart from AVX2 alone (the AMD EPYC of run e2)
    assert info["flags"] == {"amx_bf16": False, "avx512_bf16": False, "avx512f": True, "avx2": True}
    assert machine.cpu_info(AMX)["flags"] == {"amx_bf16": True, "avx512_bf16": True, "avx512f": True, "avx2": True}
    assert machine.cpu_info("")["flags"] == {"amx_bf16": False, "avx512_bf16": False, "avx512f": False,
                                             "avx2": False}


@pytest.mark.parametrize("fp32, bf16, flags, want", [
    (126.0, 31.0, {}, "fp32"),  # the Xeon without AVX512-BF16/AMX: bf16 is emulated, 4x slower
    (379.0, 2507.0, {"amx_bf16": True}, "bf16"),  # the AMX machine the default preset was sized on
    (100.0, 105.0, {"avx512_bf16": True}, "fp32"),  # 5% faster does not pay for autocast's casts
    (100.0, 111.0, {}, "bf16"),  # measured faster wins whatever the flags say
])
def test_the_faster_measured_dtype_wins(fp32, bf16, flags, want):
    dtype, why = machine.choose_dtype(fp32_gflops=fp32, bf16_gflops=bf16, flags=flags)
    assert dtype == want
    assert f"{bf16:.0f}" in why and f"{fp32:.0f}" in why


def test_unmeasured_cpu_goes_by_flags_and_cuda_by_support():
    assert machine.choose_dtype(fp32_gflops=None, bf16_gflops=None, flags={"avx512_bf16": True})[0] == "bf16"
    assert machine.choose_dtype(fp32_gflops=None, bf16_gflops=None, flags={"amx_bf16": True})[0] == "bf16"
    dtype, why = machine.choose_dtype(fp32_gflops=None, bf16_gflops=None, flags={"avx2": True})
    assert dtype == "fp32" and "not measured" in why
    assert machine.choose_dtype(fp32_gflops=1.0, bf16_gflops=0.5, flags={}, cuda_bf16=True)[0] == "bf16"
    assert machine.choose_dtype(fp32_gflops=None, bf16_gflops=None, flags={"amx_bf16": True}, cuda_bf16=False)[0] == "fp32"


class FakeBench:
    def __init__(self, fp32=126.0, bf16=31.0):
        self.calls, self.result = 0, {"fp32": fp32, "bf16": bf16}

    def __call__(self, **kw):
        self.calls += 1
        return dict(self.result)


def test_measurement_is_cached_per_cpu_model_and_torch_version(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    bench = FakeBench()
    first = machine.probe(measure_fn=bench, cpuinfo=XEON, device="cpu")
    assert bench.calls == 1 and first["matmul_gflops"]["fp32"] == 126.0 and first["matmul_gflops"]["cached"] is False
    again = machine.probe(measure_fn=bench, cpuinfo=XEON, device="cpu")
    assert bench.calls == 1 and again["matmul_gflops"]["cached"] is True and again["matmul_gflops"]["bf16"] == 31.0
    cache = json.loads((tmp_path / "machine.json").read_text())
    (key,) = cache
    assert "Platinum 8370C" in key and machine.torch_version() in key
    machine.probe(measure_fn=bench, cpuinfo=AMX, device="cpu")  # another CPU model: measured afresh
    assert bench.calls == 2 and len(json.loads((tmp_path / "machine.json").read_text())) == 2
    unmeasured = machine.probe(measure=False, measure_fn=bench, cpuinfo=AMX.replace("8488C", "9999"), device="cpu")
    assert bench.calls == 2 and unmeasured["matmul_gflops"] is None
    for key in ("cpu", "flags", "cores", "threads", "torch", "device"):
        assert key in first


def test_one_model_name_with_other_flags_is_another_machine(tmp_path, monkeypatch):
    # "AMD EPYC" names CPUs with AVX512-BF16 and CPUs with AVX2 only: bf16 runs ~2x and ~0.3x fp32 on them
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    bench = FakeBench(fp32=203.0, bf16=443.0)
    epyc = "model name\t: AMD EPYC\nflags\t\t: avx2 avx512f avx512_bf16\n"
    machine.probe(measure_fn=bench, cpuinfo=epyc, device="cpu")
    bench.result = {"fp32": 190.0, "bf16": 60.0}
    rec = machine.probe(measure_fn=bench, cpuinfo="model name\t: AMD EPYC\nflags\t\t: avx2\n", device="cpu")
    assert bench.calls == 2 and rec["matmul_gflops"]["bf16"] == 60.0
    assert len(json.loads((tmp_path / "machine.json").read_text())) == 2


def test_a_refresh_keeps_the_highest_figure_seen(tmp_path, monkeypatch):
    # A figure measured while other work shared the cores (238 against the machine's 443 bf16) must not size
    # every later run: postlab run measures again and keeps, per dtype, the best seen; a busy refresh lowers nothing.
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    bench = FakeBench(fp32=91.0, bf16=238.0)
    machine.probe(measure_fn=bench, cpuinfo=XEON, device="cpu")
    bench.result = {"fp32": 203.0, "bf16": 443.0}
    assert machine.probe(measure_fn=bench, cpuinfo=XEON, device="cpu")["matmul_gflops"]["bf16"] == 238.0  # cached
    quiet = machine.probe(measure_fn=bench, refresh=True, cpuinfo=XEON, device="cpu")["matmul_gflops"]
    assert bench.calls == 2 and (quiet["fp32"], quiet["bf16"]) == (203.0, 443.0) and quiet["cached"] is False
    bench.result = {"fp32": 120.0, "bf16": 450.0}  # busy for fp32, a little faster for bf16
    rec = machine.probe(measure_fn=bench, refresh=True, cpuinfo=XEON, device="cpu")
    mm = rec["matmul_gflops"]
    assert bench.calls == 3 and (mm["fp32"], mm["bf16"]) == (203.0, 450.0)
    assert mm["measured_now"] == {"fp32": 120.0, "bf16": 450.0} and "measured now fp32 120" in machine.describe(rec)
    (cached,) = json.loads((tmp_path / "machine.json").read_text()).values()
    assert (cached["fp32"], cached["bf16"]) == (203.0, 450.0)
    assert machine.probe(measure=False, refresh=True, measure_fn=bench, cpuinfo=XEON, device="cpu")["matmul_gflops"]["cached"]
    assert bench.calls == 3  # refresh needs measure


def test_a_run_measures_again_at_its_first_start_and_not_on_a_rerun(tmp_path, monkeypatch):
    from postlab.run import machine_record

    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path / "home"))
    bench = FakeBench(fp32=91.0, bf16=238.0)
    monkeypatch.setattr(machine, "measure_matmul", bench)
    machine.probe()  # the stale figure, cached
    bench.result = {"fp32": 203.0, "bf16": 443.0}
    out = tmp_path / "run"
    out.mkdir()
    assert machine_record(out, measure=True)["matmul_gflops"]["bf16"] == 443.0 and bench.calls == 2
    bench.result = {"fp32": 300.0, "bf16": 900.0}
    assert machine_record(out, measure=True)["matmul_gflops"]["bf16"] == 443.0 and bench.calls == 2  # as it began


def test_decide_reads_the_record_and_postlab_dtype_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    rec = machine.probe(measure_fn=FakeBench(fp32=126.0, bf16=31.0), cpuinfo=XEON, device="cpu")
    assert machine.decide(rec)[0] == "fp32"
    monkeypatch.setenv("POSTLAB_DTYPE", "bf16")
    dtype, why = machine.decide(rec)
    assert dtype == "bf16" and "POSTLAB_DTYPE" in why


@pytest.fixture
def fake_machine(tmp_path, monkeypatch):
    """`auto` resolved from injected numbers: a machine where bf16 is 4x slower than fp32."""
    monkeypatch.setenv("POSTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("POSTLAB_DTYPE", raising=False)
    bench = FakeBench(fp32=126.0, bf16=31.0)
    monkeypatch.setattr(machine, "measure_matmul", bench)
    monkeypatch.setattr(machine, "_AUTO", {})
    return bench


def test_auto_in_config_fields_resolves_to_the_faster_dtype(fake_machine, capsys):
    assert OptimConfig().bf16 is False  # the default is auto: fp32 is faster here
    assert OptimConfig(bf16="auto").bf16 is False
    fake_machine.result = {"fp32": 379.0, "bf16": 2507.0}
    machine._AUTO.clear()
    (machine.postlab_home() / "machine.json").unlink()
    assert OptimConfig(bf16="auto").bf16 is True
    assert OptimConfig(bf16=False).bf16 is False  # explicit values are kept as they are
    from postlab.train.sample import SampleConfig

    assert SampleConfig(suite="spec", out="x.jsonl").dtype == "bf16"
    assert SampleConfig(suite="spec", out="x.jsonl", dtype="fp32").dtype == "fp32"
    assert fake_machine.calls == 2  # once per machine record, not once per config


def test_auto_is_logged_once_with_the_reason(fake_machine, capsys):
    OptimConfig()
    OptimConfig()
    err = capsys.readouterr().err
    assert err.count("dtype auto") == 1 and "fp32" in err and "126" in err


def test_help_shows_auto_without_measuring(fake_machine):
    from postlab.train.sft import SFTConfig

    lines = describe_fields(SFTConfig)
    line = next(ln for ln in lines if ln.strip().startswith("optim.bf16 "))
    assert "'auto'" in line and "bool" in line
    assert fake_machine.calls == 0


def test_overrides_accept_auto_true_false(fake_machine, chat_file):
    from postlab.train.sft import SFTConfig

    base = [f"data.train_file={chat_file}"]
    assert load_config(SFTConfig, None, [*base, "optim.bf16=true"]).optim.bf16 is True
    assert load_config(SFTConfig, None, [*base, "optim.bf16=false"]).optim.bf16 is False
    assert load_config(SFTConfig, None, [*base, "optim.bf16=auto"]).optim.bf16 is False
    from postlab.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.bf16"):
        load_config(SFTConfig, None, [*base, "optim.bf16=fp16"])
