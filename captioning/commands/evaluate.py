"""``captioning evaluate``: the command's library lives in ``captioning.evaluation``; the names
below are kept here so that older imports still work."""

from captioning.evaluation import evaluate_run
from captioning.evaluation.classifier import (
    classification_report_dict,
    predict_probabilities,
    write_confusion,
)

__all__ = ["classification_report_dict", "evaluate_run", "predict_probabilities", "write_confusion"]
