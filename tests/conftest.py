import json
import os
from pathlib import Path

import pytest


def pytest_configure(config):
    # Fast tests build the tiny model into a private cache; slow tests use the real cache (the
    # SmolLM2 download is ~93 MB), unless POSTLAB_HOME is already set.
    if not config.getoption("-m") or "slow" not in config.getoption("-m") or "not slow" in config.getoption("-m"):
        # Under pytest-xdist (`make test` runs `-n auto`) each worker process gets its own home.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        home = "postlab-home" + (f"-{worker}" if worker else "")
        os.environ["POSTLAB_HOME"] = str(Path(config.rootpath) / ".pytest_cache" / home)
        # Tiny models: with tensors this small, two intra-op threads mostly contend with each other
        # (and with other jobs) on a 2-core machine; one thread each. Subprocesses inherit it.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        # dtype=auto would measure this machine's matmul speed (postlab.machine); tests compare numbers in fp32.
        os.environ.setdefault("POSTLAB_DTYPE", "fp32")
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The tests' own load would make every CLI subprocess warn that the machine is busy (stderr is compared).
    os.environ["POSTLAB_BUSY_WARNING"] = "0"


# Headless Chromium flags: the closed network makes Chromium hang on background connections without them.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_executable() -> str:
    """Debian's chromium (or $POSTLAB_CHROMIUM). Without one the test skips, unless
    POSTLAB_REQUIRE_BROWSER=1 (set by .ci/run, which installs it): then it fails."""
    import shutil

    path = os.environ.get("POSTLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path and os.path.exists(path):
        return path
    if os.environ.get("POSTLAB_REQUIRE_BROWSER") == "1":
        pytest.fail("POSTLAB_REQUIRE_BROWSER=1 but no chromium was found (set POSTLAB_CHROMIUM)")
    pytest.skip("no chromium on this machine (.ci/run installs it)")


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def conv(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.fixture
def chat_file(tmp_path):
    rows = [conv(f"Question {i}?", f"Answer number {i} is {i * 7}.") for i in range(8)]
    return write_jsonl(tmp_path / "chat.jsonl", rows)
