"""Plain-text corpora for pretraining: documents joined with EOS and packed into fixed-length blocks."""

from __future__ import annotations

from pathlib import Path

from postlab.errors import DataError


def read_text_file(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 at byte {e.start}") from None
    if not text.strip():
        raise DataError(f"{path}: empty file")
    return text


def pack_blocks(token_streams: list[list[int]], block_size: int, eos_id: int) -> list[list[int]]:
    """Concatenate documents (each followed by EOS) and cut into blocks of ``block_size`` tokens.

    The model shifts labels internally, so each block trains next-token prediction on
    ``block_size - 1`` targets; the ragged tail is dropped.
    """
    flat: list[int] = []
    for ids in token_streams:
        flat.extend(ids)
        flat.append(eos_id)
    n = len(flat) // block_size
    return [flat[i * block_size : (i + 1) * block_size] for i in range(n)]


def load_text_blocks(paths: list[str], tokenizer, block_size: int) -> list[list[int]]:
    streams = [tokenizer(read_text_file(p), add_special_tokens=False)["input_ids"] for p in paths]
    blocks = pack_blocks(streams, block_size, tokenizer.eos_token_id)
    if not blocks:
        total = sum(len(s) + 1 for s in streams)
        raise DataError(f"{', '.join(map(str, paths))}: only {total} tokens, fewer than one block of {block_size}")
    return blocks
