"""The anomaly detectors, by name: each reads the store for one tenant and returns candidate anomalies.

Every detector compares the detection window with the baseline before it
and counts the tests it made (series-hours, span groups, buckets...), so the
false-positive rate on clean traffic can be measured as anomalies / tests
(and, labelled, by ``bench/detection.py``). Each anomaly carries a type, a
score, the expected and observed values, example traces and a one-sentence
explanation (``detail``) that says what happened and what to do.

Detectors (module: what it catches):

* ``hourly_spikes`` (spikes): cost, token, volume, latency and error-rate
  spikes against same-hour, same-day-type baselines;
* ``span_outliers`` (spikes): single LLM spans far slower than usual;
* ``error_bursts`` (bursts): errors per 10 minutes and per hour against the
  Poisson tail of the baseline rate;
* ``first_seen``, ``new_sequences``, ``new_topics``, ``model_changes``
  (novelty): new principals, agents, models and tools; tool sequences never
  run before; clusters of inputs on a new topic; a provider answering with
  another model than the one it answered before;
* ``cohorts`` (cohorts): new accounts sending templated near-duplicate prompts;
* ``principal_behaviour`` (behaviour): a principal outside their usual hours or agents;
* ``sensitive_egress`` (egress): PII or secrets sent to outside providers.
"""

from __future__ import annotations

from collections.abc import Callable

from agentledger.pipeline.derive.behaviour import principal_behaviour
from agentledger.pipeline.derive.bursts import error_bursts
from agentledger.pipeline.derive.cohorts import cohorts
from agentledger.pipeline.derive.egress import sensitive_egress
from agentledger.pipeline.derive.novelty import first_seen, model_changes, new_sequences, new_topics
from agentledger.pipeline.derive.signals import (
    Anomaly,
    Context,
    Found,
    median,
    poisson_sf,
    robust_z,
)
from agentledger.pipeline.derive.spikes import hourly_spikes, span_outliers

__all__ = [
    "Anomaly",
    "Context",
    "Found",
    "DETECTORS",
    "robust_z",
    "poisson_sf",
    "median",
    "sensitive_egress",
]

DETECTORS: dict[str, Callable[[Context], Found]] = {
    "hourly_spikes": hourly_spikes,
    "span_outliers": span_outliers,
    "error_bursts": error_bursts,
    "first_seen": first_seen,
    "new_sequences": new_sequences,
    "new_topics": new_topics,
    "model_changes": model_changes,
    "cohorts": cohorts,
    "principal_behaviour": principal_behaviour,
    "sensitive_egress": sensitive_egress,
}
"""Detector name -> function; the detection job runs them in this order."""
