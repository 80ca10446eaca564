"""Lexicons: the words and phrases that state the value of a label column in a caption, so that
what a free-text caption says (modality, plane, body system) can be checked against the
image's labels. A lexicon is JSON (format: ``captioning/lexicons/README.md``): per column, each
value's phrases, optional ``labels`` (a truth label read as one of the values) and optional
``ignore`` phrases (they state nothing; a longer match hides their words).

Reading rule: the caption's tokens are lower-cased and cut into runs of letters and digits
("T2-weighted" -> ``t2 weighted``), and so is every phrase. Left to right, the longest phrase
of the column that starts at a word matches and its words are used up; a caption *states* a
column's values: the set of values matched (empty: states none; several: ambiguous).
Matching is on whole words only: ``ct`` never matches inside ``actual``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from captioning.errors import DataError
from captioning.utils.resources import package_folder

LEXICONS = "lexicons"  # captioning/lexicons/<name>.json, shipped with the package
DEFAULT_LEXICON = "medpix"
_PIECE = re.compile(r"[a-z0-9]+")


def words_of(tokens: list[str] | str) -> tuple[str, ...]:
    """The words a lexicon reads: each token (or the text) lower-cased and cut into runs of
    letters and digits; punctuation and ``<unk>``'s brackets go."""
    text = tokens if isinstance(tokens, str) else " ".join(tokens)
    return tuple(_PIECE.findall(text.lower()))


@dataclass(frozen=True)
class ColumnLexicon:
    """One column's phrases (word tuples) -> value (None: an ignored phrase), its values in
    file order and ``labels``: truth label -> value."""

    name: str
    phrases: dict
    values: tuple[str, ...]
    labels: dict

    def read(self, tokens) -> frozenset[str]:
        """The values ``tokens`` (a caption's tokens or text) state, by the longest match."""
        words, found, i = words_of(tokens), set(), 0
        longest = max((len(p) for p in self.phrases), default=0)
        while i < len(words):
            for size in range(min(longest, len(words) - i), 0, -1):
                phrase = words[i : i + size]
                if phrase in self.phrases:
                    if self.phrases[phrase] is not None:
                        found.add(self.phrases[phrase])
                    i += size
                    break
            else:
                i += 1
        return frozenset(found)

    def truth(self, label) -> str | None:
        """The value a truth label is (itself, or what ``labels`` reads it as); None for a
        label the lexicon has no words for (not scored)."""
        label = "" if label is None else str(label)
        label = self.labels.get(label, label)
        return label if label in self.values else None


@dataclass(frozen=True)
class Lexicon:
    """A loaded lexicon: its ``name``, the ``file`` it came from, its ``sha256`` and the
    columns it reads."""

    name: str
    file: str
    sha256: str
    columns: dict

    def describe(self) -> dict:
        """What a report records of it: name, file and checksum."""
        return {"name": self.name, "file": self.file, "sha256": self.sha256}


def lexicon_names() -> list[str]:
    """The shipped lexicons (file stems of ``captioning/lexicons/*.json``)."""
    return sorted(p.stem for p in package_folder(LEXICONS).glob("*.json"))


def load_lexicon(name_or_path: str | Path = DEFAULT_LEXICON) -> Lexicon:
    """A shipped lexicon by name, or a JSON file by path; ``DataError`` naming the file and
    the problem when it is missing or malformed."""
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        shipped = package_folder(LEXICONS) / f"{name_or_path}.json"
        if not shipped.is_file():
            raise DataError(
                f"{name_or_path}: no such lexicon file, nor a shipped lexicon "
                f"(shipped: {', '.join(lexicon_names())})"
            )
        path = shipped
    raw = path.read_bytes()
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a valid JSON lexicon ({err})") from None
    columns = _columns(path, payload)
    name = payload.get("name") or path.stem
    return Lexicon(str(name), str(path.resolve()), hashlib.sha256(raw).hexdigest(), columns)


def _columns(path: Path, payload) -> dict:
    if not isinstance(payload, dict) or not isinstance(payload.get("columns"), dict):
        raise DataError(f"{path}: a lexicon is an object with a 'columns' object")
    if not payload["columns"]:
        raise DataError(f"{path}: the lexicon has no columns")
    return {name: _column(path, name, spec) for name, spec in payload["columns"].items()}


def _phrases(path: Path, where: str, phrases) -> list[tuple[str, ...]]:
    if not isinstance(phrases, list) or not phrases:
        raise DataError(f"{path}: {where} must be a non-empty list of words or phrases")
    out = []
    for phrase in phrases:
        words = words_of(phrase) if isinstance(phrase, str) else ()
        if not words:
            raise DataError(f"{path}: {where}: {phrase!r} is not a word or phrase")
        out.append(words)
    return out


def _column(path: Path, name: str, spec) -> ColumnLexicon:
    """One column, checked: every value has phrases, no phrase states two things, every
    ``labels`` entry names a value."""
    if not isinstance(spec, dict) or not isinstance(spec.get("values"), dict) or not spec["values"]:
        raise DataError(f"{path}: column {name!r} needs a non-empty 'values' object")
    unknown = set(spec) - {"values", "labels", "ignore"}
    if unknown:
        raise DataError(f"{path}: column {name!r}: unknown keys {sorted(unknown)}")
    table: dict = {}
    entries = [
        (value, f"column {name!r} value {value!r}", p) for value, p in spec["values"].items()
    ]
    if spec.get("ignore"):
        entries.append((None, f"column {name!r} 'ignore'", spec["ignore"]))
    for value, where, phrases in entries:
        for words in _phrases(path, where, phrases):
            if table.get(words, value) != value:
                raise DataError(
                    f"{path}: column {name!r}: {' '.join(words)!r} is listed under "
                    f"{table[words]!r} and {value!r}"
                )
            table[words] = value
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict) or any(v not in spec["values"] for v in labels.values()):
        raise DataError(f"{path}: column {name!r}: 'labels' must map labels to its values")
    return ColumnLexicon(name, table, tuple(spec["values"]), dict(labels))
