"""The labeling web app: human pairwise comparisons, edits and flags that feed `postlab rm`, `dpo` and `sft`.

Kept import-light (nothing here imports FastAPI or SQLAlchemy) so `postlab --help` stays fast.
Docs: docs/labelapp.md.
"""
