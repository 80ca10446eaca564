"""Template sets: caption grammars stored as TOML data files, and rendering captions from them.

A set is found by name: first in the folders of ``$CAPTIONING_TEMPLATES`` (``os.pathsep``
separated, in order), then among the built-in sets shipped in the package
(``captioning/templates/<name>.toml``, read with ``importlib.resources``, so they work from a
wheel; see the README there for the format). A ``.toml`` file, or a folder holding one set,
can also be given by path. Users add sets without touching code; ``load_template_set`` checks
that every caption a set can produce parses back to the same class and fields, so an
ambiguous edit fails on load, not in an evaluation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from captioning.captions.findings import FIELD_VALUES, QUALITY_VALUES
from captioning.captions.spotting import SLOT as _SLOT
from captioning.captions.spotting import spot_phrases
from captioning.errors import DataError
from captioning.utils.resources import TEMPLATES, package_folder

DEFAULT_TEMPLATE_SET = "findings"
TEMPLATES_ENV = "CAPTIONING_TEMPLATES"  # user folders of sets, searched before the built-ins


def templates_dir() -> Path:
    """The built-in template sets: ``captioning/templates`` in the installed package."""
    return package_folder(TEMPLATES)


def template_dirs() -> list[Path]:
    """Where sets are looked up by name, first match wins: ``$CAPTIONING_TEMPLATES``'s
    folders in order (so a user set may replace a built-in one), then ``templates_dir()``."""
    user = []
    for entry in filter(None, os.environ.get(TEMPLATES_ENV, "").split(os.pathsep)):
        folder = Path(entry).expanduser()
        if not folder.is_dir():
            raise DataError(f"${TEMPLATES_ENV}: {folder}: no such folder")
        user.append(folder)
    return [*user, templates_dir()]


def available_template_sets() -> list[str]:
    """Names of the sets found in ``template_dirs()``."""
    return sorted({p.stem for folder in template_dirs() for p in folder.glob("*.toml")})


@dataclass(frozen=True, eq=False)
class TemplateSet:
    """A parsed, validated template file.

    ``templates[i]`` renders reference ``i`` of a diagnostic image; ``non_diagnostic[i]`` that of
    a near-blank one. A phrase list (``classes[c]``, ``phrases[field][value]``) gives synonyms:
    template ``i`` uses phrase ``i % len(list)``.
    """

    name: str
    path: Path
    description: str
    fields: tuple[str, ...]  # findings this set states (a subset of findings.FIELD_VALUES)
    templates: tuple[str, ...]
    non_diagnostic: tuple[str, ...]  # empty: near-blank images use ``templates`` too
    classes: dict[str, tuple[str, ...]]
    phrases: dict[str, dict[str, tuple[str, ...]]]  # field (or 'quality') -> value -> phrases
    sha256: str = ""  # of the set's content (not its comments): captions built from it say so

    @property
    def n_references(self) -> int:
        """References per image (the number of templates)."""
        return len(self.templates)


def _resolve(name_or_path: str | Path) -> Path:
    """The ``.toml`` file of a set given by name, by file path, or by a folder holding one.
    A bare word is a name first; only when no set has that name is it read as a path."""
    text = str(name_or_path)
    if not (text.endswith(".toml") or "/" in text or os.sep in text):
        for folder in template_dirs():
            candidate = folder / f"{text}.toml"
            if candidate.is_file():
                return candidate.resolve()
        if not Path(text).exists():
            known = ", ".join(available_template_sets()) or "none"
            raise DataError(
                f"unknown template set '{text}' (known: {known}; give a .toml path, "
                f"or add its folder to ${TEMPLATES_ENV})"
            )
    path = Path(text).expanduser()
    if path.is_dir():
        sets = sorted(path.glob("*.toml"))
        if len(sets) != 1:
            names = ", ".join(p.stem for p in sets) or "none"
            raise DataError(
                f"{path}: a folder must hold exactly one template set (found: {names}); give "
                f"a .toml file, or add the folder to ${TEMPLATES_ENV} and give the set's name"
            )
        return sets[0].resolve()
    if not path.is_file():
        raise DataError(f"{path}: template file not found")
    return path.resolve()


def load_template_set(name_or_path: str | Path = DEFAULT_TEMPLATE_SET) -> TemplateSet:
    """Load a set by name (``findings``, ``class``, ...), by path to a ``.toml`` file, or by a
    folder holding one set.

    Raises ``DataError`` naming the file and the problem when it is malformed or ambiguous.
    """
    path = _resolve(name_or_path)
    return _load(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _load(path: Path, _mtime: int) -> TemplateSet:
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"{path}: not valid TOML ({err})") from None
    problem = _shape_problem(raw)
    if problem:
        raise DataError(f"{path}: {problem}")
    phrases = {
        field: {value: tuple(p) for value, p in table.items()}
        for field, table in raw.get("phrases", {}).items()
    }
    tset = TemplateSet(
        name=raw.get("name", path.stem),
        path=path,
        description=raw.get("description", ""),
        fields=tuple(raw.get("fields", [])),
        templates=tuple(raw["templates"]),
        non_diagnostic=tuple(raw.get("non_diagnostic", [])),
        classes={c: tuple(p) for c, p in raw["classes"].items()},
        phrases=phrases,
        sha256=content_sha256(raw),
    )
    problem = _grammar_problem(tset)
    if problem:
        raise DataError(f"{path}: {problem}")
    return tset


def content_sha256(raw: dict) -> str:
    """sha256 of a set's parsed TOML content (keys sorted): a reworded set gets a new hash, an
    edit of its comments or layout does not."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _is_str_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _shape_problem(raw: dict) -> str | None:
    """What is wrong with the file's structure (types and keys), or None."""
    known = {"name", "description", "fields", "templates", "non_diagnostic", "classes", "phrases"}
    unknown = set(raw) - known
    if unknown:
        return f"unknown keys {sorted(unknown)} (known: {sorted(known)})"
    if not _is_str_list(raw.get("templates")):
        return "'templates' must be a non-empty list of strings"
    if "non_diagnostic" in raw and not _is_str_list(raw["non_diagnostic"]):
        return "'non_diagnostic' must be a non-empty list of strings"
    fields = raw.get("fields", [])
    if not isinstance(fields, list) or any(f not in FIELD_VALUES for f in fields):
        return f"'fields' must list findings among {list(FIELD_VALUES)}"
    classes = raw.get("classes")
    if not isinstance(classes, dict) or not classes:
        return "'classes' must be a table: class name = [phrases]"
    for c, p in classes.items():
        if not _is_str_list(p):
            return f"classes.{c} must be a non-empty list of phrases"
    phrases = raw.get("phrases", {})
    needed = {f: FIELD_VALUES[f] for f in fields}
    if raw.get("non_diagnostic"):
        needed["quality"] = (QUALITY_VALUES[1],)
    for field, values in needed.items():
        table = phrases.get(field, {})
        for value in values:
            if not _is_str_list(table.get(value)):
                return f"phrases.{field}.{value} must be a non-empty list of phrases"
    return None


def _grammar_problem(tset: TemplateSet) -> str | None:
    """Slots must match the set's fields, and every rendering must parse back to itself."""
    diagnostic_slots = {"class", *tset.fields}
    for i, template in enumerate(tset.templates):
        slots = _SLOT.findall(template)
        if sorted(slots) != sorted(diagnostic_slots):
            return f"templates[{i}] has slots {slots}, expected each of {sorted(diagnostic_slots)}"
    for i, template in enumerate(tset.non_diagnostic):
        slots = _SLOT.findall(template)
        if sorted(slots) != ["class", "quality"]:
            return f"non_diagnostic[{i}] has slots {slots}, expected {{class}} and {{quality}}"
    combos = list(itertools.product(*(FIELD_VALUES[f] for f in tset.fields)))
    for class_name in tset.classes:
        for i in range(tset.n_references):
            cases = [dict(zip(tset.fields, combo, strict=True)) for combo in combos]
            if tset.non_diagnostic:
                cases.append({"quality": QUALITY_VALUES[1]})
            for fields in cases:
                text = render(class_name, fields, tset, i)
                parsed = spot_phrases(text, tset)
                if not parsed.matches(class_name, fields) or parsed.unknown_words:
                    return f"ambiguous: reference {i} '{text}' parses as {parsed}"
    return None


def _phrase(options: tuple[str, ...], index: int) -> str:
    return options[index % len(options)]


def render(
    class_name: str, fields: dict, template_set: TemplateSet | str, template_index: int
) -> str:
    """Caption ``template_index`` of a set for an image of ``class_name`` with ``fields``.

    ``fields`` maps each finding of the set to its value; with ``quality`` 'non-diagnostic'
    the findings are ignored and a non-diagnostic template is used (when the set has them).
    """
    tset = (
        template_set if isinstance(template_set, TemplateSet) else load_template_set(template_set)
    )
    if class_name not in tset.classes:
        raise DataError(f"template set '{tset.name}' has no phrases for class '{class_name}'")
    if fields.get("quality") == QUALITY_VALUES[1] and tset.non_diagnostic:
        template = _phrase(tset.non_diagnostic, template_index)
        slots = {"quality": _phrase(tset.phrases["quality"][QUALITY_VALUES[1]], template_index)}
    else:
        template = _phrase(tset.templates, template_index)
        slots = {}
        for field in tset.fields:
            value = fields.get(field)
            if value not in FIELD_VALUES[field]:
                raise DataError(
                    f"field '{field}' = {value!r}: expected one of {FIELD_VALUES[field]}"
                )
            slots[field] = _phrase(tset.phrases[field][value], template_index)
    slots["class"] = _phrase(tset.classes[class_name], template_index)
    return sentence_case(_SLOT.sub(lambda m: slots[m.group(1)], template))


_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")


def sentence_case(text: str) -> str:
    """Capitalise the first letter of each sentence (of the text, and after '.', '!' or '?'),
    so a slot that opens a sentence (``{class}.``) reads properly; nothing is lower-cased."""
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
