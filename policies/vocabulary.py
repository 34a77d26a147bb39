"""The words a closed-vocabulary model knows, and what it makes of a text it is told.

The nano models read words: ``split_words`` (lower-case ``a``-``z`` runs), each word
in their vocabulary one id, any other ``<unk>``, the words past their limit cut.
Nothing in that says a word was not understood, so ``check_words`` does: it reads
the text as a person wrote it (letters of any script, and digits: "où", "5"),
and returns which of those words the model does not know and which it never reads.
The nodes log it once per instruction or question, and ``eval`` reports the share.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = ["WordCheck", "check_words", "split_words", "quote_words", "unknown_share"]


def split_words(text: str) -> list[str]:
    """The words a nano model's tokenizer reads: lower-case ``a``-``z`` runs ("Où?" -> ["o"])."""
    return re.findall(r"[a-z]+", text.lower())


def written_words(text: str) -> list[str]:
    """The words as written: runs of letters (any script) or digits, lower case ("Où est-il, 5?" -> où est il 5)."""
    return re.findall(r"[^\W_]+", text.lower())


@dataclass(frozen=True)
class WordCheck:
    words: tuple[str, ...]  # every written word, in order
    unknown: tuple[str, ...]  # the written words the model does not know, each once, in order
    unknown_count: int  # how many of ``words`` are unknown (repeats counted)
    cut: tuple[str, ...] = ()  # words past the model's limit: never read at all

    @property
    def share(self) -> float:
        """Unknown words / words (0.0 for a text without words)."""
        return self.unknown_count / len(self.words) if self.words else 0.0

    @property
    def known(self) -> tuple[str, ...]:
        return tuple(w for w in self.words if w not in self.unknown)

    @property
    def clean(self) -> bool:
        """There are words, and every one is known and read."""
        return bool(self.words) and not self.unknown and not self.cut


def check_words(text: str, vocabulary: Collection[str], limit: int | None = None) -> WordCheck:
    """What a model with ``vocabulary`` (and reading at most ``limit`` words) makes of ``text``."""
    words = written_words(text)
    unknown = [w for w in words if w not in vocabulary]
    cut = split_words(text)[limit:] if limit is not None else []
    return WordCheck(tuple(words), tuple(dict.fromkeys(unknown)), len(unknown), tuple(cut))


def unknown_share(checks: Iterable[WordCheck]) -> float:
    """Unknown words / words over several texts (repeats counted; 0.0 without words)."""
    unknown = words = 0
    for check in checks:
        unknown += check.unknown_count
        words += len(check.words)
    return unknown / words if words else 0.0


def quote_words(words: Iterable[str]) -> str:
    """"a", "b" -> 'a', 'b' (for log lines and answers)."""
    return ", ".join(f"'{w}'" for w in words)
