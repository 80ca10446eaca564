"""``captioning train classifier|captioner``: the two training commands under one name (their
shared options are in ``captioning.commands.options``)."""

from __future__ import annotations

from captioning.commands import train_captioner, train_classifier


def add_parser(commands) -> None:
    """``train`` and its two subcommands, on the top-level subparsers ``commands``."""
    train = commands.add_parser("train", help="train a model").add_subparsers(
        dest="train_command", required=True
    )
    train_classifier.add_parser(train)
    train_captioner.add_parser(train)
