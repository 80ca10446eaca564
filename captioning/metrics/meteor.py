"""METEOR as coco-caption computes it: the METEOR 1.5 jar that ``pycocoevalcap`` ships, run by
Java in its ``-stdio`` mode with coco-caption's settings (``-l en -norm``, 2 GB heap).

METEOR aligns a hypothesis with each reference through exact words, stems, WordNet synonyms and
a paraphrase table, which only the jar has: there is no pure-Python equivalent that gives the
same number. So the score comes from the jar or not at all: ``corpus_meteor`` returns
``(None, reason)`` when Java or ``pycocoevalcap`` is missing or the jar fails, never a
substitute. Install the extra with ``pip install 'captioning[meteor]'`` and a Java runtime
(for example ``apt-get install default-jre-headless``).

The protocol is pycocoevalcap's ``Meteor.compute_score``: per image a line
``SCORE ||| ref 1 ||| ... ||| ref n ||| hypothesis`` answered by a statistics line, then one
``EVAL ||| stats 1 ||| ... ||| stats N`` line answered by N per-image scores and the corpus
score (computed by the jar from the summed statistics, not the mean of the image scores).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from captioning.metrics.inputs import check_corpus

JAR = "meteor-1.5.jar"
HEAP = "2G"  # what pycocoevalcap asks for: the paraphrase table needs about 1.5 GB
INSTALL = "pip install 'captioning[meteor]'"
_SHARED: list[dict] = []  # the open shared_jar() blocks, innermost last: {"jar": MeteorJar}


class MeteorUnavailable(RuntimeError):
    """METEOR cannot be computed here; ``str()`` is the reason, one line."""


def find_jar() -> Path:
    """The METEOR 1.5 jar inside the installed ``pycocoevalcap``; raises ``MeteorUnavailable``."""
    try:
        spec = importlib.util.find_spec("pycocoevalcap.meteor.meteor")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise MeteorUnavailable(f"pycocoevalcap is not installed ({INSTALL})")
    jar = Path(spec.origin).parent / JAR
    if not jar.is_file():
        raise MeteorUnavailable(f"{jar}: missing from the installed pycocoevalcap")
    return jar


def find_java() -> str:
    """The ``java`` executable on PATH; raises ``MeteorUnavailable``."""
    java = shutil.which("java")
    if java is None:
        raise MeteorUnavailable(
            "no Java runtime on PATH (install one, e.g. apt-get install default-jre-headless)"
        )
    return java


class MeteorJar:
    """One running METEOR jar (a context manager: the process ends on exit).

    Starting it takes a few seconds (the paraphrase table loads), so one instance scores
    any number of corpora."""

    def __init__(self):
        jar, java = find_jar(), find_java()
        # the jar's messages go to a file: a reason when it dies, and a full pipe never blocks it
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        command = [java, "-jar", f"-Xmx{HEAP}", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        self._process = subprocess.Popen(
            command,
            cwd=jar.parent,  # the jar finds its data/ folder beside itself
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )

    def __enter__(self) -> MeteorJar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the jar and wait for it."""
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._stderr.close()

    def _ask(self, line: str) -> None:
        try:
            self._process.stdin.write((line + "\n").encode("utf-8"))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise MeteorUnavailable(f"the METEOR jar stopped: {self._reason()}") from None

    def _answer(self) -> str:
        line = self._process.stdout.readline()
        if not line:
            raise MeteorUnavailable(f"the METEOR jar stopped: {self._reason()}")
        return line.decode("utf-8").strip()

    def _reason(self) -> str:
        self._process.poll()
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        code = self._process.returncode
        return (lines[-1] if lines else "no message") + (f" (exit code {code})" if code else "")

    def score(self, hypotheses: list[str], references: list[list[str]]) -> tuple[float, list]:
        """The corpus score and the per-image scores of caption texts (see the module doc)."""
        stats = []
        for hyp, refs in zip(hypotheses, references, strict=True):
            hyp = hyp.replace("|||", "").replace("  ", " ")  # as pycocoevalcap does
            self._ask(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
            stats.append(self._answer())
        self._ask(" ||| ".join(("EVAL", *stats)))
        per_image = [float(self._answer()) for _ in stats]
        return float(self._answer()), per_image


@contextmanager
def shared_jar():
    """Within the block, ``corpus_meteor`` scores every corpus with one jar, started on first
    use and stopped at the end: an evaluation scores the model's captions and then each
    baseline's, and every start costs seconds (the paraphrase table loads) and a 2 GB heap."""
    slot: dict = {"jar": None}
    _SHARED.append(slot)
    try:
        yield
    finally:
        _SHARED.remove(slot)
        if slot["jar"] is not None:
            slot["jar"].close()


def _score(hypotheses: list[str], references: list[list[str]]) -> float:
    """The corpus score from the shared jar of the innermost ``shared_jar`` block (dropped
    when it fails, so a later corpus starts a new one), else from a jar of its own."""
    if not _SHARED:
        with MeteorJar() as jar:
            return jar.score(hypotheses, references)[0]
    slot = _SHARED[-1]
    try:
        slot["jar"] = slot["jar"] or MeteorJar()
        return slot["jar"].score(hypotheses, references)[0]
    except Exception:
        if slot["jar"] is not None:
            slot["jar"].close()
            slot["jar"] = None
        raise


def corpus_meteor(
    hyp_tokens: list[list[str]], ref_tokens: list[list[list[str]]]
) -> tuple[float | None, str | None]:
    """METEOR of a corpus of token lists: ``(score, None)``, or ``(None, reason)`` when it
    cannot be computed here (no Java, no pycocoevalcap, the jar failed). Inside a
    ``shared_jar`` block the corpora share one jar."""
    check_corpus(hyp_tokens, ref_tokens)
    hypotheses = [" ".join(h) for h in hyp_tokens]
    references = [[" ".join(r) for r in refs] for refs in ref_tokens]
    try:
        score = _score(hypotheses, references)
    except MeteorUnavailable as err:
        return None, str(err)
    except (OSError, ValueError) as err:  # the jar could not start, or answered nonsense
        return None, f"the METEOR jar failed ({err})"
    return score, None
