"""Medical image captioning on MedNIST: data, models, training, decoding, metrics."""

from captioning import quiet

__version__ = "0.1.0"

quiet.install()  # before anything imports TensorFlow: no C++ start-up noise on stderr
