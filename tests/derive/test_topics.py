"""TF-IDF + spherical k-means (numpy): baseline topics recovered, a new topic found, none on clean input."""

from __future__ import annotations

import random

import numpy as np

from agentledger.pipeline.derive.topics import Doc, Tfidf, find_topics, kmeans, tokenize
from tests.derive.scenario import NEW_TOPIC, TOPICS


def _docs(
    prefix: str, n: int, rng: random.Random, templates: tuple[str, ...] = TOPICS
) -> list[Doc]:
    out = []
    for i in range(n):
        words = rng.choice(templates).format(n=rng.randrange(10_000)).split()
        rng.shuffle(words)
        out.append(Doc(f"{prefix}{i}", " ".join(words[: len(words) - rng.randrange(3)])))
    return out


def test_tokenize_and_tfidf() -> None:
    assert tokenize("The Accrual, and the REVERSAL of it!") == ["accrual", "reversal"]
    vec = Tfidf().fit(["accrual reversal", "accrual payment", "payment"])
    x = vec.transform(["accrual reversal", "nothing known"])
    assert np.allclose(np.linalg.norm(x[0]), 1.0) and not x[1].any()
    assert (
        x[0, vec.vocabulary["reversal"]] > x[0, vec.vocabulary["accrual"]]
    )  # rarer term weighs more


def test_kmeans_separates_clear_clusters() -> None:
    x = np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.95, 0.05], [0, 0, 1], [0.05, 0, 1]], dtype=float
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels, centroids = kmeans(x, 3, seed=1)
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[4] == labels[5]
    assert len(set(labels.tolist())) == 3 and np.allclose(np.linalg.norm(centroids, axis=1), 1.0)


def test_finds_the_baseline_topics_and_a_new_one() -> None:
    rng = random.Random(0)
    baseline, current = _docs("b", 400, rng), _docs("c", 100, rng)
    novel = [Doc(f"n{i}", NEW_TOPIC.format(n=i)) for i in range(5)]
    report = find_topics(baseline, current + novel)
    assert report.k == len(TOPICS)
    assert (
        sum(t.baseline for t in report.topics) == 400
        and sum(t.current for t in report.topics) == 100
    )
    (new,) = report.new_topics
    assert new.current == 5 and set(new.examples) <= {d.trace_id for d in novel}
    assert {"poem", "birthday", "cat"} <= set(new.terms)
    again = find_topics(baseline, current + novel)  # seeded: the same clusters every time
    assert [(t.terms, t.current) for t in again.topics] == [
        (t.terms, t.current) for t in report.topics
    ]


def test_no_new_topic_in_clean_input_or_without_baseline() -> None:
    rng = random.Random(1)
    assert find_topics(_docs("b", 300, rng), _docs("c", 150, rng)).new_topics == []
    nothing_before = find_topics([], _docs("c", 50, rng))
    assert nothing_before.new_topics == [] and sum(t.current for t in nothing_before.topics) == 50
    assert find_topics([], []).topics == []
