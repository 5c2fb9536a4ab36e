"""The one error type for bad input, shared by every layer of the suite.

A `ConfigError` is always the user's to fix: the CLI prints its message as one paragraph and
exits with status 2, without a traceback. Everything else is a bug or a runtime failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """Bad input: an unknown name, a value out of range, variants that do not combine."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        self.key = key
        self.source = source
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.key:
            where.append(f"key '{self.key}'")
        prefix = ": ".join(where)
        return f"{prefix}: {self.detail}" if prefix else self.detail

    def located(self, *, source: str | None = None, key: str | None = None) -> ConfigError:
        """The same error with the file and/or the dotted key filled in where still unknown."""
        return ConfigError(
            self.detail, key=self.key or key, source=self.source or source
        )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'rotary'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_choice(kind: str, word: object, choices: Iterable[str]) -> str:
    """The message for a value that is not one of the allowed ones."""
    allowed = sorted(str(c) for c in choices)
    return (
        f"unknown {kind} '{word}'{did_you_mean(str(word), allowed)}; "
        f"allowed: {', '.join(allowed)}"
    )
