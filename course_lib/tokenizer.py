"""Tokenizers: words of the course's language, or the characters of any text file, through one API.

It implements:

- :class:`Tokenizer` with the special tokens ``[PAD]`` = 0, ``[MASK]`` = 1 (the absorbing state of
  masked diffusion) and ``[EOS]`` = 2 (ends every document), followed by the ordinary tokens;
- :meth:`Tokenizer.for_language`: one token per word of the course's grammar (:mod:`course_lib.language`);
- :meth:`Tokenizer.from_text_file`: one token per character of a user's text file (each line is a
  document), so a lecturer can swap in their own corpus and keep every chapter's code;
- :func:`batchify`: sentences -> a ``LongTensor`` of shape ``(N, length)``.

Unknown tokens and out-of-range ids raise ``ValueError`` naming the culprit.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import language

PAD, MASK, EOS = "[PAD]", "[MASK]", "[EOS]"
SPECIALS = (PAD, MASK, EOS)  # ids 0, 1, 2 in every tokenizer


class Tokenizer:
    """A fixed vocabulary: ``[PAD]``, ``[MASK]``, ``[EOS]``, then ``tokens`` in the given order.

    ``level`` is ``"word"`` (a string is split on whitespace; decode joins with spaces) or
    ``"char"`` (a string is split into characters; decode joins with nothing).
    """

    pad_id, mask_id, eos_id = 0, 1, 2

    def __init__(self, tokens, level: str = "word"):
        if level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {level!r}")
        tokens = list(tokens)
        if not tokens:
            raise ValueError("a tokenizer needs at least one ordinary token")
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise ValueError(f"tokens must be non-empty strings, got {t!r}")
            if level == "char" and len(t) != 1:
                raise ValueError(f"a character tokenizer takes single characters, got {t!r}")
            if level == "word" and any(c.isspace() for c in t):
                raise ValueError(f"a word token may not contain whitespace, got {t!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens must be unique")
        if set(tokens) & set(SPECIALS):
            raise ValueError(f"tokens may not include the special tokens {SPECIALS}")
        self.level = level
        self.itos: list[str] = list(SPECIALS) + tokens
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def for_language(cls, grammar=None) -> "Tokenizer":
        """Word tokenizer over the grammar's vocabulary (default: the course's grammar), 353 ids in all."""
        return cls((grammar or language.default_grammar()).vocabulary, level="word")

    @classmethod
    def from_text_file(cls, path) -> "Tokenizer":
        """Character tokenizer over every character of a UTF-8 text file (sorted), newlines excluded.

        Each line of the file is meant as one document: read them with
        ``Path(path).read_text().splitlines()`` and pass them to :func:`batchify`.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no such text file: {path}")
        chars = sorted(set(path.read_text(encoding="utf-8")) - {"\n", "\r"})
        if not chars:
            raise ValueError(f"{path} contains no characters besides newlines")
        return cls(chars, level="char")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        return len(self.itos)

    def _split(self, text) -> list[str]:
        if isinstance(text, str):
            return text.split() if self.level == "word" else list(text)
        return list(text)

    def encode(self, text) -> list[int]:
        """Token ids of a string or a list of tokens. Special tokens may appear by name, e.g. ``"[MASK]"``."""
        ids = []
        for t in self._split(text):
            i = self.stoi.get(t) if isinstance(t, str) else None
            if i is None:
                raise ValueError(f"unknown {self.level} {t!r}: not in this tokenizer's vocabulary "
                                 f"of {self.vocab_size} tokens")
            ids.append(i)
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        """The text of a sequence of ids (list or tensor); special tokens print as ``[PAD]`` etc.

        With ``skip_special=True``, ``[PAD]``, ``[MASK]`` and ``[EOS]`` are left out.
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if isinstance(i, bool) or int(i) != i or not 0 <= int(i) < self.vocab_size:
                raise ValueError(f"token id {i!r} is out of range [0, {self.vocab_size})")
            if skip_special and int(i) < len(SPECIALS):
                continue
            out.append(self.itos[int(i)])
        return (" " if self.level == "word" else "").join(out)

    def __repr__(self) -> str:
        return f"Tokenizer(level={self.level!r}, vocab_size={self.vocab_size})"


def batchify(sentences, tokenizer: Tokenizer, length: int, too_long: str = "error") -> torch.Tensor:
    """A ``LongTensor`` of shape ``(len(sentences), length)``: one sentence per row.

    Each row is the sentence's ids, then one ``[EOS]``, then
    ``[PAD]`` up to ``length``::

        "the dog sleeps ."  ->  [the, dog, sleeps, ., EOS, PAD, PAD, ...]

    A sentence whose ids plus ``[EOS]`` exceed ``length``: ``too_long="error"`` (default) raises
    ``ValueError``; ``"truncate"`` keeps its first ``length`` tokens (no ``[EOS]``, so a model sees
    that the document goes on); ``"drop"`` leaves the sentence out. The course's sentences have
    at most 40 tokens, so ``length = 41`` never needs either.
    """
    if int(length) != length or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    if too_long not in ("error", "truncate", "drop"):
        raise ValueError(f"too_long must be 'error', 'truncate' or 'drop', got {too_long!r}")
    if isinstance(sentences, str):
        raise ValueError("pass a list of sentences, not a single string")
    rows = []
    for n, s in enumerate(sentences):
        ids = tokenizer.encode(s) + [tokenizer.eos_id]
        if len(ids) > length:
            if too_long == "error":
                raise ValueError(f"sentence {n} has {len(ids)} tokens with [EOS], more than length={length} "
                                 "(raise length, or pass too_long='truncate' or 'drop')")
            if too_long == "drop":
                continue
            ids = ids[:length]
        rows.append(ids + [tokenizer.pad_id] * (length - len(ids)))
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), int(length))
