"""The seed notebook's whole approach, as it ran: Keras 2 (``tf_keras``) ImageDataGenerator
decoding every JPEG every epoch to 32x32 RGB with shear/zoom/flip augmentation, the two-conv
Sequential model, Adam, 5 epochs of ``model.fit`` -- on OUR split, so its test accuracy is
comparable. ``benchmarks/classifier.py`` runs it beside our classifier.

    pip install -e ".[bench]"          # tf_keras
    python benchmarks/seed_notebook.py --data ~/.cache/captioning/mednist [--epochs 5] [--limit N]

Prints one JSON object: seconds of training, test accuracy and errors, and per epoch the
validation accuracy (our ``val`` split, no augmentation, measured after the epoch and not counted
in the training seconds) with the training seconds so far, so the seconds to first reach 99.5%
validation accuracy compare with ``benchmarks/classifier.py``'s for our classifier. The notebook
itself never looked at validation data; measuring it changes nothing it trains.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def EpochHistory(k2, val_flow):
    """A Keras 2 callback: after each epoch, the training seconds of that epoch (its own
    evaluation excluded) and the validation accuracy. Built inside a function because
    ``tf_keras`` is imported late (only this benchmark needs it)."""

    class _History(k2.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_seconds, self.val_accuracy, self.elapsed = [], [], 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.tic = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.tic  # before the evaluation below
            self.elapsed += seconds
            self.epoch_seconds.append(seconds)
            probs = self.model.predict(val_flow, verbose=0)
            accuracy = float((probs.argmax(1) == val_flow.classes).mean())
            self.val_accuracy.append(round(accuracy, 5))

        def seconds_to(self, target: float):
            """Training seconds at the end of the first epoch whose accuracy >= target."""
            total = 0.0
            for seconds, accuracy in zip(self.epoch_seconds, self.val_accuracy, strict=True):
                total += seconds
                if accuracy >= target:
                    return round(total, 1)
            return None

    return _History()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST folder")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, help="first N images per split (a quick check)")
    args = parser.parse_args()

    import tf_keras as k2
    from tf_keras.preprocessing.image import ImageDataGenerator

    from captioning.data.dataset import PreparedData

    data = PreparedData(args.data)
    frame = data.manifest.assign(filename=[str(data.image_dir / p) for p in data.manifest["path"]])
    train, val, test = (frame[frame["split"] == s] for s in ("train", "val", "test"))
    if args.limit:
        train, val, test = train.head(args.limit), val.head(args.limit), test.head(args.limit)
    k2.utils.set_random_seed(0)
    flow = {
        "x_col": "filename",
        "y_col": "class",
        "target_size": (32, 32),
        "batch_size": 32,
        "class_mode": "categorical",
        "classes": data.classes,
    }
    augmenting = ImageDataGenerator(
        rescale=1 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True
    )
    train_flow = augmenting.flow_from_dataframe(train, shuffle=True, seed=0, **flow)
    plain = ImageDataGenerator(rescale=1 / 255)
    val_flow, test_flow = (plain.flow_from_dataframe(f, shuffle=False, **flow) for f in (val, test))
    model = k2.Sequential(
        [
            k2.layers.Conv2D(64, (5, 5), activation="relu", input_shape=(32, 32, 3)),
            k2.layers.MaxPooling2D((2, 2)),
            k2.layers.Conv2D(128, (3, 3), activation="relu"),
            k2.layers.MaxPooling2D((2, 2)),
            k2.layers.Flatten(),
            k2.layers.Dense(len(data.classes), activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = EpochHistory(k2, val_flow)
    model.fit(train_flow, epochs=args.epochs, verbose=2, callbacks=[history])
    probs = model.predict(test_flow, verbose=0)
    correct = int((probs.argmax(1) == test_flow.classes).sum())
    print(
        json.dumps(
            {
                "train_seconds": round(history.elapsed, 1),
                "epochs": args.epochs,
                "seconds_to_val_99.5": history.seconds_to(0.995),
                "val_accuracy_per_epoch": history.val_accuracy,
                "train_seconds_per_epoch": [round(t, 1) for t in history.epoch_seconds],
                "test_n": len(test_flow.classes),
                "test_accuracy": correct / len(probs),
                "test_errors": len(probs) - correct,
                "parameters": model.count_params(),
            }
        )
    )


if __name__ == "__main__":
    main()
