"""Medical image captioning on MedNIST: data, models, training, decoding, metrics."""

__version__ = "0.1.0"
