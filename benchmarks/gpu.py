"""GPU figures (issue 20): SFT MFU, rollout speed and GRPO step time of postlab on one CUDA device.

Nothing is downloaded: the models are randomly initialised with SmolLM2's architecture at its three
sizes (135M, 360M, 1.7B; speed does not depend on the weights), with SmolLM2's tokenizer read from a
local directory. In one run:

1. the bf16 matmul peak of the device (torch.matmul, 8192^3), the yardstick of MFU;
2. SFT: postlab's training loop (``postlab.train.loop.train_loop``, bf16 autocast over fp32 weights,
   fused AdamW) on full-length random sequences, tokens/s and MFU = model FLOP/s / that peak
   (model FLOPs per token 6N + 12·L·d·T, as benchmarks/sft_throughput.py counts them);
3. GRPO: seconds per step of ``postlab grpo`` and of TRL's ``GRPOTrainer`` (when ``trl`` imports;
   no vLLM) with the same model, prompts, group size, lengths, loss and a cheap programmatic reward,
   each in its own subprocess;
4. rollout: completion tokens/s of postlab's engine (``TorchEngine``) and transformers' ``generate``,
   sampling at temperature 1 with EOS off, so both produce exactly the same number of tokens;
5. SFT on variable-length batches (each pads to a new length, as real conversations do), with PyTorch's
   default attention and with cuDNN's kernel off (``postlab.models.attention``): whether fixed-shape
   training should also leave cuDNN's per-shape plans alone.

Each case is guarded: one that fails is recorded with its error and the rest go on; results are
written to ``--out`` after every case, and cases are skipped once ``--budget-s`` is spent.

    python benchmarks/gpu.py --out gpu.json                      # on the GPU machine
    python benchmarks/gpu.py --device cpu --sizes tiny --grpo-sizes tiny --rollout-sizes tiny \\
        --seq-len 64 --batch 2 --rollout-batch 4 --rollout-tokens 8 --grpo-steps 2 --grpo-tokens 8   # a dry run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent

# SmolLM2's published configurations (config.json of SmolLM2-135M / -360M / -1.7B); head_dim 64 in all.
SIZES = {
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, head_dim=64, rope_theta=1e5),
    "360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                 num_key_value_heads=5, head_dim=64, rope_theta=1e5),
    "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                 num_key_value_heads=32, head_dim=64, rope_theta=1.3e5),
    # to try the script on a CPU
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, rope_theta=1e5),
}
K = 8  # GRPO group size


def reward(item, response: str) -> float:
    """The benchmark's reward for both trainers: distinct words / words (cheap, deterministic, in [0, 1])."""
    words = response.split()
    return len(set(words)) / max(len(words), 1)


def trl_reward(prompts, completions, **kwargs) -> list[float]:
    return [reward(None, c[-1]["content"] if isinstance(c, list) else c) for c in completions]


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_model(size: str, tokenizer_dir: str, device: str):
    """A randomly initialised LlamaForCausalLM of SmolLM2's architecture at ``size``, fp32, on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = dict(SIZES[size])
    theta = arch.pop("rope_theta")
    cfg = AutoConfig.from_pretrained(tokenizer_dir)  # SmolLM2-135M's config: vocab, norms, special ids
    for k, v in arch.items():
        setattr(cfg, k, v)
    cfg.rope_parameters = {"rope_theta": theta, "rope_type": "default"}
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: a 1.7B init on the CPU takes tens of seconds
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    return model


def matmul_peak(device: str, n: int, reps: int = 10) -> float:
    """TFLOP/s of an n x n x n bf16 torch.matmul on random data (mean of ``reps`` after 3 warm-ups)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


class StopBench(Exception):
    """Raised by the step callback after the last timed step: the loop ends without its final save."""


def sft_case(size: str, args, compile_model: bool, varlen: bool = False, no_cudnn: bool = False) -> dict:
    """SFT steps of ``size``. ``varlen``: sequence lengths drawn from [seq_len/4, seq_len], so each batch pads
    to a new length (as real conversations do); ``no_cudnn``: attention without cuDNN's kernel (which
    plans every new shape: postlab.models.attention), to see which is faster on such batches."""
    import contextlib

    import torch

    sys.path.insert(0, str(HERE))
    from sft_throughput import flops_per_token, matmul_params
    from postlab.train.common import CheckpointConfig, OptimConfig
    from postlab.train.loop import train_loop

    model = random_model(size, args.tokenizer, args.device)
    fpt = flops_per_token(matmul_params(model), model.config, args.seq_len)
    n_params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (args.sft_steps * args.batch, args.seq_len), generator=g)
    lengths = (torch.randint(args.seq_len // 4, args.seq_len + 1, (len(ids),), generator=g).tolist() if varlen
               else [args.seq_len] * len(ids))
    marks: list[float] = []

    def mark(state, metrics):
        sync(args.device)
        marks.append(time.perf_counter())
        if state.step == args.sft_steps:
            raise StopBench

    run_dir = Path(tempfile.mkdtemp(prefix="gpu_sft_"))
    sync(args.device)
    marks.append(time.perf_counter())
    from postlab.models.attention import varying_shape_attention

    try:
        with varying_shape_attention() if no_cudnn else contextlib.nullcontext():
            train_loop(model=model, examples=[{"input_ids": r[:n].tolist()} for r, n in zip(ids, lengths)],
                       eval_examples=[], pad_id=0,
                       optim=OptimConfig(lr=1e-5, batch_size=args.batch, max_steps=args.sft_steps, bf16=True,
                                         compile=compile_model, group_by_length=False),
                       ckpt=CheckpointConfig(progress=False, save_every=0), run_dir=run_dir, callbacks=[mark])
    except StopBench:
        pass
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    step_s = [b - a for a, b in zip(marks, marks[1:])]
    timed = step_s[args.warmup:]
    tok_s = sum(lengths) / len(lengths) * args.batch / statistics.median(timed)  # real (unpadded) tokens
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
    del model
    return {"size": size, "params": n_params, "compile": compile_model, "varlen": varlen, "no_cudnn": no_cudnn,
            "batch": args.batch, "seq_len": args.seq_len,
            "step_s": step_s, "tokens_per_s": tok_s, "flops_per_token": fpt, "tflops": tok_s * fpt / 1e12,
            "peak_mem_gib": peak_mem}


def prompts(n: int) -> list[list[dict]]:
    from importlib import resources

    path = resources.files("postlab") / "assets" / "demos.jsonl"
    users = [json.loads(line)["messages"][:1] for line in path.read_text().splitlines()]
    return [users[i % len(users)] for i in range(n)]


def rollout_case(size: str, args) -> dict:
    import torch
    from transformers import AutoTokenizer, GenerationConfig

    from postlab.rollout import SamplingParams, TorchEngine
    from postlab.rollout.sampling import row_params

    model = random_model(size, args.tokenizer, args.device).to(torch.bfloat16).eval()
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    B, R = args.rollout_batch, args.rollout_tokens
    convs = prompts(B)
    engine = TorchEngine(model=model, tokenizer=tok)  # on CUDA: static shapes in a CUDA graph
    eager = TorchEngine(model=model, tokenizer=tok, static_decode=False)
    rows = engine.encode_prompts(convs)
    tok.padding_side = "left"
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(args.device)
    gen_cfg = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=R, min_new_tokens=R,
                               eos_token_id=None, pad_token_id=tok.pad_token_id)
    params = row_params(SamplingParams(temperature=1.0, max_new_tokens=R, stop_at_eos=False), 0, range(B))  # as RL samples

    def run_generate():
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=gen_cfg)
        assert out.shape[1] - enc["input_ids"].shape[1] == R

    def run_postlab(which=engine):
        r = which.generate_ids(rows, params)
        assert int(r.response_mask.sum()) == B * R

    def best(fn) -> float:
        fn()  # warm-up: allocator, kernels
        times = []
        for _ in range(args.reps):
            sync(args.device)
            t0 = time.perf_counter()
            fn()
            sync(args.device)
            times.append(time.perf_counter() - t0)
        return min(times)

    t_gen, t_ours, t_eager = best(run_generate), best(run_postlab), best(lambda: run_postlab(eager))
    del model, engine, eager
    return {"size": size, "batch": B, "new_tokens": R, "generate_tok_s": B * R / t_gen, "postlab_tok_s": B * R / t_ours,
            "eager_tok_s": B * R / t_eager, "speedup": t_gen / t_ours}


# --- GRPO, one trainer per subprocess ---------------------------------------------------------------


def grpo_items(n: int):
    from postlab.tasks.suite import make_item

    return [make_item(f"g{i}", conv, "bench", "train", [("keywords:existence", {"keywords": ["a"]})])
            for i, conv in enumerate(prompts(n))]  # the check is never used: the reward is `reward` above


def child_postlab(a) -> dict:
    from postlab.tasks.suite import write_suite

    if a.child == "postlab_eager":  # rollouts through the eager decode loop (no CUDA graph), for the side-by-side
        import functools

        from postlab.rollout import engine as engine_module

        engine_module.TorchEngine.__init__ = functools.partialmethod(engine_module.TorchEngine.__init__, static_decode=False)
    from postlab.train.grpo import GRPOConfig, train

    suite = os.path.join(a.work, "prompts.jsonl")
    write_suite(grpo_items(a.prompts_per_step * a.grpo_steps), suite)
    out = os.path.join(a.work, a.child)
    cfg = GRPOConfig(model=a.model_dir, out_dir=out, device=a.device, suite=suite, k=K, prompts_per_step=a.prompts_per_step,
                     steps=a.grpo_steps, kl_coef=0.04, reward={"source": "python:gpu:reward"},
                     sampling={"temperature": 1.0, "max_new_tokens": a.grpo_tokens, "seed": 0, "stop_at_eos": False},
                     optim={"lr": 1e-6, "bf16": True, "micro_batch_size": K * a.prompts_per_step},
                     checkpoint={"progress": False, "save_every": 0})
    if not a.profile:
        train(cfg)
    else:  # torch.profiler and cProfile over the --profile-steps: the ops and functions that take their time
        import torch
        from torch.profiler import ProfilerActivity, profile

        import cProfile
        import io
        import pstats

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if a.device.startswith("cuda") else [])
        tables = []
        prof = profile(activities=activities, record_shapes=False)
        py = cProfile.Profile()  # Python-level too: time outside torch ops shows by function

        wanted = {int(x) for x in a.profile_steps.split(",") if x}  # building the tables of a step takes a while
        active = False

        def start():
            nonlocal active
            prof.start()
            py.enable()
            active = True

        def per_step(state, metrics):
            nonlocal prof, py, active
            if active:
                py.disable()
                prof.stop()
                active = False
                key = "self_cuda_time_total" if a.device.startswith("cuda") else "self_cpu_time_total"
                tables.append(f"== step {state.step} ({metrics.get('time/step_s', 0):.2f} s; sample "
                              f"{metrics.get('time/sample_s', 0):.2f} s)\n" + prof.key_averages().table(sort_by=key, row_limit=25))
                tables.append(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25))
                for order in ("tottime", "cumulative"):
                    buf = io.StringIO()
                    pstats.Stats(py, stream=buf).sort_stats(order).print_stats(30)
                    tables.append(f"-- step {state.step}, Python by {order}\n" + buf.getvalue())
            prof, py = profile(activities=activities, record_shapes=False), cProfile.Profile()
            if state.step + 1 in wanted:
                start()

        if 1 in wanted:
            start()
        train(cfg, callbacks=[per_step])
        if active:
            py.disable()
            prof.stop()
        Path(a.profile).write_text("\n\n".join(tables))
    rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl")) if x.strip()]
    rows = [r for r in rows if "reward" in r]
    return {"step_s": [r["time/step_s"] for r in rows], "mean_length": [r["completions/mean_length"] for r in rows],
            "cuda_graph": [r.get("rollout/cuda_graph", 0.0) for r in rows],
            "phases": {ph: [r.get(f"time/{ph}_s") for r in rows] for ph in ("sample", "generate", "reward", "gold", "logprob", "update")}}


def child_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    data = Dataset.from_list([{"prompt": c} for c in prompts(a.prompts_per_step * a.grpo_steps)])
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
    on_cpu = a.device == "cpu"
    args = GRPOConfig(output_dir=os.path.join(a.work, "trl"), per_device_train_batch_size=K * a.prompts_per_step,
                      num_generations=K, max_completion_length=a.grpo_tokens, temperature=1.0, top_k=0, top_p=1.0,
                      beta=0.04, loss_type="grpo", scale_rewards="group", epsilon=0.2, num_iterations=1, learning_rate=1e-6,
                      lr_scheduler_type="constant", max_steps=a.grpo_steps, bf16=True, use_cpu=on_cpu,
                      gradient_checkpointing=False, disable_dropout=True, logging_steps=1, report_to=[], save_strategy="no",
                      seed=0, dataloader_num_workers=0)
    marks: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            sync(a.device)
            marks.append(time.perf_counter())

        def on_step_end(self, *_, **__):
            sync(a.device)
            marks[-1] = time.perf_counter() - marks[-1]

    trainer = GRPOTrainer(model=model, reward_funcs=trl_reward, args=args, train_dataset=data, processing_class=tok,
                          callbacks=[Timer()])
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    return {"step_s": marks, "mean_length": [h.get("completions/mean_length") for h in logs]}


def grpo_case(size: str, args) -> dict:
    """postlab's and TRL's GRPO on the same saved random model, each in its own process."""
    from transformers import AutoTokenizer

    work = tempfile.mkdtemp(prefix=f"gpu_grpo_{size}_")
    model_dir = os.path.join(work, "model")
    random_model(size, args.tokenizer, "cpu" if size == "tiny" else args.device).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(args.tokenizer).save_pretrained(model_dir)
    out = {"size": size, "k": K, "prompts_per_step": args.prompts_per_step, "new_tokens": args.grpo_tokens,
           "steps": args.grpo_steps}
    for which in ("postlab", "postlab_eager", "trl") if args.grpo_eager else ("postlab", "trl"):
        profile = (["--profile", f"{args.profile}.{size}.txt", "--profile-steps", args.profile_steps]
                   if args.profile and which == "postlab" else [])
        cmd = [sys.executable, __file__, "--child", which, "--model-dir", model_dir, "--work", work, "--device", args.device,
               *profile,
               "--grpo-steps", str(args.grpo_steps), "--grpo-tokens", str(args.grpo_tokens),
               "--prompts-per-step", str(args.prompts_per_step)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])})
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:
            out[which] = {"error": (p.stderr or p.stdout)[-2500:]}
            continue
        r = json.loads(line[7:])
        timed = r["step_s"][1:]  # the first step: one-time set-up (kernels, allocator)
        r["s_per_step"] = sum(timed) / len(timed) if timed else None
        r["wall_s"] = time.perf_counter() - t0
        out[which] = r
    shutil.rmtree(work, ignore_errors=True)
    if out.get("postlab", {}).get("s_per_step") and out.get("trl", {}).get("s_per_step"):
        out["speedup_vs_trl"] = out["trl"]["s_per_step"] / out["postlab"]["s_per_step"]
    if out.get("postlab_eager", {}).get("s_per_step") and out.get("trl", {}).get("s_per_step"):
        out["eager_speedup_vs_trl"] = out["trl"]["s_per_step"] / out["postlab_eager"]["s_per_step"]
    return out


# --- the run ------------------------------------------------------------------------------------------


def device_info(device: str) -> dict:
    import torch
    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "device": device,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    try:
        import trl

        info["trl"] = trl.__version__
    except Exception as e:  # noqa: BLE001 - recorded, the comparison is then skipped
        info["trl"] = f"not importable: {e}"
    return info


def tables(res: dict) -> str:
    lines = [f"device: {res['info']}", f"bf16 matmul peak: {res.get('peak_tflops', 0):.0f} TFLOP/s", "",
             "| SFT | params | batch x seq | tokens/s | model TFLOP/s | MFU % | peak GiB |", "|---|---|---|---|---|---|---|"]
    for r in res["sft"] + res["sft_compile"]:
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error'].splitlines()[-1][:120]} |")
            continue
        mfu = 100 * r["tflops"] / res["peak_tflops"]
        lines.append(f"| {r['size']}{' + compile' if r['compile'] else ''} | {r['params'] / 1e6:.0f}M | {r['batch']} x "
                     f"{r['seq_len']} | {r['tokens_per_s']:.0f} | {r['tflops']:.1f} | {mfu:.1f} | {r['peak_mem_gib'] or 0:.1f} |")
    lines += ["", "| GRPO | completions/step x new tokens | postlab s/step | eager decode s/step | TRL s/step | speedup "
              "| eager speedup | postlab generate / gold / update s |", "|---|---|---|---|---|---|---|---|"]
    for r in res["grpo"]:
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error'].splitlines()[-1][:120]} |")
            continue
        s = {w: (f"{r[w]['s_per_step']:.2f}" if r.get(w, {}).get("s_per_step") else "-") for w in ("postlab", "postlab_eager", "trl")}
        sp, esp = (f"{r[k]:.2f}" if k in r else "-" for k in ("speedup_vs_trl", "eager_speedup_vs_trl"))
        ph = r.get("postlab", {}).get("phases", {})
        split = " / ".join(f"{statistics.mean([x for x in ph.get(k, [])[1:] if x is not None] or [float('nan')]):.2f}"
                           for k in ("generate", "gold", "update"))
        lines.append(f"| {r['size']} | {K * r['prompts_per_step']} x {r['new_tokens']} | {s['postlab']} | {s['postlab_eager']} | "
                     f"{s['trl']} | {sp} | {esp} | {split} |")
    lines += ["", "| SFT, variable lengths | batch x max seq | attention | real tokens/s | median step s |", "|---|---|---|---|---|"]
    for r in res.get("sft_varlen", []):
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error'].splitlines()[-1][:120]} |")
            continue
        lines.append(f"| {r['size']} | {r['batch']} x {r['seq_len']} | {'no cuDNN' if r['no_cudnn'] else 'default'} | "
                     f"{r['tokens_per_s']:.0f} | {statistics.median(r['step_s'][2:] or r['step_s']):.3f} |")
    lines += ["", "| rollout | batch x new tokens | generate tok/s | postlab tok/s | eager decode tok/s | speedup |",
              "|---|---|---|---|---|---|"]
    for r in res["rollout"]:
        if "error" in r:
            lines.append(f"| {r['case']} | failed: {r['error'].splitlines()[-1][:120]} |")
            continue
        lines.append(f"| {r['size']} | {r['batch']} x {r['new_tokens']} | {r['generate_tok_s']:.0f} | {r['postlab_tok_s']:.0f} | "
                     f"{r.get('eager_tok_s', 0):.0f} | {r['speedup']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu.json", help="results JSON (rewritten after every case)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tokenizer", default=None, help="directory with SmolLM2's tokenizer and config.json "
                    "(default: the cached smollm2-135m-instruct, or .gpu/tokenizer)")
    ap.add_argument("--sizes", default="135m,360m,1.7b", help="SFT sizes")
    ap.add_argument("--compile-sizes", default="1.7b", help="SFT sizes also run with optim.compile=true")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="leading SFT steps left out of the median")
    ap.add_argument("--varlen-sizes", default="135m", help="SFT on variable-length batches, with and without cuDNN attention "
                    "(section sft_varlen)")
    ap.add_argument("--rollout-sizes", default="135m,1.7b")
    ap.add_argument("--rollout-batch", type=int, default=64)
    ap.add_argument("--rollout-tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--grpo-sizes", default="135m,1.7b")
    ap.add_argument("--grpo-steps", type=int, default=4)
    ap.add_argument("--grpo-tokens", type=int, default=128)
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--budget-s", type=float, default=360, help="skip the cases left once this many seconds are spent")
    ap.add_argument("--order", default="sft,grpo,rollout,sft_varlen,sft_compile", help="sections, in the order they run")
    ap.add_argument("--profile", default=None, help="GRPO: write torch.profiler tables of postlab's steps to "
                    "PROFILE.<size>.txt (each step's top ops)")
    ap.add_argument("--profile-steps", default="2,3", help="GRPO --profile: the steps profiled (comma-separated; "
                    "each step's tables take tens of seconds to build on a GPU run)")
    ap.add_argument("--child", choices=["postlab", "postlab_eager", "trl"])
    ap.add_argument("--grpo-eager", type=int, default=1, help="GRPO: also run postlab with eager decoding (no CUDA graph)")
    ap.add_argument("--model-dir")
    ap.add_argument("--work")
    args = ap.parse_args()
    os.environ.setdefault("POSTLAB_BUSY_WARNING", "0")
    if args.child:
        r = (child_trl if args.child == "trl" else child_postlab)(args)
        print("RESULT " + json.dumps(r), flush=True)
        return
    if args.tokenizer is None:
        local = HERE.parent / ".gpu" / "tokenizer"
        if local.is_dir():
            args.tokenizer = str(local)
        else:
            from postlab.models.load import resolve_model

            args.tokenizer = resolve_model("smollm2-135m-instruct")
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    t_start = time.perf_counter()
    res = {"info": device_info(args.device), "args": vars(args), "sft": [], "sft_compile": [], "grpo": [], "rollout": [],
           "sft_varlen": []}
    res["peak_tflops"] = max(matmul_peak(args.device, 8192 if args.device.startswith("cuda") else 512) for _ in range(2))
    print(f"{res['info']}\nbf16 matmul peak {res['peak_tflops']:.1f} TFLOP/s", flush=True)

    def save():
        tmp = args.out + ".tmp"
        Path(tmp).write_text(json.dumps(res, indent=1))
        os.replace(tmp, args.out)

    plan = {"sft": [(s, False) for s in args.sizes.split(",") if s],
            "sft_compile": [(s, True) for s in args.compile_sizes.split(",") if s],  # last: compiling can take minutes
            "grpo": [s for s in args.grpo_sizes.split(",") if s], "rollout": [s for s in args.rollout_sizes.split(",") if s],
            "sft_varlen": [(s, nc) for s in args.varlen_sizes.split(",") if s for nc in (False, True)]}
    runners = {"sft": lambda c: sft_case(c[0], args, c[1]), "sft_compile": lambda c: sft_case(c[0], args, c[1]), "grpo": lambda c: grpo_case(c, args),
               "rollout": lambda c: rollout_case(c, args), "sft_varlen": lambda c: sft_case(c[0], args, False, varlen=True, no_cudnn=c[1])}
    for section in args.order.split(","):
        for case in plan[section]:
            name = f"{section} {case}"
            if time.perf_counter() - t_start > args.budget_s:
                res[section].append({"case": name, "error": f"skipped: the {args.budget_s:.0f} s budget was spent"})
                continue
            t0 = time.perf_counter()
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            try:
                r = runners[section](case)
            except Exception:  # noqa: BLE001 - recorded; the other cases still run
                r = {"case": name, "error": traceback.format_exc()[-2500:]}
            r["wall_s"] = round(time.perf_counter() - t0, 1)
            res[section].append(r)
            print(f"{name}: {json.dumps(r)[:600]}", flush=True)
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            save()
    res["total_s"] = time.perf_counter() - t_start
    save()
    print()
    print(tables(res))


if __name__ == "__main__":
    main()
