"""Which decoders exist: every module of this package that registers one
(``base.register_decoder``) is found here, so a new decoder is one new file.

``decoder_kinds()`` is what the config accepts as ``decoder.kind``; ``build_decoder`` makes one.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from captioning.config import ConfigError
from captioning.models.decoders.base import REGISTERED, CaptionDecoder

_PACKAGE = __name__.rsplit(".", 1)[0]  # captioning.models.decoders


def _import_all() -> None:
    """Import every module of the package, so each decoder's ``register_decoder`` has run."""
    path = importlib.import_module(_PACKAGE).__path__
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{_PACKAGE}.{module.name}")


def decoders() -> dict[str, type[CaptionDecoder]]:
    """kind -> decoder class, for every registered decoder (sorted by kind)."""
    _import_all()
    return dict(sorted(REGISTERED.items()))


def decoder_kinds() -> tuple[str, ...]:
    """The values ``decoder.kind`` may take."""
    return tuple(decoders())


def check_decoder_kind(kind: str) -> None:
    """Refuse an unregistered ``decoder.kind`` with the config's one-line error, naming the
    valid kinds (``captioning.config`` cannot check it: this package imports the config)."""
    if kind not in decoder_kinds():
        raise ConfigError(
            f"config key 'decoder.kind' = {kind!r} is out of range "
            f"(one of {', '.join(decoder_kinds())})"
        )


def unread_settings(kind: str, settings: dict, defaults: dict) -> list[str]:
    """The keys of ``settings`` (the config's ``[decoder]`` table) changed from ``defaults``
    that another decoder takes and ``kind`` does not: a choice the run would silently ignore,
    such as ``init_from_map`` (attention's) with ``kind = "show_tell"``."""
    known = decoders()
    taken = set(decoder_settings(known[kind]))
    elsewhere = set().union(*(decoder_settings(cls) for cls in known.values())) - taken
    return [k for k in sorted(elsewhere & set(settings)) if settings[k] != defaults.get(k)]


def decoder_settings(cls: type[CaptionDecoder]) -> dict[str, object]:
    """The keyword settings ``cls`` takes and their defaults: the keyword parameters of every
    ``__init__`` from ``cls`` up to ``CaptionDecoder`` (``vocab_size`` and ``**kwargs`` are
    not settings)."""
    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, CaptionDecoder)):
            continue
        if "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name in ("self", "vocab_size") or param.kind is param.VAR_KEYWORD:
                continue
            out[name] = param.default
    return out


def build_decoder(kind: str, vocab_size: int, **settings) -> CaptionDecoder:
    """The decoder called ``kind``, named ``decoder``, with the ``settings`` it takes (the
    config's ``[decoder]`` table holds settings of every kind: each decoder gets its own)."""
    known = decoders()
    if kind not in known:
        raise ValueError(f"unknown decoder kind '{kind}' (known: {', '.join(known)})")
    cls = known[kind]
    accepted = decoder_settings(cls)
    return cls(vocab_size, name="decoder", **{k: v for k, v in settings.items() if k in accepted})
