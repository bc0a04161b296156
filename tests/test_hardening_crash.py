"""Crash safety (issue 16, item 15): what a kill -9 of `postlab run` leaves behind must not spoil the rerun."""

import json
import shutil
from pathlib import Path


def test_sft_losses_survive_a_kill_after_the_final_checkpoint(tmp_path, chat_file):
    """Killed after SFT's final checkpoint but before its model was saved, the rerun resumes at the last
    step and trains no more: the stage still reports the whole run's first and last loss, not None."""
    from postlab.run import PRESETS, train_sft

    k = PRESETS["tiny"].model_copy(update={"sft_batch_size": 2})  # 4 steps
    straight = train_sft("tiny", str(chat_file), tmp_path / "a", k, progress=False)
    train_sft("tiny", str(chat_file), tmp_path / "b", k, progress=False)
    shutil.rmtree(tmp_path / "b" / "sft" / "model")  # as a kill before the model's rename leaves it
    resumed = train_sft("tiny", str(chat_file), tmp_path / "b", k, progress=False)
    assert resumed["first_loss"] is not None and resumed["last_loss"] is not None
    assert {key: v for key, v in resumed.items() if key != "model"} == {key: v for key, v in straight.items() if key != "model"}


def _sample_config(out: Path):
    from postlab.rollout import SamplingParams
    from postlab.train.sample import SampleConfig

    return SampleConfig(model="tiny", suite="spec", split="train", limit=4, k=1, batch_size=2, out=str(out),
                        dtype="fp32", progress=False, sampling=SamplingParams(temperature=1.0, max_new_tokens=8, seed=0))


def _resume_sample(out: Path, partial_text: str) -> str:
    """Continue ``out``'s sampling from a partial file holding ``partial_text``, as a rerun after a kill would."""
    from postlab.tasks.suite import load_suite
    from postlab.train.sample import fingerprint_path, sample, sample_fingerprint
    from postlab.utils.io import atomic_write_text

    partial = out.with_name(out.name + ".partial")
    partial.write_text(partial_text, encoding="utf-8")
    prompts = [(it.id, it.messages) for it in load_suite("spec", split="train", limit=4)]
    atomic_write_text(fingerprint_path(partial), json.dumps(sample_fingerprint(_sample_config(out), prompts)))
    return sample(_sample_config(out)).read_text(encoding="utf-8")


def test_a_sample_file_cut_mid_line_resumes_to_the_uninterrupted_file(tmp_path):
    """A kill while a batch is being written can leave the partial sample file ending in half a line; the
    resumed file must drop it with its batch, not keep it as a whole row."""
    from postlab.train.sample import sample

    straight = sample(_sample_config(tmp_path / "a.jsonl")).read_text(encoding="utf-8")
    rows = straight.split("\n")[:-1]
    assert len(rows) == 4  # two batches of two
    cut = "".join(r + "\n" for r in rows[:3]) + rows[3][: len(rows[3]) // 2]  # the second batch's last row cut short
    assert _resume_sample(tmp_path / "b.jsonl", cut) == straight


def test_a_row_holding_a_unicode_line_separator_counts_as_one_row(tmp_path):
    """json.dumps(ensure_ascii=False) writes U+2028 and U+0085 as they are; str.splitlines splits rows there."""
    from postlab.train.sample import sample

    straight = sample(_sample_config(tmp_path / "a.jsonl")).read_text(encoding="utf-8")
    rows = straight.split("\n")[:-1]
    first = json.loads(rows[0])
    first["completion"] = "one\u2028two\x85three"
    rows[0] = json.dumps(first, ensure_ascii=False)
    resumed = _resume_sample(tmp_path / "b.jsonl", rows[0] + "\n" + rows[1] + "\n")  # the first batch, written
    assert resumed.split("\n")[:-1] == [rows[0], *rows[1:]]
