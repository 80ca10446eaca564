"""Template sets: loading by name or path, rendering, and the checks on load."""

from __future__ import annotations

import shutil

import pytest

from captioning.captions.findings import FIELDS
from captioning.captions.templates import available_template_sets, load_template_set, render
from captioning.captions.tokenize import tokenize
from captioning.errors import DataError

FINDINGS = {"extent": "large", "density": "low", "brightness": "dark"}


def test_builtin_sets_are_found():
    assert {"class", "findings"} <= set(available_template_sets())
    tset = load_template_set("findings")
    assert tset.n_references >= 5
    assert set(tset.fields) == set(FIELDS)
    assert load_template_set("class").fields == ()


def test_references_differ_and_are_short():
    tset = load_template_set("findings")
    texts = [render("HeadCT", FINDINGS, tset, i) for i in range(tset.n_references)]
    assert len(set(texts)) == len(texts)
    assert all(6 <= len(tokenize(t)) <= 22 for t in texts)


def test_class_set_is_one_caption_per_class():
    tset = load_template_set("class")
    assert render("CXR", {}, tset, 0) == render("CXR", {"quality": "non-diagnostic"}, tset, 0)
    assert render("CXR", {}, tset, 0) != render("Hand", {}, tset, 0)


def test_tokenize_rule():
    assert tokenize("Head CT, non-diagnostic: X-ray; centred.") == [
        "head",
        "ct",
        "non-diagnostic",
        "x-ray",
        "centred",
    ]


def test_path_and_errors(tmp_path):
    copy = tmp_path / "mine.toml"
    shutil.copy(load_template_set("findings").path, copy)
    assert load_template_set(str(copy)).name == "findings"
    with pytest.raises(DataError, match="unknown template set 'nope'"):
        load_template_set("nope")
    with pytest.raises(DataError, match="expected one of"):
        render("HeadCT", {"extent": "huge"}, "findings", 0)
    with pytest.raises(DataError, match="no phrases for class"):
        render("Knee", FINDINGS, "findings", 0)


def test_ambiguous_set_fails_on_load(tmp_path):
    text = load_template_set("findings").path.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace(
            'large = ["large", "extensive", "large", "wide", "large"]', 'large = ["small"]'
        )
    )
    assert bad.read_text() != text
    with pytest.raises(DataError, match="ambiguous"):
        load_template_set(bad)
    slots = tmp_path / "slots.toml"
    slots.write_text(text.replace("{density} dense tissue", "dense tissue"))
    assert slots.read_text() != text
    with pytest.raises(DataError, match="slots"):
        load_template_set(slots)


def user_set(folder, name, source="class"):
    """A copy of a built-in set under another name, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = load_template_set(source).path.read_text()
    path = folder / f"{name}.toml"
    path.write_text(text.replace(f'name = "{source}"', f'name = "{name}"'))
    return path


def test_built_in_sets_are_package_data():
    from captioning.utils.resources import TEMPLATES, package_folder

    for name in ("findings", "class"):
        assert load_template_set(name).path.parent == package_folder(TEMPLATES).resolve()


def test_user_folders_from_the_environment_come_first(tmp_path, monkeypatch):
    import os

    first, second = tmp_path / "a", tmp_path / "b"
    user_set(first, "mine")
    user_set(second, "mine", source="findings")
    override = user_set(second, "class", source="findings")
    monkeypatch.setenv("CAPTIONING_TEMPLATES", os.pathsep.join([str(first), "", str(second)]))
    assert load_template_set("mine").path == (first / "mine.toml").resolve()
    assert load_template_set("mine").fields == ()  # the first folder's copy of 'class'
    assert load_template_set("class").path == override.resolve()  # replaces the built-in
    assert {"acquisition", "class", "findings", "mine"} == set(available_template_sets())
    monkeypatch.setenv("CAPTIONING_TEMPLATES", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"CAPTIONING_TEMPLATES: .*missing: no such folder"):
        load_template_set("findings")


def test_a_folder_holding_one_set_names_it(tmp_path, monkeypatch):
    path = user_set(tmp_path / "one", "mine")
    assert load_template_set(tmp_path / "one").path == path.resolve()
    user_set(tmp_path / "one", "other")
    with pytest.raises(DataError, match="exactly one template set \\(found: mine, other\\)"):
        load_template_set(tmp_path / "one")
    with pytest.raises(DataError, match="add its folder to \\$CAPTIONING_TEMPLATES"):
        load_template_set("mine")
    monkeypatch.chdir(tmp_path)  # a bare word is a set's name before it is a path
    (tmp_path / "findings").mkdir()
    assert load_template_set("findings").fields
    assert load_template_set("one/mine.toml").name == "mine"
