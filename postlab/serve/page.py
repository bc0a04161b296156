"""The /monitor page: flag counts by rule and the most recent flagged answers, as plain HTML."""

from __future__ import annotations

from html import escape

MAX_CHARS = 300  # of each message shown


def _short(text: str) -> str:
    return escape(text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "…")


def render_monitor(*, model: str, answers_scored: int, flag_counts: dict[tuple[str, str], float],
                   recent: list[dict]) -> str:
    counts = "".join(f"<tr><td>{escape(rule)}</td><td>{escape(check)}</td><td>{int(n)}</td></tr>"
                     for (rule, check), n in sorted(flag_counts.items()))
    rows = []
    for r in recent:
        user = next((m["content"] for m in reversed(r["messages"]) if m["role"] == "user"), "")
        flags = "<br>".join(f"<b>{escape(f['rule'])}</b> ({escape(f['check'])}): {escape(f['description'])}"
                            for f in r["flags"])
        rows.append(f"<tr><td>{escape(r['time'])}</td><td>{flags}</td><td>{_short(user)}</td>"
                    f"<td>{_short(r['answer'])}</td></tr>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>postlab monitor</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}</style></head>
<body><h1>postlab monitor: {escape(model)}</h1>
<p>{answers_scored} answers scored since start.</p>
<h2>Flags by rule</h2>
<table><tr><th>rule</th><th>check</th><th>flags</th></tr>{counts or '<tr><td colspan=3>none</td></tr>'}</table>
<h2>Recent flagged answers</h2>
<table><tr><th>time</th><th>flags</th><th>user</th><th>answer</th></tr>{''.join(rows) or '<tr><td colspan=4>none</td></tr>'}</table>
</body></html>
"""
