"""The server end to end: `postlab serve` on the tiny model in a subprocess, called with the official
`openai` client (and raw httpx where the client would refuse to send a malformed request)."""

import asyncio
import os
import re
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest

KEY = "sk-test-key"
MODEL = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "monitor.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "postlab", "serve", "--model", MODEL, "--port", str(port), "--api-key", KEY,
         "--max-tokens", "16", "--monitor-log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{proc.stdout.read().decode()}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


def metric(base: str, name: str, *, missing_ok: bool = False) -> float:
    """Sum of a metric's samples (all label sets) in /metrics; a labelled metric has none before its
    first event (``missing_ok`` reads that as 0)."""
    text = httpx.get(f"{base}/metrics").text
    values = [float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)]
    assert values or missing_ok, f"{name} not in /metrics"
    return sum(values)


def test_completion(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=7)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL
    choice = r.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5 and 1 <= r.usage.completion_tokens <= 7
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_stream_matches_the_plain_answer(client):
    messages = [{"role": "user", "content": "Tell me something."}]
    kwargs = dict(model=MODEL, messages=messages, max_tokens=12, temperature=1.0, seed=5)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].finish_reason is None]
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason is not None]
    assert len(finals) == 1 and chunks.index(finals[0]) == len(chunks) - 2  # then the usage chunk
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    streamed = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    plain = client.chat.completions.create(**kwargs)
    assert streamed == plain.choices[0].message.content
    assert finals[0].choices[0].finish_reason == plain.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_raw_stream_ends_with_done(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    assert '"usage"' not in "".join(lines)  # not asked for


def test_auth_refused(server):
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 401 and "API key" in e.value.message
    assert httpx.get(f"{server}/v1/models").status_code == 401
    assert httpx.get(f"{server}/metrics").status_code == 200  # metrics stay open for scrapers


@pytest.mark.parametrize("messages, extra, expected", [
    ([{"role": "robot", "content": "hi"}], {}, "unknown role 'robot'"),
    ([], {}, "messages"),
    ([{"role": "user", "content": "x" * 3000}], {}, "prompt too long"),
    ([{"role": "user", "content": "hi"}], {"max_tokens": 5000}, "max_tokens too large"),
    ([{"role": "user", "content": "hi"}], {"temperature": -1}, "temperature"),
])
def test_bad_requests_get_400_with_a_clear_message(client, messages, extra, expected):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=messages, **extra)
    assert e.value.status_code == 400 and expected in e.value.message
    assert e.value.body["type"] == "invalid_request_error"


def test_malformed_json_then_the_server_keeps_serving(server, client):
    r = httpx.post(f"{server}/v1/chat/completions", content=b'{"model": "tiny", "messages": [',
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    ok = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert ok.usage.completion_tokens >= 1


def test_stop_string_truncates_with_finish_reason_stop(client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Go on."}], max_tokens=16, temperature=0)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    assert len(full) >= 6
    stop = full[3:5]
    cut = client.chat.completions.create(stop=[stop], **kwargs).choices[0]
    assert cut.finish_reason == "stop" and cut.message.content == full[: full.index(stop)]


def test_seeded_request_is_reproducible_even_amid_other_traffic(server, client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Pick a word."}], max_tokens=16,
                  temperature=1.0, seed=1234)
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    assert client.chat.completions.create(**kwargs).choices[0].message.content == first
    other_seed = client.chat.completions.create(**{**kwargs, "seed": 4321}).choices[0].message.content
    assert other_seed != first

    async def crowded() -> str:
        aclient = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)
        noise = [aclient.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"noise {i}"}],
                                                 max_tokens=16, temperature=0.7, top_p=0.9) for i in range(6)]
        results = await asyncio.gather(*noise[:3], aclient.chat.completions.create(**kwargs), *noise[3:])
        return results[3].choices[0].message.content

    steps_before, rows_before = metric(server, "postlab:batch_size_count"), metric(server, "postlab:batch_size_sum")
    assert asyncio.run(crowded()) == first
    steps, rows = metric(server, "postlab:batch_size_count") - steps_before, metric(server, "postlab:batch_size_sum") - rows_before
    assert rows > steps  # some requests were decoded together


def test_load_32_clients_10_requests_each(server):
    clients, per_client = 32, 10
    done_before = metric(server, "postlab:requests_total", missing_ok=True)

    async def one_client(aclient, c: int) -> int:
        ok = 0
        for i in range(per_client):
            r = await aclient.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"client {c} request {i}"}], max_tokens=8)
            ok += r.usage.completion_tokens >= 1
        return ok

    async def run() -> list[int]:
        aclient = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=60)
        return await asyncio.gather(*(one_client(aclient, c) for c in range(clients)))

    start = time.perf_counter()
    assert asyncio.run(run()) == [per_client] * clients
    elapsed = time.perf_counter() - start
    assert metric(server, "postlab:requests_total") - done_before == clients * per_client
    mean_batch = metric(server, "postlab:batch_size_sum") / metric(server, "postlab:batch_size_count")
    assert mean_batch > 2, f"requests were not batched (mean batch {mean_batch:.2f})"
    print(f"{clients * per_client} requests in {elapsed:.1f}s, mean batch {mean_batch:.1f}")


def test_metrics_exposed(server, client):
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    for name in ("postlab:num_requests_running", "postlab:num_requests_waiting",
                 "postlab:time_to_first_token_seconds_count", "postlab:e2e_request_latency_seconds_count",
                 "postlab:prompt_tokens_total", "postlab:generation_tokens_total"):
        metric(server, name)
    assert metric(server, "postlab:time_to_first_token_seconds_count") >= 1
    assert metric(server, "postlab:prompt_tokens_total") > metric(server, "postlab:time_to_first_token_seconds_count")
    deadline = time.monotonic() + 5  # the monitor scores answers off the request path
    while metric(server, "postlab:monitor_checks_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "postlab:monitor_checks_total") >= 1
