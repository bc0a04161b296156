"""Rollouts spread over Ray workers (issue 20): a ``RolloutEngine`` whose rows are sampled by N Ray actors,
each holding its own copy of the policy behind a ``TorchEngine``.

- **Rows are split, not reseeded.** A batch's rows go to the workers in contiguous shards; each row
  draws from its own generator (per-row ``SamplingParams`` with seeds, as ``TorchEngine`` supports),
  so the rollout is the same whatever the number of workers, and the same as the in-process engine's.
- **Weights are versioned.** ``push_weights(model)`` sends the trainer's current weights to every worker
  (one ``ray.put``, read by all) and bumps ``version``; every shard comes back with the version of the
  weights that sampled it, kept per row in ``last_versions``. A shard sampled with other weights than
  the current ones is refused: the worker is sent the current weights and the shard is sampled again.
  Training is synchronous (sample, then update, then push), so no sample is ever off-policy by a
  version and no importance correction is needed.
- **A worker that dies is replaced**: the shard is retried once on a fresh actor that loads the model
  and the current weights; a second failure ends the step with a clear error.

``ray`` is an optional dependency (``pip install 'postlab[ray]'``). Without ``address`` a local Ray
instance is started in this process; with one (``ray://host:10001`` or ``auto``) the same code runs
on a cluster whose nodes can load the same model name or path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from postlab.errors import PostlabError
from postlab.rollout.sampling import SamplingParams, row_params
from postlab.rollout.types import Rollout, cat_rollouts


def _ray():
    try:
        import ray
    except ImportError:
        raise PostlabError("rollout workers need Ray: pip install 'postlab[ray]' (or pip install ray)") from None
    return ray


def per_row_params(params: SamplingParams, n: int) -> list[SamplingParams]:
    """Rows 0..n-1 seeded one by one from ``params.seed`` (``sampling.row_params``, as the RL recipes seed them)."""
    if params.seed is None:
        raise PostlabError("rollout workers need a sampling seed (sampling.seed): rows are seeded one by one")
    return row_params(params, params.seed, range(n))


def shards(n: int, k: int) -> list[range]:
    """``n`` rows in at most ``k`` contiguous shards of nearly equal size (the first ones one row longer)."""
    k = max(1, min(k, n))
    size, extra = divmod(n, k)
    out, start = [], 0
    for i in range(k):
        end = start + size + (i < extra)
        out.append(range(start, end))
        start = end
    return out


START_TIMEOUT_S = 300  # loading a model on a worker can take a minute; placing one that does not fit never ends


class RolloutWorker:
    """A Ray actor's state: the policy and its engine. Plain class; ``RayEngine`` wraps it with ``ray.remote``."""

    def __init__(self, model: str, dtype: str, threads: int, device: str, decode_dtype: str | None = None):
        from postlab.models.load import load_model_and_tokenizer
        from postlab.rollout.engine import TorchEngine

        torch.set_num_threads(threads)
        self.model, tok = load_model_and_tokenizer(model, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self.engine = TorchEngine(model=self.model, tokenizer=tok,
                                  decode_dtype=getattr(torch, decode_dtype) if decode_dtype else None)
        self.version = 0

    def load(self, state: dict, version: int) -> int:
        self.model.load_state_dict(state)
        self.version = version
        return version

    def generate(self, prompts: list[list[int]], params: list[SamplingParams]) -> tuple[Rollout, int]:
        return self.engine.generate_ids(prompts, params), self.version

    def pid(self) -> int:
        return os.getpid()


class RayEngine:
    """``RolloutEngine`` over ``workers`` Ray actors (see the module's docstring)."""

    def __init__(self, model: str, *, workers: int, tokenizer=None, address: str | None = None, dtype: str = "float32",
                 cpus_per_worker: float = 1.0, threads_per_worker: int = 1, device: str = "cpu",
                 decode_dtype: str | None = None):
        if workers < 1:
            raise PostlabError(f"rollout workers: need at least 1, got {workers}")
        ray = _ray()
        if not ray.is_initialized():
            local = address is None
            if local:  # a throwaway local instance: no usage report over the network
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     num_cpus=max(os.cpu_count() or 1, int(workers * cpus_per_worker + 0.999)) if local else None)
        if tokenizer is None:
            from postlab.models.load import load_tokenizer

            tokenizer = load_tokenizer(model)
        self.tokenizer = tokenizer
        self._spec, self._cpus = (model, dtype, threads_per_worker, device, decode_dtype), cpus_per_worker
        self._remote = ray.remote(num_cpus=cpus_per_worker, num_gpus=1 if device.startswith("cuda") else 0)(RolloutWorker)
        self.version = 0
        self._weights = None  # the ObjectRef of the current weights (None: the workers' own, loaded at start)
        self.restarts = 0
        self.last_versions: list[int] = []
        self._actors = [self._remote.remote(*self._spec) for _ in range(workers)]
        self._wait_started(self._actors, cpus_per_worker)

    def _wait_started(self, actors, cpus: float) -> None:
        """Wait until every worker has loaded the model; one that cannot be placed is a clear error, not a hang."""
        ray = _ray()
        refs = [a.pid.remote() for a in actors]
        ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=START_TIMEOUT_S)
        ray.get(ready)  # a worker that failed to load the model raises here
        if waiting:
            free = ray.available_resources().get("CPU", 0)
            for a in actors:
                ray.kill(a)
            raise PostlabError(f"{len(waiting)} of {len(actors)} rollout workers did not start within {START_TIMEOUT_S} s: "
                               f"each asks for {cpus} CPU and the Ray cluster has {free:g} free (lower "
                               "rollout.cpus_per_worker, or add nodes)")

    @property
    def workers(self) -> int:
        return len(self._actors)

    def push_weights(self, model: torch.nn.Module) -> int:
        """Send ``model``'s current weights to every worker; returns the new version."""
        ray = _ray()
        self.version += 1
        self._weights = ray.put({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        ray.get([a.load.remote(self._weights, self.version) for a in self._actors])
        return self.version

    def encode_prompts(self, conversations) -> list[list[int]]:
        texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def generate(self, conversations, params: SamplingParams | Sequence[SamplingParams]) -> Rollout:
        return self.generate_ids(self.encode_prompts(conversations), params)

    def generate_ids(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]) -> Rollout:
        """Sample one response per prompt on the workers. Shared ``params`` are split into per-row seeds
        (``per_row_params``); per-row params are used as given (each needs a seed)."""
        rows = per_row_params(params, len(prompts)) if isinstance(params, SamplingParams) else list(params)
        if len(rows) != len(prompts):
            raise ValueError(f"got {len(rows)} SamplingParams for {len(prompts)} prompts")
        if any(p.seed is None for p in rows):
            raise PostlabError("rollout workers need a seed on every row's SamplingParams")
        parts = shards(len(prompts), self.workers)
        ray = _ray()
        pending = [self._actors[i].generate.remote([prompts[j] for j in s], [rows[j] for j in s]) for i, s in enumerate(parts)]
        results = []
        for i, (s, ref) in enumerate(zip(parts, pending)):
            try:
                rollout, version = ray.get(ref)
            except ray.exceptions.RayActorError:
                rollout, version = self._retry_on_fresh_worker(i, [prompts[j] for j in s], [rows[j] for j in s])
            if version != self.version:  # sampled with other weights: refuse, resend the current ones, sample again
                ray.get(self._actors[i].load.remote(self._weights, self.version))
                rollout, version = ray.get(self._actors[i].generate.remote([prompts[j] for j in s], [rows[j] for j in s]))
            results.append((rollout, version, len(s)))
        self.last_versions = [v for _, v, n in results for _ in range(n)]
        return cat_rollouts([r for r, _, _ in results])

    def _retry_on_fresh_worker(self, i: int, prompts, params) -> tuple[Rollout, int]:
        ray = _ray()
        self.restarts += 1
        try:
            self._actors[i] = self._remote.remote(*self._spec)
            self._wait_started([self._actors[i]], self._cpus)
            if self._weights is not None:
                ray.get(self._actors[i].load.remote(self._weights, self.version))
            return ray.get(self._actors[i].generate.remote(prompts, params))
        except (ray.exceptions.RayError, PostlabError) as e:
            raise PostlabError(f"rollout worker {i} failed twice (restarted once): {e}") from None

    def close(self) -> None:
        ray = _ray()
        for a in self._actors:
            ray.kill(a)
        self._actors = []
