"""Caption search: greedy and beam search, batched over images, for any decoder of
``captioning.models.decoders`` (the ``CaptionDecoder`` contract: ``initial_state``, ``step``,
``has_attention``; docs/decoders.md). The one inference graph: ``Captioner`` (CLI,
service, evaluation) and the exported SavedModel (``export.serving``) both decode with
``CaptionSearch.search_graph``.

Two levels of API. Graph methods (``*_graph``, ``normalise``, the module's ``choose_first``)
take and return tensors and build TensorFlow ops, so a caller can trace them into its own
``tf.function`` (the SavedModel does). The numpy methods (``greedy``, ``beam``, ``search``,
``first_word_probs``) wrap the same graph methods in ``tf.function``s cached per (beam width,
attention) and return ``Decoded`` numpy arrays. Each loop is a ``tf.while_loop`` over time
steps whose ops work on the whole batch (B images, or B x k beams); it stops when every
sequence has emitted ``<end>`` or after ``max_length`` words.

Scores: ``log_prob`` is the sum of the log-probabilities of the generated words including
``<end>``; ``length`` counts those words; ``score = log_prob / length ** length_alpha``
(``length_alpha`` 0: raw log-probability, 1: mean per word). Beam search ranks hypotheses by
``score``; a finished hypothesis is extended by ``<pad>`` at no cost, so it keeps competing
with longer ones. Beam search also scores the greedy caption and returns it where it scores
higher (plain beam search can prune the greedy path), at the cost of one greedy pass.

Rules (``rules``, a ``DecodingRules``; off unless asked, as for a run saved before them):
never ``<unk>``/``<pad>``/``<start>``, no word twice in a row, no repeated 3-gram, no ``<end>``
before ``min_length`` words, in both loops (``decoding.rules``).

Phrasing (``phrasing="varied"``): a template set says the same findings in several phrasings
that a decoder finds about equally likely, so plain search nearly always picks the same one.
With ``varied`` the first word is chosen per image (``choose_first``) among the top first word
and the ``phrasing_words`` (the words that open a template and say nothing about the image)
at least ``phrasing_ratio`` times as likely, by a seed from the image's pixels
(``phrasing.content_seeds``); the search continues from it. Same image, same caption.
"""

from captioning.decoding.rules import DecodingRules, length_bounds
from captioning.decoding.search import CaptionSearch, Decoded, choose_first

# a run's beam width and length penalty chosen on validation (training.search_choice), which
# inference uses over the config's
DECODING_FILE = "decoding.json"

__all__ = [
    "DECODING_FILE",
    "CaptionSearch",
    "Decoded",
    "DecodingRules",
    "choose_first",
    "length_bounds",
]
