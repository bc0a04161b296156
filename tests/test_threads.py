"""Threads on a shared machine (issue 16, item 14): the OpenMP wait policy and thread cap the CLI sets
before torch loads, and the busy-machine warning."""

import os
import subprocess
import sys

import pytest

from postlab.utils.threads import busy_cores, busy_warning, configure_threads_env, machine_load, sampled_load, threads_error


def test_waiting_threads_sleep_and_postlab_threads_caps_both_runtimes():
    env = {"POSTLAB_THREADS": "1"}
    configure_threads_env(env, busy=True)
    assert env == {"POSTLAB_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env = {}
    configure_threads_env(env, busy=False)  # alone, spinning threads are faster: nothing set
    assert env == {}
    env = {"GOMP_SPINCOUNT": "10000"}
    configure_threads_env(env, busy=True)  # the user's spin count is kept
    assert env == {"GOMP_SPINCOUNT": "10000"}


def test_the_users_own_settings_win():
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2", "POSTLAB_THREADS": "1"}
    configure_threads_env(env, busy=True)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["OMP_NUM_THREADS"] == "2" and env["MKL_NUM_THREADS"] == "1"
    env = {}
    configure_threads_env(env, busy=True)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}  # no cap unless asked


def test_a_malformed_thread_count_is_an_error_not_a_setting():
    for bad in ("0", "two", "-1", "1.5"):
        env = {"POSTLAB_THREADS": bad}
        configure_threads_env(env, busy=False)
        assert "OMP_NUM_THREADS" not in env
        assert "POSTLAB_THREADS" in threads_error(env) and repr(bad) in threads_error(env)
    assert threads_error({}) is None and threads_error({"POSTLAB_THREADS": "3"}) is None


def test_busy_warning_only_when_other_work_fills_the_cores(monkeypatch):
    monkeypatch.delenv("POSTLAB_BUSY_WARNING", raising=False)
    assert busy_warning(load=0.3, cores=2) is None
    assert busy_warning(load=1.5, cores=2) is None
    w = busy_warning(load=2.1, cores=2)
    assert "busy (load 2.1 on 2 cores)" in w and "POSTLAB_THREADS=1" in w
    monkeypatch.setenv("POSTLAB_BUSY_WARNING", "0")
    assert busy_warning(load=2.1, cores=2) is None


def test_the_cli_sets_the_thread_count_before_torch_and_refuses_a_bad_count():
    code = "import postlab.cli, torch, os; print(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "POSTLAB_THREADS": "1"}, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "1"], out.stderr[-2000:]
    bad = subprocess.run([sys.executable, "-m", "postlab", "eval", "--help"], env={**env, "POSTLAB_THREADS": "lots"},
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: POSTLAB_THREADS='lots': expected a whole number of threads, at least 1"


def test_busy_cores_from_two_readings_of_proc_stat_by_hand():
    # 100 ticks pass on 2 cores: 60 busy (user 40, nice 10, system 10), 40 idle (idle 30, iowait 10) -> 1.2 cores
    before = "cpu  1000 100 200 5000 50 0 0 0 0 0"
    after = "cpu  1040 110 210 5030 60 0 0 0 0 0"
    assert abs(busy_cores(before, after, cores=2) - 1.2) < 1e-12
    assert busy_cores(before, before, cores=2) == 0.0  # no ticks passed: nothing to say, not a division by zero


def test_the_load_combines_the_average_and_the_sample_by_hand():
    from postlab.utils.threads import combined_load

    assert combined_load(0.2, 1.9) == 1.9  # a job started a moment ago: the average has not caught up
    assert combined_load(1.8, 1.0) == 1.8  # a job between parallel phases: the average remembers it
    assert combined_load(1.8, 0.1) == 0.1  # a job that ended a moment ago: the machine is idle now
    assert combined_load(1.8, None) == 1.8  # no /proc/stat: the average is all there is


def test_a_machine_idle_now_is_not_busy_though_the_load_average_remembers_a_job(monkeypatch):
    import postlab.utils.threads as threads

    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.8, 1.0, 0.5))
    monkeypatch.setattr(threads, "_sample", lambda interval: 0.05)
    env: dict = {}
    configure_threads_env(env)
    assert "OMP_WAIT_POLICY" not in env  # it spins: nothing else runs
    assert busy_warning(cores=2) is None


def test_a_job_started_a_moment_ago_is_seen_though_the_load_average_lags():
    # One spinning process: the 1-minute load average barely moves within a second, the sample sees ~1 core
    # (or more, when other work shares the machine too).
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        assert sampled_load(0.3) >= 0.7
        assert machine_load() >= 0.7
    finally:
        spinner.kill()
        spinner.wait()


def test_in_passing_thread_returns_or_raises_and_its_thread_ends():
    import threading

    from postlab.utils.threads import in_passing_thread

    seen = []
    assert in_passing_thread(lambda: seen.append(threading.current_thread()) or 7) == 7
    assert seen[0] is not threading.main_thread() and not seen[0].is_alive()
    with pytest.raises(KeyError, match="boom"):
        in_passing_thread(lambda: {}["boom"])


def test_serve_does_its_torch_work_in_a_thread_that_ends(monkeypatch):
    """The model is loaded, and the one-row layout measured, in a thread that has ended before the server
    starts: the batcher's thread is then the only one holding an OpenMP team (see in_passing_thread)."""
    import threading

    import uvicorn

    from postlab.models import load
    from postlab.rollout.engine import TorchEngine
    from postlab.serve import serve

    threads = {}
    real_load, real_choose = load.load_model_and_tokenizer, TorchEngine.choose_single_row
    monkeypatch.setattr(load, "load_model_and_tokenizer",
                        lambda *a, **kw: threads.setdefault("load", threading.current_thread()) and real_load(*a, **kw))

    def choose(self, *a, **kw):
        threads["choose"] = threading.current_thread()
        return real_choose(self, *a, **kw)

    monkeypatch.setattr(TorchEngine, "choose_single_row", choose)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: threads.setdefault("serve", threading.current_thread()))
    serve(model="tiny", monitor_log=None, single_row="auto")
    assert threads["serve"] is threading.main_thread()
    assert threads["load"] is threads["choose"] is not threading.main_thread()
    assert not threads["load"].is_alive()
