"""The caption-file formats ``data prepare --captions`` reads, by registration.

Each reader module in ``captioning/data/sources/`` calls ``register(CaptionFormat(...))`` once,
at import: its name (the ``--format`` value), its source kind (what the data card and
``run.json`` record), its reader, and how to recognise a file (suffixes, and for a suffix
several formats share, such as ``.json``, a sniff of the parsed content). ``captioning.data.
sources`` imports every reader module, so adding a layout is one new module and its test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from captioning.data.sources.records import Record
from captioning.errors import DataError


class Sample:
    """A caption file as the sniffs see it; its JSON content is parsed once, on first use."""

    def __init__(self, path: Path):
        self.path = path

    @cached_property
    def json(self):
        """The file parsed as one JSON document; refused in one line when it is not one."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{self.path}: no such caption file") from None
        except UnicodeDecodeError as err:
            raise DataError(f"{self.path}: not UTF-8 text ({err.reason})") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{self.path}: not JSON ({err.msg}, line {err.lineno})") from None


@dataclass(frozen=True)
class CaptionFormat:
    """One caption-file layout.

    ``read``: ``(file, columns=())`` -> one ``Record`` per image or study (``records.py``),
    refusing a malformed file in one line naming the file and the line or entry; ``columns``
    are the other columns (keys) ``data prepare`` names (``--label-columns``,
    ``--group-column``), each read into ``Record.columns`` from every row, with a value
    (``records.named_columns``). ``suffixes``: lower-case
    file suffixes it is detected from. ``sniff``: given a ``Sample``, whether the content is in
    this layout; required when another format shares a suffix (one without a sniff is taken
    on the suffix alone). ``text_defaults``: ``TextRules`` fields this layout's usual
    evaluation sets (R2Gen's ``min_count`` and ``max_length``), applied unless the user says.
    """

    name: str
    kind: str
    read: Callable[..., list[Record]]
    suffixes: tuple[str, ...]
    sniff: Callable[[Sample], bool] | None = None
    description: str = ""
    text_defaults: dict = field(default_factory=dict)


# format name -> its CaptionFormat, in registration order
FORMATS: dict[str, CaptionFormat] = {}


def register(fmt: CaptionFormat) -> CaptionFormat:
    """Make ``fmt`` a format ``data prepare`` knows; a name may be registered once."""
    if fmt.name in FORMATS and FORMATS[fmt.name] != fmt:
        raise ValueError(f"caption format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def known() -> str:
    """The registered formats, for messages: ``csv (.csv), r2gen (.json), ...``."""
    return ", ".join(f"{f.name} ({'/'.join(f.suffixes)})" for f in FORMATS.values())


def detect_format(path: Path) -> str:
    """The format of a caption file: from its suffix when one format claims it; from its
    content when several do (each one's sniff). Refused in one line when nothing matches."""
    suffix = path.suffix.lower()
    candidates = [f for f in FORMATS.values() if suffix in f.suffixes]
    if not candidates:
        raise DataError(
            f"{path}: cannot tell the format from the name; known formats: {known()}; "
            f"name it with --format {'|'.join(FORMATS)}"
        )
    if len(candidates) == 1 and candidates[0].sniff is None:
        return candidates[0].name
    sample = Sample(path)
    matches = [f.name for f in candidates if f.sniff is None or f.sniff(sample)]
    if len(matches) != 1:
        found = "matches none of" if not matches else f"matches several ({', '.join(matches)}) of"
        raise DataError(
            f"{path}: its content {found} the known formats: {known()}; "
            f"say which with --format {'|'.join(FORMATS)}"
        )
    return matches[0]


def get_format(name: str) -> CaptionFormat:
    """The registered format ``name``; refused in one line naming the known ones."""
    if name not in FORMATS:
        raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {name!r}")
    return FORMATS[name]
