"""Caption text: MedNIST's templated captions (findings from pixels, template sets, parse-back,
cards) and the tokenisation, vocabulary and text statistics every caption source shares. It
imports nothing from ``captioning.data``: the data package builds on it, not the other way."""

from captioning.captions.findings import FIELDS, compute_findings, fit_cutpoints
from captioning.captions.parse import Parsed, parse_caption
from captioning.captions.templates import TemplateSet, load_template_set, render
from captioning.captions.tokenize import tokenize

__all__ = [
    "FIELDS",
    "Parsed",
    "TemplateSet",
    "compute_findings",
    "fit_cutpoints",
    "load_template_set",
    "parse_caption",
    "render",
    "tokenize",
]
