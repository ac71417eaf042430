"""English -> German number phrases, generated deterministically with `num2words`.

"forty-five thousand, six hundred and seventy-eight" translates to
"fünfundvierzigtausendsechshundertachtundsiebzig": German writes a number below a
million as one compound and puts units before tens ("acht und siebzig"), so the task
needs reordering as well as lexical translation; millions and milliards are separate
words with singular and plural forms ("eine Million", "zwei Millionen",
"einundzwanzig Milliarden"), and "one" becomes "ein", "eine" or "eins" by position.
Source phrases are tokenized into words ("-" and "," split off and dropped); German
compounds are split into their number morphemes by greedy longest match, so both sides
have word-level vocabularies of about 35 tokens and the model translates morpheme
sequences. BLEU is scored on those morpheme sequences (a whole German number is a
single orthographic word, so BLEU over compounds would be all-or-nothing).

Numbers range over 0..999,999,999,999 (English "billion" is German "Milliarde"), up to
23 words a side. The test set is 500 numbers of 3-12 digits (digit count uniform),
drawn once with a fixed seed; the training set is every number below 100 plus distinct
3-12 digit numbers outside the test set. Long numbers are what separates small
sub-networks from large ones: they must keep four digit groups apart and reorder
within each. num2words is slow (about 0.3 ms a phrase), so generated corpora are
cached as JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
MAX_DIGITS = 12
MAX_NUMBER = 10**MAX_DIGITS - 1
MIN_SAMPLED_DIGITS = 3  # numbers below 100 are all in the training set
# German number morphemes; greedy longest match splits every word of a number below 10^12.
GERMAN_MORPHEMES = (
    "null", "eins", "eine", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
    "zehn", "elf", "zwölf", "sechzehn", "siebzehn",
    "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig",
    "hundert", "tausend", "und", "million", "millionen", "milliarde", "milliarden",
)
ENGLISH_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "thousand", "and", "million", "billion",
)
# Longest phrases: four groups "nine hundred and ninety nine" (5 words) and three scale
# words = 23 words a side, plus </s> (source, target) or <s> (decoder input).
SRC_LEN = 24  # source tokens incl. </s>, right-padded
TGT_LEN = 24  # decoder input incl. <s> (and targets incl. </s>), right-padded
WHEEL_HINT = "pip install num2words==0.5.14"


def _num2words():
    try:
        from num2words import num2words
    except ImportError:
        raise RuntimeError(f"the number-translation data needs num2words; run `{WHEEL_HINT}`") from None
    return num2words


def english_words(n: int) -> list[str]:
    text = _num2words()(int(n), lang="en")
    return text.replace("-", " ").replace(",", " ").split()


def split_german(compound: str) -> list[str]:
    """Greedy longest-match split of a German number compound into morphemes."""
    word, out, i = compound.lower(), [], 0
    by_length = sorted(GERMAN_MORPHEMES, key=len, reverse=True)
    while i < len(word):
        for m in by_length:
            if word.startswith(m, i):
                out.append(m)
                i += len(m)
                break
        else:
            raise ValueError(f"cannot split German number word {compound!r} at {word[i:]!r}")
    return out


def german_words(n: int) -> list[str]:
    return [m for part in _num2words()(int(n), lang="de").split() for m in split_german(part)]


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]

    @classmethod
    def of(cls, words) -> "Vocab":
        return cls(SPECIALS + tuple(words))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words: list[str]) -> list[int]:
        index = {t: i for i, t in enumerate(self.tokens)}
        return [index.get(w, UNK) for w in words]

    def decode(self, ids) -> list[str]:
        words = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.tokens[i] if i < len(self.tokens) else SPECIALS[UNK])
        return words


SRC_VOCAB = Vocab.of(ENGLISH_WORDS)
TGT_VOCAB = Vocab.of(GERMAN_MORPHEMES)


@dataclass(frozen=True)
class Split:
    numbers: np.ndarray  # int64 (n,)
    src: np.ndarray  # int64 (n, SRC_LEN): English ids + </s>, PAD-padded
    tgt_in: np.ndarray  # int64 (n, TGT_LEN): <s> + German ids, PAD-padded
    tgt_out: np.ndarray  # int64 (n, TGT_LEN): German ids + </s>, PAD-padded
    references: tuple[str, ...]  # German morphemes joined by spaces


def _sample_numbers(rng: np.random.Generator, n: int, exclude: set[int], max_digits: int = MAX_DIGITS) -> list[int]:
    picked: list[int] = []
    seen = set(exclude)
    while len(picked) < n:
        digits = int(rng.integers(MIN_SAMPLED_DIGITS, max_digits + 1))
        x = int(rng.integers(10 ** (digits - 1), 10**digits))
        if x not in seen:
            seen.add(x)
            picked.append(x)
    return picked


def _phrases(numbers: list[int], cache: Path | None) -> list[tuple[list[str], list[str]]]:
    if cache is not None and cache.is_file():
        try:
            data = json.loads(cache.read_text())
            if data["numbers"] == numbers:
                return [tuple(p) for p in data["pairs"]]
        except (ValueError, KeyError):
            pass
    pairs = [(english_words(x), german_words(x)) for x in numbers]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"numbers": numbers, "pairs": pairs}, ensure_ascii=False))
        os.replace(tmp, cache)
    return pairs


def _pad(rows: list[list[int]], length: int) -> np.ndarray:
    out = np.full((len(rows), length), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) > length:
            raise ValueError(f"phrase of {len(row)} tokens exceeds the fixed length {length}")
        out[i, : len(row)] = row
    return out


def make_split(numbers: list[int], cache: Path | None = None) -> Split:
    pairs = _phrases([int(x) for x in numbers], cache)
    src = [SRC_VOCAB.encode(en) + [EOS] for en, _ in pairs]
    tgt = [TGT_VOCAB.encode(de) for _, de in pairs]
    return Split(
        numbers=np.asarray(numbers, dtype=np.int64),
        src=_pad(src, SRC_LEN),
        tgt_in=_pad([[BOS] + t for t in tgt], TGT_LEN),
        tgt_out=_pad([t + [EOS] for t in tgt], TGT_LEN),
        references=tuple(" ".join(de) for _, de in pairs),
    )


def load_numbers(
    n_train: int = 8000, n_test: int = 500, seed: int = 0, cache_dir: str | None = None, max_digits: int = MAX_DIGITS
) -> tuple[Split, Split]:
    """(train, test) of numbers with up to `max_digits` digits (3..MAX_DIGITS; fewer make an
    easier, cheaper task); the test set depends on (n_test, seed, max_digits), never on n_train."""
    if not MIN_SAMPLED_DIGITS <= max_digits <= MAX_DIGITS:
        raise ValueError(f"max_digits must be {MIN_SAMPLED_DIGITS}..{MAX_DIGITS}, got {max_digits}")
    test_numbers = _sample_numbers(np.random.default_rng([seed, 1]), n_test, set(range(100)), max_digits)
    train_numbers = list(range(100)) + _sample_numbers(
        np.random.default_rng([seed, 2]), max(0, n_train - 100), set(test_numbers) | set(range(100)), max_digits
    )
    root = Path(cache_dir).expanduser() / "numbers" if cache_dir else None

    def cache(numbers: list[int]) -> Path | None:
        if root is None:
            return None
        key = hashlib.sha256(json.dumps(numbers).encode()).hexdigest()[:16]
        return root / f"en-de-{len(numbers)}-{key}.json"

    return make_split(train_numbers, cache(train_numbers)), make_split(test_numbers, cache(test_numbers))
