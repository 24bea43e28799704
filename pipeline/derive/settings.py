"""Settings of the analytics jobs: argument, then ``AGENTLEDGER_JOBS_*`` environment, then default."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["JobSettings"]


class JobSettings(BaseSettings):
    """Rollup, detection and webhook configuration.

    Thresholds default to values that gave no false positive on the clean
    synthetic traffic of ``tests/jobs`` (see its README note in the test module).
    """

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_JOBS_", extra="ignore")

    interval_s: float = Field(60.0, ge=0)
    """Seconds between background passes (rollup + detection); 0 turns the background jobs off."""
    rollup_lookback_hours: int = Field(0, ge=0)
    """A detection pass rolls up changed hours this far back (0: its window plus baseline)..."""
    rollup_full_every: int = Field(30, ge=1)
    """...and every this many passes (and the first) the whole table: spans arriving late for older
    hours (back-fills, replays) reach the rollup within that many intervals."""
    window_hours: int = Field(24, ge=1, le=24 * 31)
    """Detection examines the hours in [now - window_hours, now): each anomaly is keyed by its own hour."""
    baseline_hours: int = Field(7 * 24, ge=1, le=24 * 366)
    """Baseline: the hours before the window that an hour is compared with."""
    min_baseline_hours: int = Field(12, ge=1)
    """A series needs this many active baseline hours before it can be called anomalous."""
    z_threshold: float = Field(4.0, gt=0)
    """Robust z-score (0.6745 (x - median) / MAD) above which an hourly value is anomalous."""
    min_ratio: float = Field(2.0, ge=1)
    """...and the observed value must also be at least this many times the median."""
    cost_min_excess_usd: float = Field(0.05, ge=0)
    """...and an hourly cost spike must exceed the baseline median by at least this many dollars."""
    latency_min_ratio: float = Field(1.5, ge=1)
    """...except for latency, where the hourly median must be at least this many times the baseline's."""
    min_hour_calls: int = Field(5, ge=1)
    """Hours with fewer calls than this do not enter latency and error-rate series."""
    outlier_z: float = Field(8.0, gt=0)
    """Per-span outliers: robust z of log latency against the model's baseline (from the rollup histogram)."""
    outlier_min_spans: int = Field(3, ge=1)
    """...reported per model and hour only when at least this many spans are outliers."""
    burst_bucket_minutes: int = Field(10, ge=1, le=60)
    """Error bursts are counted in buckets of this many minutes."""
    burst_min_errors: int = Field(5, ge=1)
    """A burst needs at least this many errors in one bucket."""
    burst_p_value: float = Field(1e-6, gt=0, lt=1)
    """...and a Poisson tail probability below this under the baseline error rate."""
    sequence_min_traces: int = Field(2, ge=1)
    """A new tool sequence is reported once at least this many traces in the window ran it."""
    burst_hour_min_errors: int = Field(4, ge=1)
    """Hourly error bursts (a sustained share of failing calls) need at least this many errors."""
    first_seen_max_principals: int = Field(10, ge=1)
    """More new principals than this in one window are reported as one anomaly, not one each."""
    topic_min_size: int = Field(4, ge=2)
    """A new topic needs at least this many user inputs in the window."""
    topic_baseline_sample: int = Field(1000, ge=10)
    """At most this many baseline inputs (a deterministic sample) are clustered into baseline topics."""
    model_change_min_calls: int = Field(3, ge=1)
    """A changed answered model is reported once it answered at least this many calls."""
    cohort_new_hours: int = Field(24, ge=1)
    """Cohorts: principals first seen this many hours before the window (or in it) count as new."""
    cohort_min_principals: int = Field(5, ge=2)
    """...and at least this many of them, linked by near-duplicate inputs, are a cohort."""
    cohort_similarity: float = Field(0.5, gt=0, le=1)
    """Estimated Jaccard similarity (MinHash of character 5-grams) above which two inputs are near-duplicates."""
    cohort_max_inputs: int = Field(2000, ge=10)
    """At most this many inputs of new principals (a deterministic sample) are compared per pass."""
    behaviour_min_baseline_runs: int = Field(30, ge=1)
    """Per-principal baselines (off-hours, unusual agent) need this many baseline runs of the principal."""
    behaviour_min_runs: int = Field(3, ge=1)
    """...and report an hour or a new agent from this many runs in it."""
    behaviour_p_value: float = Field(1e-5, gt=0, lt=1)
    """Off-hours: Poisson tail probability of the hour's runs under the principal's usual rate then."""
    internal_providers: str = ""
    """Comma-separated providers that are not external (self-hosted); egress to them is not reported."""
    webhook_url: SecretStr | None = None
    """POST new anomalies (JSON) to this URL; unset = no webhook. Secret: it may carry a token."""
    webhook_timeout_s: float = Field(5.0, gt=0)
    """Timeout of one webhook request."""
    webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key: webhook requests carry ``X-AgentLedger-Signature`` (see ``webhook.py``)."""
    alert_otlp_logs_url: str | None = None
    """Also export new anomalies as OTLP log records (protobuf POST, e.g. ``http://collector:4318/v1/logs``)."""
    alert_max_per_minute: int = Field(6, ge=1)
    """At most this many deliveries (webhook and OTLP each carry a batch) a minute; the rest wait."""

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("AGENTLEDGER_JOBS_WEBHOOK_URL must be an http:// or https:// URL")
        return value

    @property
    def internal_provider_set(self) -> frozenset[str]:
        return frozenset(p.strip().lower() for p in self.internal_providers.split(",") if p.strip())
