"""Medical image captioning on MedNIST: data, models, training, decoding, metrics."""

from captioning import _moved
from captioning.utils import quiet

__version__ = "0.2.0"

quiet.install()  # before anything imports TensorFlow: no C++ start-up noise on stderr
_moved.install()  # old module paths (0.1) still import, with a DeprecationWarning
