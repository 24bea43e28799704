"""Topics of user inputs: TF-IDF and spherical k-means, in numpy.

A small implementation rather than scikit-learn: the vectors are at most a
few thousand previews by a thousand terms, numpy is already a dependency,
and a fixed seed makes the clusters reproducible between runs.

"New topics" are found without trusting k: the baseline inputs are clustered;
each current input is compared with the nearest baseline centroid; inputs
that resemble none (cosine below ``novelty``) are clustered among themselves,
and each such group of at least ``min_size`` inputs is a new topic.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Doc", "Topic", "TopicReport", "tokenize", "Tfidf", "kmeans", "choose_k", "find_topics"]

_WORD = re.compile(r"[a-z][a-z0-9']{2,}")
_STOP = frozenset(
    "the and for are but not you your with this that from have has had was were will would can could should "
    "what which who whom when where why how all any both each few more most other some such only own same "
    "than too very just into over under again further then once here there about above below between out "
    "off our ours they them their its it's his her him she he i'm we're let please thanks thank hello also "
    "does did doing being been get got make made need want like one two use using".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-case words of three or more characters, stop words removed."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass(frozen=True)
class Doc:
    """One user input: the trace it came from and its text."""

    trace_id: str
    text: str


class Tfidf:
    """Smoothed TF-IDF (``idf = ln((1 + n) / (1 + df)) + 1``), rows L2-normalised."""

    def __init__(self, max_features: int = 1000, min_df: int = 1) -> None:
        self.max_features = max_features
        self.min_df = min_df
        self.vocabulary: dict[str, int] = {}
        self.idf = np.zeros(0)

    def fit(self, texts: Sequence[str]) -> Tfidf:
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(tokenize(text)))
        terms = sorted((t for t, c in df.items() if c >= self.min_df), key=lambda t: (-df[t], t))
        terms = terms[: self.max_features]
        self.vocabulary = {t: i for i, t in enumerate(terms)}
        n = len(texts)
        self.idf = np.array([math.log((1 + n) / (1 + df[t])) + 1 for t in terms], dtype=np.float64)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        x = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float64)
        for row, text in enumerate(texts):
            for term, count in Counter(tokenize(text)).items():
                col = self.vocabulary.get(term)
                if col is not None:
                    x[row, col] = count
        x *= self.idf
        return _normalise(x)

    def top_terms(self, centroid: np.ndarray, n: int = 5) -> list[str]:
        names = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        order = np.argsort(-centroid, kind="stable")[:n]
        return [names[i] for i in order if centroid[i] > 0]


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = x / norms
    return unit


def kmeans(
    x: np.ndarray, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (cosine) with k-means++ seeding: (labels, unit centroids), best of ``n_init``."""
    n = x.shape[0]
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        centroids = x[[rng.integers(n)]]
        while centroids.shape[0] < k:
            dist = np.clip(1.0 - (x @ centroids.T).max(axis=1), 0.0, None)
            total = dist.sum()
            pick = rng.integers(n) if total <= 0 else rng.choice(n, p=dist / total)
            centroids = np.vstack([centroids, x[pick]])
        labels = np.zeros(n, dtype=np.int64)
        for it in range(max_iter):
            new_labels = np.argmax(x @ centroids.T, axis=1)
            if it and np.array_equal(new_labels, labels):
                break
            labels = new_labels
            for c in range(k):
                members = x[labels == c]
                if len(members):
                    centroids[c] = members.sum(axis=0)
            centroids = _normalise(centroids)
        inertia = float((1.0 - (x * centroids[labels]).sum(axis=1)).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels.copy(), centroids.copy())
    assert best is not None
    return best[1], best[2]


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    ks = np.unique(labels)
    if len(ks) < 2:
        return -1.0
    dist = 1.0 - x @ x.T
    scores = []
    for i in range(x.shape[0]):
        own = labels == labels[i]
        if own.sum() <= 1:
            scores.append(0.0)
            continue
        a = dist[i, own].sum() / (own.sum() - 1)
        b = min(dist[i, labels == c].mean() for c in ks if c != labels[i])
        scores.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return float(np.mean(scores))


def choose_k(x: np.ndarray, k_max: int = 8, seed: int = 0) -> int:
    """The k in 2..k_max with the best silhouette on at most 600 rows (1 for tiny inputs)."""
    n = x.shape[0]
    if n < 6:
        return 1
    sample = x if n <= 600 else x[np.random.default_rng(seed).choice(n, 600, replace=False)]
    best_k, best_s = 1, 0.05  # below this, one topic explains the inputs as well
    for k in range(2, min(k_max, sample.shape[0] // 3) + 1):
        labels, _ = kmeans(sample, k, seed=seed, n_init=2)
        s = _silhouette(sample, labels)
        if s > best_s + 1e-9:
            best_k, best_s = k, s
    return best_k


@dataclass
class Topic:
    """A cluster of inputs: its top terms, volumes in both windows, example traces."""

    topic: int
    terms: list[str]
    baseline: int
    current: int
    examples: list[str] = field(default_factory=list)
    new: bool = False


@dataclass
class TopicReport:
    """Baseline topics (with current volumes) and new topics of the current window."""

    topics: list[Topic]
    new_topics: list[Topic]
    k: int


def find_topics(
    baseline: Sequence[Doc],
    current: Sequence[Doc],
    *,
    k: int | None = None,
    novelty: float = 0.15,
    min_size: int = 3,
    seed: int = 0,
    examples: int = 3,
) -> TopicReport:
    """Cluster the baseline, place the current inputs, and group those that fit no baseline topic."""
    baseline = [d for d in baseline if tokenize(d.text)]
    current = [d for d in current if tokenize(d.text)]
    docs = [*baseline, *current]
    if not docs:
        return TopicReport([], [], 0)
    vec = Tfidf(max_features=1000).fit([d.text for d in docs])
    xb = vec.transform([d.text for d in baseline])
    xc = vec.transform([d.text for d in current])
    if not baseline:  # nothing to compare with: the current topics, none called new
        kk = k or choose_k(xc, seed=seed)
        labels, cents = kmeans(xc, kk, seed=seed)
        topics = [
            Topic(
                i,
                vec.top_terms(cents[i]),
                0,
                int((labels == i).sum()),
                [current[j].trace_id for j in np.flatnonzero(labels == i)[:examples]],
            )
            for i in range(cents.shape[0])
        ]
        return TopicReport(_ranked(topics), [], cents.shape[0])
    kk = k or choose_k(xb, seed=seed)
    labels_b, cents = kmeans(xb, kk, seed=seed)
    sims = xc @ cents.T if len(current) else np.zeros((0, cents.shape[0]))
    nearest = sims.argmax(axis=1) if len(current) else np.zeros(0, dtype=np.int64)
    fits = sims.max(axis=1) >= novelty if len(current) else np.zeros(0, dtype=bool)
    topics = []
    for i in range(cents.shape[0]):
        placed = np.flatnonzero((nearest == i) & fits)
        topics.append(
            Topic(
                i,
                vec.top_terms(cents[i]),
                int((labels_b == i).sum()),
                len(placed),
                [current[j].trace_id for j in placed[:examples]],
            )
        )
    new_topics: list[Topic] = []
    novel = np.flatnonzero(~fits)
    if len(novel) >= min_size:
        xn = xc[novel]
        # no more groups than could each reach min_size: six novel inputs are one topic, not 3 + 3
        k_max = max(1, min(4, len(novel) // min_size))
        labels_n, cents_n = kmeans(xn, choose_k(xn, k_max=k_max, seed=seed), seed=seed)
        for i in range(cents_n.shape[0]):
            members = novel[labels_n == i]
            if len(members) >= min_size:
                new_topics.append(
                    Topic(
                        cents.shape[0] + len(new_topics),
                        vec.top_terms(cents_n[i]),
                        0,
                        len(members),
                        [current[j].trace_id for j in members[:examples]],
                        new=True,
                    )
                )
    return TopicReport(_ranked(topics), _ranked(new_topics), cents.shape[0])


def _ranked(topics: list[Topic]) -> list[Topic]:
    return sorted(topics, key=lambda t: (-t.current, -t.baseline, t.topic))
