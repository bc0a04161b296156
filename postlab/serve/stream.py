"""Turning a stream of token ids into text deltas: incremental detokenisation and stop strings.

A byte-level tokenizer can split one character over several tokens, so decoding token by token would
emit broken characters; ``TextAssembler`` decodes a short window of recent tokens and emits new text
only once it no longer ends in an incomplete character (U+FFFD). Stop strings may straddle deltas, so
the last ``len(longest stop) - 1`` characters are held back until they cannot start a stop string.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REPLACEMENT = "\ufffd"  # what a decoder prints for an incomplete UTF-8 sequence


@dataclass
class TextAssembler:
    """Accumulates one response's tokens; ``push`` returns the text that is safe to show now."""

    tokenizer: object
    stops: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far (up to the stop string, once one is found)
    emitted: int = 0  # characters of ``text`` already returned
    stopped: bool = False  # a stop string was found; ``text`` ends just before it
    _prefix: int = 0  # token index where the decode window starts
    _read: int = 0  # token index up to which text has been taken

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one token; return the new text to emit (may be empty)."""
        if self.stopped:
            return ""
        self.token_ids.append(token_id)
        before = self._decode(self.token_ids[self._prefix:self._read])
        after = self._decode(self.token_ids[self._prefix:])
        if len(after) <= len(before) or after.endswith(REPLACEMENT):
            return ""  # nothing new yet, or a character still incomplete
        self.text += after[len(before):]
        self._prefix, self._read = self._read, len(self.token_ids)
        return self._release(final=False)

    def finish(self) -> str:
        """The end of the response: flush what was held back (and any trailing incomplete bytes)."""
        if not self.stopped and self._read < len(self.token_ids):
            before = self._decode(self.token_ids[self._prefix:self._read])
            self.text += self._decode(self.token_ids[self._prefix:])[len(before):]
            self._read = len(self.token_ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self.stops and not self.stopped:
            self._cut_at_stop()
        hold = 0 if final or self.stopped or not self.stops else max(len(s) for s in self.stops) - 1
        end = max(self.emitted, len(self.text) - hold)
        delta, self.emitted = self.text[self.emitted:end], end
        return delta

    def _cut_at_stop(self) -> None:
        # Only text not yet emitted (plus what a stop string could reach back into) is searched.
        start = max(0, self.emitted - max(len(s) for s in self.stops) + 1)
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.text, self.stopped = self.text[: min(hits)], True
