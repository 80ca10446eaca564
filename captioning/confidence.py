"""The probability of each finding a caption states, read from the decoder's own distribution.

For a generated caption, the decoder is run once more with teacher forcing on the caption's
own words, which gives the distribution it had at every step (the same distributions the
search saw). A finding's phrase is located the way parse-back finds it (longest phrase of the
template set at each position); at the first word of the phrase that decides the value (the
first word, unless phrases of different values share a beginning), the candidates are the
words the field's phrases can say there, each belonging to one value. The finding's
probability is the mass of the stated value's words over the mass of all the field's words:

    p(value) = sum_{w in words(value)} p_t(w) / sum_{w in words(field)} p_t(w)

These are returned as grouped logits (``captioning.metrics.calibration``) so a temperature
fitted on the validation split can be applied. Nothing here depends on the decoder's
architecture: only on ``decoder({"feature_map", "pooled", "tokens"}) -> {"logits"}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captioning.captions.findings import FIELD_VALUES
from captioning.captions.parse import phrase_table
from captioning.captions.templates import TemplateSet
from captioning.captions.tokenize import tokenize


@dataclass
class FieldLogits:
    """For N captions and one field: candidate logits (N, W) (``-inf`` padded), the value of
    each candidate (N, W), and the stated value's index (N,), -1 where the caption does not
    state the field."""

    logits: np.ndarray
    groups: np.ndarray
    chosen: np.ndarray


def locate_fields(words: list[str], tset: TemplateSet) -> dict[str, tuple[int, tuple, str]]:
    """Field -> (position, phrase tokens, value) of the first phrase of each field in ``words``,
    scanning as parse-back does (longest phrase first at each position)."""
    table, longest = phrase_table(tset)
    found: dict[str, tuple[int, tuple, str]] = {}
    i = 0
    while i < len(words):
        for length in range(min(longest, len(words) - i), 0, -1):
            phrase = tuple(words[i : i + length])
            hit = table.get(phrase)
            if hit is not None:
                if hit[0] in FIELD_VALUES and hit[0] not in found:
                    found[hit[0]] = (i, phrase, hit[1])
                i += length
                break
        else:
            i += 1
    return found


def stated_findings(tokens, vocab_tokens: list[str], tset) -> list[dict]:
    """Per caption of ``tokens`` (N, L) word ids: field -> the value the caption states, None
    where it states none of the field's phrases; every field of ``tset`` (none without a set).
    The phrases are located as ``finding_logits`` locates them, so a finding and its confidence
    speak of the same phrase. Templated captions repeat: each distinct one is read once."""
    fields = tuple(tset.fields) if tset is not None else ()
    seen: dict[tuple, dict] = {}
    out = []
    for row in tokens:
        key = tuple(int(t) for t in row if t > 0)
        if key not in seen:
            where = locate_fields([vocab_tokens[t] for t in key], tset) if fields else {}
            seen[key] = {f: where[f][2] if f in where else None for f in fields}
        out.append(dict(seen[key]))
    return out


def deciding_candidates(field: str, phrase: tuple, tset: TemplateSet, index: dict):
    """(offset, {word id: value index}) at the first offset of ``phrase`` that decides its
    value among the field's phrases, or None when a word is missing from the vocabulary."""
    values = FIELD_VALUES[field]
    options = [
        (tuple(tokenize(p)), values.index(v))
        for v, phrases in tset.phrases[field].items()
        for p in phrases
    ]
    chosen = next(v for tokens, v in options if tokens == phrase)
    for j in range(len(phrase)):
        live = [(t, v) for t, v in options if len(t) > j and t[:j] == phrase[:j]]
        if all(v == chosen for t, v in live if t[j] == phrase[j]):
            words: dict[int, int] = {}
            for t, v in live:
                if t[j] not in index:
                    return None
                words.setdefault(index[t[j]], v)
            return j, words
    return None


def finding_logits(
    decoder, features: dict, tokens: np.ndarray, start_id: int, vocab_tokens: list[str], tset
) -> dict[str, FieldLogits]:
    """Grouped logits of every finding of ``tset`` for captions ``tokens`` (N, L) (word ids,
    ``<end>`` then padding), generated from ``features`` (the encoder's outputs for the N
    images). ``decoder``: the decoder in inference mode, a function of its inputs (a traced
    ``tf.function`` of it, as ``inference.Captioner`` passes, runs far faster than eagerly)."""
    import tensorflow as tf

    n, length = tokens.shape
    inputs = np.concatenate([np.full((n, 1), start_id, np.int32), tokens[:, :-1]], 1)  # (N, L)
    out = decoder({**features, "tokens": tf.constant(inputs, tf.int32)})
    logits = out["logits"].numpy()  # (N, L, V): logits[:, t] scores word t of the caption
    index = {w: i for i, w in enumerate(vocab_tokens)}
    result = {}
    for field in tset.fields:
        width = sum(len(p) for p in tset.phrases[field].values())  # most candidates possible
        result[field] = FieldLogits(
            np.full((n, width), -np.inf, np.float32),
            np.zeros((n, width), np.int64),
            np.full(n, -1, np.int64),
        )
        result[field].logits[:, 0] = 0.0  # a caption without the field: one harmless slot
    # templated captions repeat: locate the phrases once per distinct caption
    rows, inverse = np.unique(tokens, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for u, row in enumerate(rows):
        members = np.flatnonzero(inverse == u)
        where = locate_fields([vocab_tokens[t] for t in row if t > 0], tset)
        for field, (position, phrase, value) in where.items():
            if field not in result:
                continue
            found = deciding_candidates(field, phrase, tset, index)
            if found is None or position + found[0] >= length:
                continue
            offset, cands = found
            ids = np.array(list(cands), np.int64)
            f = result[field]
            f.logits[members, : len(ids)] = logits[members, position + offset][:, ids]
            f.groups[members, : len(ids)] = list(cands.values())
            f.chosen[members] = FIELD_VALUES[field].index(value)
    return result


def concat_field_logits(parts: list[FieldLogits]) -> FieldLogits:
    """One ``FieldLogits`` from batches (candidate widths padded to the widest)."""
    if not parts:
        return FieldLogits(np.zeros((0, 1), np.float32), np.zeros((0, 1), np.int64), np.zeros(0))
    width = max(p.logits.shape[1] for p in parts)

    def pad(x, fill):
        return np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=fill)

    return FieldLogits(
        np.concatenate([pad(p.logits, -np.inf) for p in parts]),
        np.concatenate([pad(p.groups, 0) for p in parts]),
        np.concatenate([p.chosen for p in parts]),
    )


CALIBRATION_FILE = "calibration.json"


def load_calibration(run_dir) -> dict | None:
    """The run's ``calibration.json`` (``temperatures``: ``class`` and each finding -> T), or
    None for a run made before calibration existed."""
    import json
    from pathlib import Path

    from captioning.errors import RunError

    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text())
        body["temperatures"] = {k: float(v) for k, v in body["temperatures"].items()}
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise RunError(f"{path}: unreadable calibration ({err})") from None
    return body
