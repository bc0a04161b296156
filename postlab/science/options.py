"""A model's probability over lettered options, averaged over option orders (docs/science.md).

A question with K options is shown K times (or ``orders`` times), the options cyclically shifted: in order s
the letter at position j (A, B, ...) names option (j + s) mod K. Each showing is one chat-formatted prompt
(the user turn lists the lettered options; the assistant turn is about to start), and one forward pass gives
the next-token distribution. Letter j's probability a_sj is that of the letter's token (``"A"``) plus, where
the tokenizer has one, of the letter with a leading space (``" A"``). Per order, m_s = Σ_j a_sj is the mass on
option letters (1 − m_s went to anything else: a refusal, a word, a digit), and q_s(option) = a_sj / m_s. The
model's distribution is the mean over orders, p = (1/S) Σ_s q_s, and its letter mass the mean of m_s.
Averaging over cyclic shifts puts every option under every letter once, which cancels a preference for a
letter or a position (Zheng et al. 2024, "Large language models are not robust multiple choice selectors").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJ"
MAX_OPTIONS = len(LETTERS)


@dataclass(frozen=True)
class OptionPrompt:
    """One question to score: the messages for each order, built by ``prompts_for_orders``."""

    orders: list[list[int]]  # orders[s][j] = the option shown under letter j in order s
    messages: list[list[dict]]  # one conversation per order


def cyclic_orders(k: int, n_orders: int | None = None) -> list[list[int]]:
    """The first ``n_orders`` (default all k) cyclic shifts of k options: order s shows option (j + s) mod k at j."""
    n = k if n_orders is None else min(n_orders, k)
    return [[(j + s) % k for j in range(k)] for s in range(n)]


def format_question(question: str, options: Sequence[str], order: Sequence[int], instruction: str) -> str:
    lines = [question.strip(), ""] + [f"{LETTERS[j]}. {options[o]}" for j, o in enumerate(order)]
    return "\n".join(lines + ["", instruction])


def prompts_for_orders(question: str, options: Sequence[str], *, instruction: str, n_orders: int | None = None,
                       preamble: str | None = None, system: str | None = None) -> OptionPrompt:
    """The conversations showing ``question`` with its options in each cyclic order; ``preamble`` (a persona) goes
    before the question in the user turn, ``system`` is an optional system message."""
    orders = cyclic_orders(len(options), n_orders)
    messages = []
    for order in orders:
        text = format_question(question, options, order, instruction)
        if preamble:
            text = f"{preamble.strip()}\n\n{text}"
        msgs = [{"role": "system", "content": system}] if system else []
        messages.append(msgs + [{"role": "user", "content": text}])
    return OptionPrompt(orders, messages)


def average_over_orders(letter_probs: Sequence[Sequence[float]], orders: Sequence[Sequence[int]]) -> tuple[list[float], float]:
    """(p, m): p[o] = mean over orders s of a_s[j] / Σ_j' a_s[j'] where order s shows option o at letter j, and m the
    mean letter mass Σ_j a_s[j]. An order with no mass on any letter contributes the uniform distribution."""
    k = len(orders[0])
    p = [0.0] * k
    masses = []
    for a, order in zip(letter_probs, orders):
        a = list(a)[:k]
        m = sum(a)
        masses.append(m)
        for j, o in enumerate(order):
            p[o] += (a[j] / m if m > 0 else 1 / k) / len(orders)
    return p, sum(masses) / len(masses)


def letter_token_ids(tokenizer, k: int = MAX_OPTIONS) -> list[list[int]]:
    """For each of the first k letters, the token ids that spell it alone: ``"A"`` and, if one token, ``" A"``."""
    out = []
    for letter in LETTERS[:k]:
        ids = []
        for text in (letter, " " + letter):
            enc = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(enc) == 1 and enc[0] not in ids:
                ids.append(enc[0])
        if not ids:
            raise ValueError(f"the tokenizer has no single token for the option letter {letter!r}")
        out.append(ids)
    return out


def letter_probabilities(model, tokenizer, conversations: list[list[dict]], *, batch_size: int = 16,
                         progress: bool = False, desc: str = "options") -> list[list[float]]:
    """For each conversation, the probability of each option letter A..J as the assistant's next token
    (one forward pass each, batched by length, right-padded; only the last real position is projected to the
    vocabulary)."""
    import torch

    from postlab.data.chat import render_chat

    seqs = [tokenizer(render_chat(tokenizer, c, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
            for c in conversations]
    groups = letter_token_ids(tokenizer)
    flat = torch.tensor([t for g in groups for t in g])
    owner = torch.tensor([j for j, g in enumerate(groups) for _ in g])
    device = next(model.parameters()).device
    body, head = model.get_decoder(), model.get_output_embeddings()
    out: list[list[float]] = [[] for _ in seqs]
    for idx, ids, mask in _padded_batches(model, seqs, tokenizer.pad_token_id, batch_size, progress, desc, "prompt"):
        h = body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state  # (B, T, d)
        last = mask.sum(1) - 1  # (B,)
        logits = head(h[torch.arange(len(idx)), last.to(device)]).float()  # (B, V)
        probs = torch.softmax(logits, dim=-1)[:, flat.to(device)].cpu()  # (B, n letter tokens)
        per_letter = torch.zeros((len(idx), len(groups))).index_add_(1, owner, probs)  # (B, 10)
        for r, i in enumerate(idx):
            out[i] = per_letter[r].tolist()
    return out


def _padded_batches(model, seqs: list[list[int]], pad_id: int, batch_size: int, progress: bool, desc: str, unit: str):
    """(row indices, ids (B, T), attention mask (B, T)) per batch of `seqs`, batched by length and right-padded,
    under no_grad with `model` in eval mode, with a progress bar if asked."""
    import torch
    from tqdm import tqdm

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    model.eval()
    with torch.no_grad(), tqdm(total=len(seqs), desc=desc, unit=unit, disable=not progress) as bar:
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            T = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[r, : len(seqs[i])] = 1
            yield idx, ids, mask
            bar.update(len(idx))


def option_distributions(model, tokenizer, prompts: list[OptionPrompt], *, batch_size: int = 16,
                         progress: bool = False, desc: str = "options") -> list[tuple[list[float], float]]:
    """(p, letter mass) for each question, averaged over its orders (``average_over_orders``); all the orders
    of all the questions go through the model together."""
    flat = [m for p in prompts for m in p.messages]
    letters = letter_probabilities(model, tokenizer, flat, batch_size=batch_size, progress=progress, desc=desc)
    out, at = [], 0
    for p in prompts:
        out.append(average_over_orders(letters[at : at + len(p.orders)], p.orders))
        at += len(p.orders)
    return out


def load_scoring_model(name: str, dtype: str = "fp32", device: str = "auto"):
    """(model, tokenizer) for scoring: ``name`` is a built-in name, a directory or a hub id."""
    from postlab.evals.generate import DTYPES
    from postlab.models.load import load_model_and_tokenizer
    from postlab.models.prepare import pick_device

    model, tok = load_model_and_tokenizer(name, dtype=DTYPES[dtype])
    return model.to(pick_device(device)).eval(), tok


def model_label(spec: str) -> tuple[str, str]:
    """``label=model`` -> (label, model); a bare model is labelled by its name, or for a ``.../NAME/model``
    directory (a postlab stage's output) by NAME."""
    label, sep, model = spec.partition("=")
    if sep and label.strip() and "/" not in label:
        return label.strip(), model.strip()
    parts = [p for p in spec.rstrip("/").split("/") if p]
    if len(parts) >= 2 and parts[-1] == "model":
        return parts[-2], spec
    return (parts[-1] if parts else spec), spec


def answer_logprobs(model, tokenizer, conversations: list[list[dict]], answers: list[str], *, batch_size: int = 16,
                    progress: bool = False, desc: str = "answers") -> list[float]:
    """log P(the assistant's reply is exactly ``answer``) for each (conversation, answer): the summed log-probs of
    the answer's tokens and the end-of-turn token after the chat-formatted prompt (the "cloze" formulation of
    multiple choice, as lm-evaluation-harness scores continuations: prompt and answer tokenised separately)."""
    import torch

    from postlab.data.chat import render_chat

    prompt_ids: dict[str, list[int]] = {}
    seqs, starts = [], []
    for conv, ans in zip(conversations, answers):
        key = repr(conv)
        if key not in prompt_ids:
            prompt_ids[key] = tokenizer(render_chat(tokenizer, conv, add_generation_prompt=True),
                                        add_special_tokens=False)["input_ids"]
        p = prompt_ids[key]
        seqs.append(p + tokenizer(ans, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        starts.append(len(p))
    device = next(model.parameters()).device
    out = [0.0] * len(seqs)
    for idx, ids, mask in _padded_batches(model, seqs, tokenizer.pad_token_id, batch_size, progress, desc, "answer"):
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()  # (B, T, V)
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1))[..., 0]
        for r, i in enumerate(idx):  # token t+1 is predicted at position t
            out[i] = float(logp[r, starts[i] - 1 : len(seqs[i]) - 1].sum())
    return out


def normalise_logprobs(logps: Sequence[float]) -> tuple[list[float], float]:
    """(p, m): p_k = exp(ℓ_k) / Σ_j exp(ℓ_j) over one question's options, and m = Σ_j exp(ℓ_j), the probability
    that the reply is one of them."""
    import math

    top = max(logps)
    e = [math.exp(x - top) for x in logps]
    z = sum(e)
    return [x / z for x in e], math.exp(top) * z
