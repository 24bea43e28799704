"""Where spans go and how they are labelled: explicit argument, then ``AGENTLEDGER_*``, then ``OTEL_*``.

=================================  ==========================================  =========================
setting                            AgentLedger variable                        standard fallback
=================================  ==========================================  =========================
collector endpoint                 ``AGENTLEDGER_ENDPOINT`` (base URL or        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
                                   ``.../v1/traces``)                          ``OTEL_EXPORTER_OTLP_ENDPOINT`` (+ ``/v1/traces``),
                                                                               else ``http://127.0.0.1:4318/v1/traces``
API key (``Authorization: Bearer``)  ``AGENTLEDGER_API_KEY``                   ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``
service name                       ``AGENTLEDGER_SERVICE_NAME``                 ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``
agent name                         ``AGENTLEDGER_AGENT_NAME``                   (none)
redaction presets                  ``AGENTLEDGER_REDACT`` (``all``, ``none``,   (none)
                                   or ``email,phone,card,iban,secret``)
capture switches                   ``AGENTLEDGER_CAPTURE_CONTENT``,             ``OPENINFERENCE_HIDE_*`` (read by
                                   ``AGENTLEDGER_CAPTURE_MESSAGES``,            OpenInference's own instrumentors)
                                   ``..._DOCUMENTS``, ``..._TOOL_IO``
model pins                         ``AGENTLEDGER_MODEL_PINS`` (``agent=model,...``),
                                   ``AGENTLEDGER_ON_PIN_MISMATCH`` (``flag``/``raise``)
instrumentors                      ``AGENTLEDGER_INSTRUMENTORS`` (names to enable),
                                   ``AGENTLEDGER_DISABLED_INSTRUMENTORS``
delivery (queue full, spool)       ``AGENTLEDGER_ON_FULL`` (``spool``/``block``),   ``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT``,
                                   ``AGENTLEDGER_SPOOL_DIR``, ``..._SPOOL_MAX_MB``, ``OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION``
                                   ``..._QUEUE_SIZE``, ``..._QUEUE_WAIT_MS``,
                                   ``..._FLUSH_TIMEOUT_S`` (read by ``delivery.DeliveryConfig``)
=================================  ==========================================  =========================

A bad value fails at start-up (``instrument()`` raises ``ValueError`` naming it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

__all__ = [
    "DEFAULT_ENDPOINT",
    "TRACES_PATH",
    "env",
    "parse_pairs",
    "resolve_endpoint",
    "resolve_headers",
    "resolve_service_name",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
"""Where ``agentledger serve`` listens by default."""
TRACES_PATH = "/v1/traces"


def env(name: str) -> str | None:
    """The variable's value, or None when unset or blank."""
    value = os.environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def _traces_url(url: str, source: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{source}={url!r}: expected an http(s) URL such as {DEFAULT_ENDPOINT}")
    return url if parsed.path.rstrip("/").endswith(TRACES_PATH) else url.rstrip("/") + TRACES_PATH


def resolve_endpoint(explicit: str | None = None) -> str:
    """The OTLP/HTTP traces URL spans are exported to."""
    if explicit:
        return _traces_url(explicit, "endpoint")
    if (value := env("AGENTLEDGER_ENDPOINT")) is not None:
        return _traces_url(value, "AGENTLEDGER_ENDPOINT")
    if (value := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) is not None:
        return value  # a signal-specific endpoint is used as given (OTLP spec)
    if (value := env("OTEL_EXPORTER_OTLP_ENDPOINT")) is not None:
        return _traces_url(value, "OTEL_EXPORTER_OTLP_ENDPOINT")
    return DEFAULT_ENDPOINT + TRACES_PATH


def parse_pairs(raw: str, source: str) -> dict[str, str]:
    """``a=1,b=2`` as a dict (the format of OTel header and resource variables)."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{source}: {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def resolve_headers(
    api_key: str | None = None, headers: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Export headers: standard OTLP header variables, explicit headers, then the API key on top."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        if (raw := env(name)) is not None:
            out.update({unquote(k).lower(): unquote(v) for k, v in parse_pairs(raw, name).items()})
    out.update({k.lower(): v for k, v in (headers or {}).items()})
    key = api_key or env("AGENTLEDGER_API_KEY")
    if key:
        out["authorization"] = f"Bearer {key}"
    return out


def resolve_service_name(explicit: str | None = None) -> str | None:
    """The ``service.name`` to set, or None to let ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` decide."""
    return explicit or env("AGENTLEDGER_SERVICE_NAME")
