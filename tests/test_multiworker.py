"""Distributed training with real processes on the loopback interface.

Two ``captioning train classifier`` (and ``train captioner``) worker processes, each in its own
working folder (as if on two hosts without a shared filesystem), train together through
``TF_CONFIG``; one of them is killed mid-run; both are killed mid-run and resumed (captioner,
patience on); workers given other data or another config refuse to start; a single-process
captioner is killed in each stage and resumes to the uninterrupted result; ``MirroredStrategy``
over two logical CPUs is compared with one device, for the classifier and for the captioner's
stage 1. The fast tests check the pieces (sharding, batch split, messages) in this process.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import captioning
from captioning.cli import build_parser, train_overrides
from captioning.data.caption_data import caption_dataset_fn
from captioning.data.pipeline import epoch_order, eval_slices, make_dataset_fn
from captioning.errors import RunError
from captioning.training.loop import check_global_batch
from captioning.training.strategy import lost_worker_message
from captioning.training.sync import experiment_identity, fingerprint

REPO = Path(captioning.__file__).resolve().parent.parent  # the code under test, for children
WORKER_TIMEOUT_S = 150  # any one worker process; a hang fails the test instead of blocking it
LOST_WORKER_BOUND_S = 45  # a survivor must stop this soon after its peer dies (measured ~10 s)


# ---------------------------------------------------------------- fast: the pieces


def context(pipelines, pipeline_id, replicas):
    return tf.distribute.InputContext(pipelines, pipeline_id, replicas)


@pytest.mark.parametrize(
    ("n", "global_batch", "pipelines", "replicas"),
    [(12, 16, 2, 2), (5, 8, 2, 2), (3, 8, 2, 2), (0, 8, 2, 2), (37, 12, 3, 6), (10, 4, 1, 2)],
)
def test_validation_split_gives_every_worker_the_same_steps_and_each_sample_once(
    n, global_batch, pipelines, replicas
):
    local = replicas // pipelines
    seen, counts = [], set()
    for p in range(pipelines):
        starts, stops = eval_slices(n, global_batch, context(pipelines, p, replicas))
        counts.add(len(starts))
        seen += [i for a, b in zip(starts, stops, strict=True) for i in range(a, b)]
    assert counts == {local * -(-n // global_batch)}  # same number of batches, some empty
    assert sorted(seen) == list(range(n))


def test_training_shards_make_the_same_global_batches_as_one_device():
    images = np.arange(40, dtype=np.uint8)[:, None, None] * np.ones((1, 64, 64), np.uint8)
    labels = np.arange(40, dtype=np.int32)
    fn = make_dataset_fn(images, labels, 8, training=True, seed=3)
    order = epoch_order(40, 3, 1)
    shards = [[y.numpy() for _, y in fn(context(2, p, 2), 1)] for p in (0, 1)]
    assert len(shards[0]) == len(shards[1]) >= 40 // 8
    for step in range(40 // 8):
        together = np.concatenate([shards[0][step], shards[1][step]])
        assert sorted(together) == sorted(order[step * 8 : (step + 1) * 8])


def test_caption_validation_gives_every_worker_the_same_steps_and_each_sample_once():
    n = 13
    features = {"pooled": np.arange(n, dtype=np.float16)[:, None]}
    refs = np.zeros((n, 2, 5), np.int32)
    fn = caption_dataset_fn(features, refs, np.zeros(n, np.int32), 8, training=False)
    shards = [[x["pooled"].numpy()[:, 0] for x, _ in fn(context(2, p, 2))] for p in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 2  # worker 1's second batch is empty
    assert sorted(np.concatenate(shards[0] + shards[1])) == list(range(n))


def test_every_batch_norm_of_the_captioner_is_synchronized():
    from captioning.config import ModelConfig
    from captioning.models.captioner import build_captioner
    from captioning.models.classifier import build_classifier
    from captioning.models.decoders import build_decoder

    classifier = build_classifier(ModelConfig(widths=[4, 8, 8]), 3)
    decoder = build_decoder("attention", 12, embed_dim=8, hidden=8, attention_dim=8)
    model = build_captioner(
        classifier.get_layer("encoder"), classifier.get_layer("logits"), decoder, 6
    )
    norms = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, tf.keras.layers.BatchNormalization)
    ]
    assert norms and all(layer.synchronized for layer in norms)


def test_global_batch_must_split_evenly_over_replicas():
    assert check_global_batch(16, 2) == 8
    with pytest.raises(RunError, match=r"must divide evenly over the 3 replicas \(e.g. 15\)"):
        check_global_batch(16, 3)


def test_lost_worker_message_names_the_dead_task_not_this_one():
    class Resolver:
        task_type, task_id = "worker", 0

        @staticmethod
        def cluster_spec():
            return tf.train.ClusterSpec({"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]})

    class Strategy:
        cluster_resolver = Resolver()

    err = tf.errors.UnavailableError(
        None,
        None,
        "Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
        "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n...",
    )
    message = lost_worker_message(err, Strategy())
    assert "\n" not in message
    assert message.startswith("lost worker 1 (127.0.0.1:2222): it stopped sending heartbeats")
    silent = tf.errors.UnavailableError(None, None, "recvmsg:Connection reset by peer")
    assert "lost worker 1 (127.0.0.1:2222)" in lost_worker_message(silent, Strategy())


def test_experiment_identity_names_each_setting_and_ignores_host_local_ones():
    a = {"data": {"root": "/a", "per_class_limit": 8}, "train": {"strategy": "auto", "seed": 0}}
    b = {"data": {"root": "/b", "per_class_limit": 8}, "train": {"strategy": "multiworker"}}
    b["train"]["seed"] = 0
    assert (
        experiment_identity(a, data="sha")
        == experiment_identity(b, data="sha")
        == {
            "data.per_class_limit": "8",
            "train.seed": "0",
            "data": "sha",
        }
    )
    b["train"]["seed"] = 1
    differs = {k for k, v in experiment_identity(b).items() if experiment_identity(a)[k] != v}
    assert differs == {"train.seed"}
    assert fingerprint("a") != fingerprint("b")


def test_strategy_option_overrides_the_config():
    args = build_parser().parse_args(
        ["train", "classifier", "--set", "train.strategy=default", "--strategy", "multiworker"]
    )
    assert train_overrides(args)[-1] == "train.strategy=multiworker"
    with pytest.raises(SystemExit), contextlib.redirect_stderr(open(os.devnull, "w")):
        build_parser().parse_args(["train", "classifier", "--strategy", "tpu"])


# ---------------------------------------------------------------- slow: real processes


def make_tiny_data(base: Path, classes: list[str], varied: bool = False) -> Path:
    """A prepared dataset of 40 synthetic 64x64 PNGs per class (a bright square on the left,
    middle or right): learnable in a few steps. ``varied``: squares of random height and
    brightness on a random share of the frame (so the findings' cut points have both sides)."""
    from PIL import Image

    from captioning.data.prepare import PrepareOptions, prepare

    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (base / "src" / name).mkdir(parents=True)
        for i in range(40):
            image = rng.integers(0, 40, (64, 64)).astype(np.uint8)
            if varied:
                top, bottom = rng.integers(2, 24), rng.integers(40, 62)
                image[:, : rng.integers(8, 64)] += np.uint8(rng.integers(20, 90))
                image[top:bottom, 4 + 20 * k : 20 + 20 * k] = rng.integers(200, 256)
            else:
                image[24:40, 4 + 20 * k : 20 + 20 * k] = 220
            Image.fromarray(image).save(base / "src" / name / f"{i:03d}.png")
    prepare(base / "data", PrepareOptions(source=str(base / "src")), base / "downloads")
    return base / "data"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("tiny"), ["Left", "Middle", "Right"])


@pytest.fixture(scope="module")
def tiny_captioned_data(tmp_path_factory) -> Path:
    """Like ``tiny_data`` under MedNIST class names (the caption templates know those), its
    captions built beforehand (the test's workers share this one data folder)."""
    from captioning.data.caption_data import caption_frame
    from captioning.data.dataset import PreparedData

    data = make_tiny_data(tmp_path_factory.mktemp("tinycap"), ["AbdomenCT", "Hand", "HeadCT"], True)
    caption_frame(PreparedData(data), "findings")
    return data


def free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def child_env(**extra) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


TINY_CAPTIONER = [
    "decoder.hidden=8",
    "decoder.embed_dim=8",
    "decoder.attention_dim=8",
    "decoder.max_length=10",
    "data.per_class_limit=16",
    "train.max_eval_batches=1",
]

TINY_RUN = [
    "model.widths=[4,8,8]",
    "train.batch_size=16",
    "train.min_steps=0",  # the epochs as given (the schedule rule would grow them)
    "train.learning_rate=0.01",
    "train.warmup_steps=0",
    "augment.translate=0",
    "augment.zoom=0",
]


class Cluster:
    """Worker processes on 127.0.0.1, each in ``hosts/<i>`` as its working folder, logging
    to ``logs/<i>-<attempt>.txt``; ``start`` twice reruns the very same commands."""

    def __init__(self, base: Path, data: Path, epochs: int, n: int = 2, encoder=None):
        self.base, self.data, self.epochs, self.n = base, data, epochs, n
        self.encoder = encoder  # a classifier run folder: train a captioner on it
        self.ports = free_ports(n)
        self.attempt = 0
        self.extra: dict[int, list[str]] = {}  # more arguments for one worker (later ones win)
        self.procs: list[subprocess.Popen] = []
        for i in range(n):
            (base / "hosts" / str(i)).mkdir(parents=True, exist_ok=True)
        (base / "logs").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        if self.encoder is not None:
            return self.captioner_command()
        sets = [x for s in [*TINY_RUN, f"train.epochs={self.epochs}"] for x in ("--set", s)]
        return [
            sys.executable, "-m", "captioning.cli", "train", "classifier",
            "--data", str(self.data), "--run-dir", "run", "--strategy", "multiworker", *sets,
        ]  # fmt: skip

    def captioner_command(self) -> list[str]:
        sets = [x for s in [*TINY_CAPTIONER, f"train.epochs={self.epochs}"] for x in ("--set", s)]
        return [
            sys.executable, "-m", "captioning.cli", "train", "captioner", "--smoke",
            "--data", str(self.data), "--encoder", str(self.encoder), "--run-dir", "run",
            "--strategy", "multiworker", *sets,
        ]  # fmt: skip

    def start(self) -> None:
        self.attempt += 1
        workers = [f"127.0.0.1:{p}" for p in self.ports]
        self.procs = []
        for i in range(self.n):
            tf_config = json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
            )
            log = open(self.log(i), "w")  # noqa: SIM115 (closed with the process)
            self.procs.append(
                subprocess.Popen(
                    [*self.command(), *self.extra.get(i, [])],
                    cwd=self.base / "hosts" / str(i),
                    env=child_env(TF_CONFIG=tf_config),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()

    def log(self, i: int) -> Path:
        return self.base / "logs" / f"{i}-{self.attempt}.txt"

    def output(self, i: int) -> str:
        return self.log(i).read_text()

    def wait(self, timeout: float = WORKER_TIMEOUT_S) -> list[int]:
        deadline = time.monotonic() + timeout
        codes = []
        try:
            for proc in self.procs:
                codes.append(proc.wait(timeout=max(deadline - time.monotonic(), 0.1)))
        except subprocess.TimeoutExpired:
            self.kill()
            logs = "\n".join(f"--- worker {i}\n{self.output(i)[-3000:]}" for i in range(self.n))
            pytest.fail(f"workers still running after {timeout} s\n{logs}")
        return codes

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def wait_for(self, path: Path) -> None:
        """Until ``path`` exists (the chief writes it); fail if the chief exits first."""
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while not path.exists():
            assert time.monotonic() < deadline, self.output(0)[-3000:]
            assert self.procs[0].poll() is None, self.output(0)[-3000:]
            time.sleep(0.05)

    def digest(self, i: int) -> str:
        found = re.findall(r"final weights sha256: ([0-9a-f]{64})", self.output(i))
        assert found, self.output(i)[-3000:]
        return found[-1]


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(data, epochs, encoder=None):
        made.append(Cluster(tmp_path, data, epochs, encoder=encoder))
        return made[-1]

    yield make
    for cluster in made:
        cluster.kill()


def read_log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_two_workers_train_together_and_only_the_chief_writes(tiny_data, cluster_factory):
    cluster = cluster_factory(tiny_data, epochs=2)
    cluster.start()
    codes = cluster.wait()
    assert codes == [0, 0], [cluster.output(i)[-3000:] for i in range(2)]
    assert cluster.digest(0) == cluster.digest(1)  # bit-identical final weights
    run = cluster.base / "hosts" / "0" / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["weights_sha256"] == cluster.digest(0)
    assert json.loads((run / "run.json").read_text())["strategy"] == "multiworker"
    assert {"best_model.keras", "checkpoints", "log.csv", "config.json"} <= {
        p.name for p in run.iterdir()
    }
    assert list((cluster.base / "hosts" / "1").iterdir()) == []  # the other worker wrote nothing
    assert "wrote no files" in cluster.output(1)
    rows = read_log(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_a_rerun_resumes(tiny_data, cluster_factory):
    cluster = cluster_factory(tiny_data, epochs=6)
    cluster.start()
    checkpoints = cluster.base / "hosts" / "0" / "run" / "checkpoints"
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while not (checkpoints / "epoch-0002").exists():
        assert time.monotonic() < deadline, cluster.output(0)[-3000:]
        assert cluster.procs[0].poll() is None, cluster.output(0)[-3000:]
        time.sleep(0.1)
    os.killpg(cluster.procs[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    code = cluster.procs[0].wait(timeout=WORKER_TIMEOUT_S)
    elapsed = time.monotonic() - killed
    print(f"survivor exited {elapsed:.1f} s after its peer was killed")
    errors = [line for line in cluster.output(0).splitlines() if line.startswith("error:")]
    assert code != 0 and elapsed < LOST_WORKER_BOUND_S
    assert len(errors) == 1, cluster.output(0)[-3000:]
    assert f"lost worker 1 (127.0.0.1:{cluster.ports[1]})" in errors[0]

    cluster.start()  # the very same commands
    assert cluster.wait() == [0, 0], [cluster.output(i)[-3000:] for i in range(2)]
    resumed = re.search(r"resuming .* after epoch (\d+)", cluster.output(0))
    assert resumed and int(resumed.group(1)) >= 2
    assert cluster.digest(0) == cluster.digest(1)
    run = cluster.base / "hosts" / "0" / "run"
    assert [int(r["epoch"]) for r in read_log(run)] == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "metrics.json").read_text())["resumed_from_epoch"] >= 2
    assert list((cluster.base / "hosts" / "1").iterdir()) == []


MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from captioning.config import ModelConfig, TrainConfig
from captioning.data.pipeline import make_dataset_fn
from captioning.models.classifier import build_classifier
from captioning.training.classifier_task import ClassificationTask
from captioning.training.loop import fit
from captioning.training.optimizers import make_optimizer
from captioning.training.strategy import make_strategy

rng = np.random.default_rng(0)
labels = (np.arange(40) % 3).astype(np.int32)
images = rng.integers(0, 40, (40, 64, 64)).astype(np.uint8)
for i, k in enumerate(labels):
    images[i, 24:40, 4 + 20 * k : 20 + 20 * k] = 220
config = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, warmup_steps=0)
keras.utils.set_random_seed(0)
initial = build_classifier(ModelConfig(widths=[4, 8, 8]), 3).get_weights()
out = {}
# One strategy object per kind for the whole process (as in a real run): collective keys
# are numbered per MirroredStrategy object, so a second one would reuse the first's.
strategies = {name: make_strategy(name) for name in ("default", "mirrored")}
for name, opt in [(s, o) for o in ("sgd", "adamw") for s in strategies]:
    strategy = strategies[name]
    with strategy.scope():
        model = build_classifier(ModelConfig(widths=[4, 8, 8]), 3)
        model.set_weights(initial)
        if opt == "sgd":
            optimizer = keras.optimizers.SGD(0.05)
        else:
            optimizer = make_optimizer(config, 3 * config.epochs)
    result = fit(
        task=ClassificationTask(), model=model, optimizer=optimizer, strategy=strategy,
        train_fn=make_dataset_fn(images, labels, 8, training=True, seed=1),
        val_fn=make_dataset_fn(images[:13], labels[:13], 8, training=False),
        steps=3, config=config, run_dir=__import__("pathlib").Path(sys.argv[1]) / (name + opt),
    )
    out[name + "-" + opt] = {
        "replicas": strategy.num_replicas_in_sync,
        "weights": [w.tolist() for w in model.get_weights()],
        "best": result.best,
    }
print(json.dumps(out))
"""


def run_json_script(script: str, tmp_path) -> dict:
    """Run ``script`` in a fresh Python (its own TensorFlow devices); its last line is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Max |weight difference| after 6 steps from the same start and the same global batches.
# Plain SGD: float sums in another order only. AdamW divides by sqrt(v) + eps, which magnifies
# that rounding noise in weights whose gradients are near zero: bounded by a tenth of one
# learning-rate step (1e-2) instead. A wrong split of the batch or of the loss scale would
# show as differences of whole steps.
MIRRORED_TOLERANCE = {"sgd": 1e-5, "adamw": 1e-3}


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
    out = run_json_script(MIRRORED_SCRIPT, tmp_path)
    for opt, tolerance in MIRRORED_TOLERANCE.items():
        one, two = out[f"default-{opt}"], out[f"mirrored-{opt}"]
        assert (one["replicas"], two["replicas"]) == (1, 2)
        worst = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(one["weights"], two["weights"], strict=True)
        )
        assert worst < tolerance, (opt, worst)
        assert one["best"]["epoch"] == two["best"]["epoch"]
        assert one["best"]["accuracy"] == pytest.approx(two["best"]["accuracy"])
        assert one["best"]["loss"] == pytest.approx(two["best"]["loss"], abs=1e-4)


@pytest.fixture(scope="module")
def tiny_encoder(tiny_captioned_data, tmp_path_factory) -> Path:
    """A smoke classifier run on ``tiny_captioned_data`` (one process): the encoder."""
    work = tmp_path_factory.mktemp("encoder")
    command = [
        sys.executable, "-m", "captioning.cli", "train", "classifier", "--smoke",
        "--data", str(tiny_captioned_data), "--run-dir", "clf", "--strategy", "default",
        "--set", "model.widths=[4,8,8]",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=work,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return work / "clf"


@pytest.mark.slow
def test_two_workers_train_a_captioner_and_only_the_chief_writes(
    tiny_captioned_data, tiny_encoder, cluster_factory
):
    cluster = cluster_factory(tiny_captioned_data, epochs=2, encoder=tiny_encoder)
    cluster.start()
    codes = cluster.wait()
    assert codes == [0, 0], [cluster.output(i)[-3000:] for i in range(2)]
    assert cluster.digest(0) == cluster.digest(1)  # bit-identical final captioners
    run = cluster.base / "hosts" / "0" / "run"
    assert {
        "best_model.keras",
        "vocabulary.json",
        "config.json",
        "run.json",
        "metrics.json",
        "stage1",
        "stage2",
    } <= {p.name for p in run.iterdir()}
    meta = json.loads((run / "run.json").read_text())
    assert (meta["strategy"], meta["replicas"]) == ("multiworker", 2)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights_sha256"] == cluster.digest(0) and metrics["replicas"] == 2
    assert list((cluster.base / "hosts" / "1").iterdir()) == []  # the other worker wrote nothing
    assert "wrote no files" in cluster.output(1)
    rows = read_log(run / "stage1")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    assert 0.0 <= float(rows[-1]["val_bleu4"]) <= 1.0
    assert [int(r["epoch"]) for r in read_log(run / "stage2")] == [1]


CAPTIONER_MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from pathlib import Path
from captioning.config import TrainConfig
from captioning.data.caption_data import caption_dataset_fn
from captioning.models.captioner import build_feature_model
from captioning.models.decoders import build_decoder
from captioning.training.caption_task import CaptionTask
from captioning.training.loop import fit
from captioning.training.optimizers import make_optimizer
from captioning.training.strategy import make_strategy

rng = np.random.default_rng(0)
n, vocab, length = 40, 12, 6
features = {
    "feature_map": rng.normal(size=(n, 2, 2, 8)).astype(np.float16),
    "pooled": rng.normal(size=(n, 8)).astype(np.float16),
}
refs = np.zeros((n, 2, length + 1), np.int32)
for i in range(n):
    for r in range(2):
        words = rng.integers(4, vocab, rng.integers(2, length - 1))
        refs[i, r, : len(words) + 2] = [1, *words, 2]
labels = (np.arange(n) % 3).astype(np.int32)
config = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, warmup_steps=0)

def build():
    decoder = build_decoder("attention", vocab, embed_dim=8, hidden=8, attention_dim=8,
                            dropout=0.0)
    return build_feature_model(decoder, features, length)

keras.utils.set_random_seed(0)
initial = build().get_weights()
out = {}
strategies = {name: make_strategy(name) for name in ("default", "mirrored")}
for name, strategy in strategies.items():
    with strategy.scope():
        model = build()
        model.set_weights(initial)
        optimizer = make_optimizer(config, 3 * config.epochs)
    task = CaptionTask(attention_penalty=1.0)
    task.monitor = "word_accuracy"  # no generated captions here: no BLEU
    result = fit(
        task=task, model=model, optimizer=optimizer,
        strategy=strategy,
        train_fn=caption_dataset_fn(features, refs, labels, 8, training=True, seed=1),
        val_fn=caption_dataset_fn(
            {k: v[:13] for k, v in features.items()}, refs[:13], labels[:13], 8, training=False
        ),
        steps=3, config=config, run_dir=Path(sys.argv[1]) / name, best_model_name="best.keras",
    )
    out[name] = {
        "replicas": strategy.num_replicas_in_sync,
        "weights": [w.tolist() for w in model.get_weights()],
        "best": result.best,
    }
print(json.dumps(out))
"""

# Max |weight difference| after 6 AdamW steps from the same start on the same global batches:
# the captioner's stage 1 (attention LSTM decoder on cached features), as for the classifier.
CAPTIONER_MIRRORED_TOLERANCE = 1e-3


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device_for_captioner_stage1(tmp_path):
    out = run_json_script(CAPTIONER_MIRRORED_SCRIPT, tmp_path)
    one, two = out["default"], out["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    worst = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(one["weights"], two["weights"], strict=True)
    )
    assert worst < CAPTIONER_MIRRORED_TOLERANCE, worst
    assert one["best"]["epoch"] == two["best"]["epoch"]
    assert one["best"]["loss"] == pytest.approx(two["best"]["loss"], abs=1e-4)
    assert one["best"]["word_accuracy"] == pytest.approx(two["best"]["word_accuracy"])


# ---------------------------------------------------------------- slow: agreement and resume


@pytest.mark.slow
def test_workers_with_other_data_or_config_refuse_to_start_and_name_it(
    tiny_data, tiny_captioned_data, cluster_factory
):
    from captioning.data.dataset import PreparedData

    cluster = cluster_factory(tiny_data, epochs=1)
    # another prepared dataset and another architecture: before the check ran ahead of model
    # building, the differing variables' initial-value broadcast hung instead
    cluster.extra[1] = ["--data", str(tiny_captioned_data), "--set", "model.widths=[4,8,16]"]
    cluster.start()
    codes = cluster.wait()
    for i, (data, widths) in enumerate(
        [(tiny_data, "[4, 8, 8]"), (tiny_captioned_data, "[4, 8, 16]")]
    ):
        output = cluster.output(i)
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert codes[i] != 0 and len(errors) == 1, output[-3000:]
        named = re.findall(r"(\S+) \(this worker: ([^)]*)\)", errors[0])
        assert errors[0].startswith("error: workers disagree on the experiment: ")
        assert named == [("data", PreparedData(data).manifest_sha256), ("model.widths", widths)]
    assert not (cluster.base / "hosts" / "0" / "run").exists()  # nothing written


# A rate this small leaves the captions of every epoch as they were, so the monitored metric
# never improves after epoch 1 and patience 1 ends each stage after epoch 2 (of 3): a known
# place, where a worker missing the chief's best epoch after a resume would train on alone.
PLATEAU = [
    "train.learning_rate=1e-9",
    "finetune.learning_rate=1e-9",
    "train.patience=1",
    "finetune.epochs=3",
]


@pytest.mark.slow
def test_a_resumed_two_worker_captioner_stops_every_worker_at_the_same_epoch(
    tiny_captioned_data, tiny_encoder, cluster_factory
):
    cluster = cluster_factory(tiny_captioned_data, epochs=3, encoder=tiny_encoder)
    cluster.extra = {i: [x for s in PLATEAU for x in ("--set", s)] for i in range(2)}
    cluster.start()
    run = cluster.base / "hosts" / "0" / "run"
    cluster.wait_for(run / "stage2" / "checkpoints" / "epoch-0001")
    cluster.kill()  # both workers, in stage 2's epoch 2 (its validation alone takes seconds)
    assert not (run / "metrics.json").exists()

    cluster.start()  # the very same commands
    assert cluster.wait() == [0, 0], [cluster.output(i)[-3000:] for i in range(2)]
    resumed = re.findall(r"(stage\d): resuming .* after epoch (\d)", cluster.output(0))
    assert resumed == [("stage1", "2"), ("stage2", "1")], resumed
    stops = [re.findall(r"stage\d: stopped after epoch .*", cluster.output(i)) for i in (0, 1)]
    early = "of 3 (early stop: no better val findings for 1 epochs)"
    expected = [f"stage1: stopped after epoch 2 {early}", f"stage2: stopped after epoch 2 {early}"]
    assert stops[0] == stops[1] == expected
    assert cluster.digest(0) == cluster.digest(1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["weights_sha256"] == cluster.digest(0)
    assert [int(r["epoch"]) for r in read_log(run / "stage2")] == [1, 2]


@pytest.fixture
def spawned():
    """Processes a test starts, each in its own session; those still running are killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.slow
def test_a_captioner_killed_in_each_stage_resumes_to_the_uninterrupted_result(
    tiny_captioned_data, tiny_encoder, tmp_path, spawned
):
    sets = [
        x for s in [*TINY_CAPTIONER, "train.epochs=5", "finetune.epochs=3"] for x in ("--set", s)
    ]

    def start(run: Path, log: Path) -> subprocess.Popen:
        command = [
            sys.executable, "-m", "captioning.cli", "train", "captioner", "--smoke",
            "--data", str(tiny_captioned_data), "--encoder", str(tiny_encoder),
            "--run-dir", str(run), "--strategy", "default", *sets,
        ]  # fmt: skip
        with open(log, "w") as out:
            spawned.append(subprocess.Popen(
                command, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            ))  # fmt: skip
        return spawned[-1]

    def finish(proc: subprocess.Popen, log: Path) -> str:
        assert proc.wait(timeout=WORKER_TIMEOUT_S) == 0, log.read_text()[-3000:]
        return log.read_text()

    whole = start(tmp_path / "whole", tmp_path / "whole.txt")  # beside the others: 2 cores
    run, logs = tmp_path / "killed", [tmp_path / f"attempt{i}.txt" for i in range(3)]
    for attempt, stage in enumerate(["stage1", "stage2"]):
        proc = start(run, logs[attempt])
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while not (run / stage / "checkpoints" / "epoch-0001").exists():
            assert proc.poll() is None and time.monotonic() < deadline, logs[attempt].read_text()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert not (run / "metrics.json").exists()
    finish(start(run, logs[2]), logs[2])
    finish(whole, tmp_path / "whole.txt")
    for attempt, stage, epochs in [(1, "stage1", 5), (2, "stage2", 3)]:  # resumed mid-stage
        output = logs[attempt].read_text()
        resumed = re.search(rf"{stage}: resuming .* after epoch (\d)", output)
        assert resumed and int(resumed.group(1)) < epochs, output[-3000:]

    uninterrupted, killed = (
        json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("whole", "killed")
    )
    for key in ("weights_sha256", "chosen_stage", "best_val"):
        assert killed[key] == uninterrupted[key], key
    for stage in ("stage1", "stage2"):
        assert killed[stage]["best_val"] == uninterrupted[stage]["best_val"]
