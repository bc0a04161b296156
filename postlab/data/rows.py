"""Rows from any data source postlab reads: a JSONL file, a directory of shards, a Parquet or Arrow
file, or a directory written by ``datasets.Dataset.save_to_disk``.

Every row comes with ``where``, the prefix of any error about it: ``file:line`` for JSONL,
``file row i`` (0-based, as ``dataset[i]``) for Parquet, Arrow and saved datasets. Parquet and Arrow
need the optional ``datasets`` library (``pip install datasets``, which brings pyarrow).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from postlab.data.jsonl import read_jsonl
from postlab.errors import DataError

TABULAR = {".parquet": "Parquet", ".arrow": "Arrow"}
SHARD_SUFFIXES = (".jsonl", *TABULAR)


class Row(NamedTuple):
    where: str  # "file:line" or "file row i": prefix for errors about this row
    key: int  # line number in a single JSONL file, else the row's 0-based position in the whole source
    value: object  # the parsed row (a dict unless the file is malformed)


def read_rows(path: str | Path) -> Iterator[Row]:
    """Every row of ``path``; raises ``DataError`` naming the file (and line or row) on bad input."""
    path = Path(path)
    if path.is_dir():
        yield from _read_directory(path)
    elif not path.exists():
        raise DataError(f"{path}: file not found")
    elif path.suffix.lower() in TABULAR:
        yield from _read_tabular(path)
    else:
        for lineno, value in read_jsonl(path):
            yield Row(f"{path}:{lineno}", lineno, value)


def _read_directory(path: Path) -> Iterator[Row]:
    if (path / "dataset_dict.json").exists():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise DataError(f"{path}: a saved DatasetDict with splits {', '.join(splits)}; "
                        f"give one split's directory, e.g. {path / (splits[0] if splits else 'train')}")
    if (path / "state.json").exists() and (path / "dataset_info.json").exists():
        yield from _read_saved_dataset(path)
        return
    shards = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SHARD_SUFFIXES
                    and not p.name.startswith("."))
    if not shards:
        raise DataError(f"{path}: a directory with no .jsonl, .parquet or .arrow files (and not a saved dataset)")
    n = 0
    for shard in shards:
        for row in read_rows(shard):
            yield row._replace(key=n)
            n += 1


def _need_datasets(path: Path, what: str):
    """(datasets, pyarrow), or a DataError saying what to install; pyarrow comes with datasets."""
    try:
        import datasets
        import pyarrow
    except ImportError:
        raise DataError(f"{path}: reading {what} needs the `datasets` library: pip install datasets") from None
    return datasets, pyarrow


def _without_nulls(row: dict) -> dict:
    """Arrow gives every row every column (and every struct every field), with None where a row has
    none; a None there means "not given", as an absent key does in JSONL."""
    return {k: v for k, v in row.items() if v is not None}


def _read_tabular(path: Path) -> Iterator[Row]:
    kind = TABULAR[path.suffix.lower()]
    _, pa = _need_datasets(path, f"{kind} files")
    try:
        batches = _parquet_batches(path) if kind == "Parquet" else _arrow_batches(pa, path)
        n = 0
        for batch in batches:
            for value in batch.to_pylist():
                yield Row(f"{path} row {n}", n, _without_nulls(value))
                n += 1
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable {kind} file ({e})") from None
    if n == 0:
        raise DataError(f"{path}: empty {kind} file (no rows)")


def _parquet_batches(path: Path):
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=1024)


def _arrow_batches(pa, path: Path):
    """Arrow IPC in either layout: the stream format (what ``datasets`` writes) or the file format."""
    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            file_reader = pa.ipc.open_file(source)
            yield from (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
            return
        yield from reader


def _read_saved_dataset(path: Path) -> Iterator[Row]:
    datasets, _ = _need_datasets(path, "a saved dataset directory")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises many types for a damaged directory
        raise DataError(f"{path}: not a readable saved dataset ({type(e).__name__}: {e})") from None
    if len(ds) == 0:
        raise DataError(f"{path}: empty dataset (no rows)")
    for n, value in enumerate(ds):
        yield Row(f"{path} row {n}", n, _without_nulls(value))
