"""The seed notebook's whole approach, as it ran: Keras 2 (``tf_keras``) ImageDataGenerator
decoding every JPEG every epoch to 32x32 RGB with shear/zoom/flip augmentation, the two-conv
Sequential model, Adam, 5 epochs of ``model.fit`` -- on OUR split, so its test accuracy is
comparable. ``benchmarks/classifier.py`` runs it beside our classifier.

    pip install -e ".[bench]"          # tf_keras
    python benchmarks/seed_notebook.py --data ~/.cache/captioning/mednist [--epochs 5] [--limit N]

Prints one JSON object: wall seconds of training, test accuracy and errors.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    train, test = (frame[frame["split"] == s] for s in ("train", "test"))
    if args.limit:
        train, test = train.head(args.limit), test.head(args.limit)
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
    test_flow = ImageDataGenerator(rescale=1 / 255).flow_from_dataframe(test, shuffle=False, **flow)
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
    tic = time.perf_counter()
    model.fit(train_flow, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - tic
    probs = model.predict(test_flow, verbose=0)
    correct = int((probs.argmax(1) == test_flow.classes).sum())
    print(
        json.dumps(
            {
                "train_seconds": round(seconds, 1),
                "epochs": args.epochs,
                "test_n": len(test_flow.classes),
                "test_accuracy": correct / len(probs),
                "test_errors": len(probs) - correct,
                "parameters": model.count_params(),
            }
        )
    )


if __name__ == "__main__":
    main()
