"""Posts newly found anomalies to a webhook as JSON.

Best effort by design: a webhook that is down must not stop detection or the
pipeline. Failures are retried a few times with back-off, then logged; the
anomalies stay in the table either way (``agentledger anomalies`` lists them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

__all__ = ["post_anomalies", "WEBHOOK_EVENT"]

log = logging.getLogger(__name__)

WEBHOOK_EVENT = "agentledger.anomalies.new"
"""Value of the ``event`` field of every webhook payload."""


def post_anomalies(
    url: str, anomalies: list[dict[str, Any]], *, timeout: float = 5.0, attempts: int = 3
) -> bool:
    """POST ``{"event": ..., "count": n, "anomalies": [...]}``; True when the hook answered 2xx."""
    payload = {"event": WEBHOOK_EVENT, "count": len(anomalies), "anomalies": anomalies}
    for attempt in range(1, attempts + 1):
        try:
            resp = httpx.post(url, json=payload, timeout=timeout)
            if resp.is_success:
                return True
            log.warning(
                "anomaly webhook answered %s (attempt %d/%d)", resp.status_code, attempt, attempts
            )
        except httpx.HTTPError as exc:
            log.warning("anomaly webhook failed: %s (attempt %d/%d)", exc, attempt, attempts)
        if attempt < attempts:
            time.sleep(0.5 * 2 ** (attempt - 1))
    return False
