"""The command line as a whole: every command module follows the convention (``add_parser`` and
``run``), building the parser loads no TensorFlow, every choice and default is the library's own
value, and ``--run`` works everywhere (the old positional form with a one-line note)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from captioning import cli
from captioning.commands import data as data_command
from captioning.commands import serve as serve_command

REPO = Path(__file__).resolve().parents[1]


def test_every_command_module_has_add_parser_and_run():
    names = [m.__name__.rsplit(".", 1)[1] for m in cli.COMMANDS]
    assert names == [
        "data",
        "train",
        "evaluate",
        "caption",
        "serve",
        "calibrate",
        "export",
        "quickstart",
    ]
    for module in cli.COMMANDS:
        assert callable(module.add_parser), module.__name__
    parser = cli.build_parser()
    for path, sub in _subcommands(parser):
        func = sub.get_default("func")
        assert func is not None and func.__name__ == "run", path
        assert inspect.signature(func).return_annotation in ("int", int), path


def test_building_the_parser_loads_no_tensorflow():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO)]))}
    code = (
        "import sys; from captioning.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of every leaf subcommand, e.g. (('train', 'classifier'), parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _subcommands(sub, (*path, name))


def _library_values() -> dict[tuple[str, str], tuple[object, object]]:
    """(command, option dest) -> (choices, default) as the library defines them."""
    from captioning.calibrate import DEFAULT_KEEP, DEFAULT_METHOD, METHOD_CHOICES
    from captioning.captions.templates import DEFAULT_TEMPLATE_SET
    from captioning.captions.text import PUNCTUATION, TextRules
    from captioning.commands.evaluate import evaluate_run
    from captioning.config import STRATEGIES
    from captioning.data.image_spec import CHANNEL_NAMES, DEFAULT_IMAGE, FITS
    from captioning.data.prepare import PrepareOptions
    from captioning.data.sources import FORMATS as SOURCE_FORMATS
    from captioning.export import export_run
    from captioning.export.formats import FORMATS as EXPORT_FORMATS
    from captioning.serving.uploads import Limits

    limits = Limits()
    prepare = PrepareOptions(source="")
    serve_defaults = inspect.signature(_serve_function()).parameters
    values = {
        ("data prepare", "seed"): (None, prepare.seed),
        ("data prepare", "fractions"): (None, prepare.fractions),
        ("data prepare", "format"): (sorted(SOURCE_FORMATS), None),
        ("data prepare", "punctuation"): (PUNCTUATION, TextRules().punctuation),
        ("data prepare", "image_size"): (None, DEFAULT_IMAGE.size),
        ("data prepare", "channels"): (sorted(CHANNEL_NAMES), DEFAULT_IMAGE.channels),
        ("data prepare", "fit"): (list(FITS), DEFAULT_IMAGE.fit),
        ("data captions", "templates"): (None, DEFAULT_TEMPLATE_SET),
        ("evaluate", "split"): (None, inspect.signature(evaluate_run).parameters["split"].default),
        ("serve", "host"): (None, serve_defaults["host"].default),
        ("serve", "port"): (None, serve_defaults["port"].default),
        ("serve", "max_files"): (None, limits.max_files),
        ("serve", "max_upload_mb"): (None, limits.max_file_mb),
        ("serve", "cors_origin"): (None, []),  # append's empty start: CORS off
        ("serve", "request_timeout"): (None, serve_defaults["request_timeout"].default),
        ("calibrate", "method"): (METHOD_CHOICES, DEFAULT_METHOD),
        ("calibrate", "keep"): (None, DEFAULT_KEEP),
        ("export", "format"): (
            EXPORT_FORMATS,
            inspect.signature(export_run).parameters["fmt"].default,
        ),
        ("quickstart", "out"): (None, "quickstart"),  # the command's own: a folder name
    }
    for kind in ("classifier", "captioner"):
        values[(f"train {kind}", "strategy")] = (STRATEGIES, None)
        values[(f"train {kind}", "set")] = (None, [])  # append's empty start
    return values


def _serve_function():
    from captioning.serving.app import serve

    return serve


def test_every_choice_and_default_is_the_librarys():
    expected = _library_values()
    seen = {}
    for path, parser in _subcommands(cli.build_parser()):
        for action in parser._actions:
            unset = action.default is None or action.default is False  # (0 is a default)
            if (unset or action.default == argparse.SUPPRESS) and action.choices is None:
                continue
            if isinstance(action, argparse._HelpAction):
                continue
            key = (" ".join(path), action.dest)
            choices = None if action.choices is None else list(action.choices)
            seen[key] = (choices, action.default)
    assert set(seen) == set(expected), "a new choice or default: add its library value here"
    for key, (choices, default) in expected.items():
        want = (None if choices is None else list(choices), default)
        assert seen[key] == want, key
    # the strategies the CLI offers are the ones the training code builds
    from captioning.training.strategy import STRATEGIES

    assert seen[("train classifier", "strategy")][0] == list(STRATEGIES)


def test_data_defaults_for_r2gen_are_valid_text_rules():
    from captioning.captions.text import TextRules

    fields = {f.name for f in dataclasses.fields(TextRules)}
    assert set(data_command.R2GEN_TEXT_DEFAULTS) <= fields
    assert serve_command.DEFAULT_PORT > 0


@pytest.fixture
def calls(monkeypatch):
    """The library functions ``evaluate`` and ``calibrate`` call, replaced by recorders."""
    import captioning.calibrate
    from captioning.commands import evaluate

    seen = []

    def record(name):
        def fake(run_dir, *args, **kwargs):
            seen.append((name, str(run_dir)))
            return {"ok": name}

        return fake

    monkeypatch.setattr(evaluate, "evaluate_run", record("evaluate"))
    monkeypatch.setattr(captioning.calibrate, "calibrate_run", record("calibrate"))
    return seen


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_run_is_an_option_and_the_old_positional_form_still_works(command, calls, capsys, tmp_path):
    run = str(tmp_path / "run")
    assert cli.main([command, "--run", run]) == 0
    new = capsys.readouterr()
    assert json.loads(new.out) == {"ok": command} and "deprecated" not in new.err

    assert cli.main([command, run]) == 0
    old = capsys.readouterr()
    assert old.out == new.out
    assert old.err.strip() == f"note: '{command} RUN' is deprecated; use '{command} --run {run}'"
    assert calls == [(command, run), (command, run)]

    assert cli.main([command, run, "--run", run]) == 2  # both: which was meant?
    assert cli.main([command]) == 2  # neither: these commands have no default run
    assert "--run RUN" in capsys.readouterr().err


def test_train_captioner_refuses_an_unknown_decoder_before_any_work(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code = cli.main(
        ["train", "captioner", "--set", "decoder.kind=transformer", "--run-dir", str(run_dir)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not run_dir.exists()
    assert err == (
        "error: config key 'decoder.kind' = 'transformer' is out of range "
        "(one of attention, show_tell)"
    )
