"""The log's side of a C2SP ``tlog-witness`` over HTTP (``AGENTLEDGER_WITNESS_URL``).

The appender hands every new signed checkpoint to ``HttpWitness.submit`` with a callback that
builds the consistency proof between two sizes of the stored log. The witness's size is learnt
the spec's way: the first request says ``old 0``; a 409 answers with the witness's size, and the
request is sent again with the proof from that size. Outcomes:

* 200: the cosignature lines are kept beside the checkpoint (``latest``), checked against the
  witness's public key when ``AGENTLEDGER_WITNESS_KEY`` gives it;
* 409 with a size above ours, 409 at our size (another root), 422 (proof refused), 403/404/400:
  the witness refuses this log's history: ``WitnessRefused`` (logged as an error; ``verify``
  reports the disagreement);
* the witness unreachable, a timeout, a 5xx: never an error of the appender (and never of ingest,
  which does not wait for the appender): the checkpoint is kept as pending, the failure logged
  and counted, and sent again by ``retry`` on every later pass (only the newest is sent: it
  proves the older ones).

``state()`` tells per tenant what the witness holds and when it last answered; the appender puts
it in its job result (``agentledger ledger append`` prints it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx

from agentledger.pipeline.derive.tlog_witness import (
    Witness,
    WitnessDir,
    WitnessRefused,
    WitnessSet,
    note_checkpoint,
)
from agentledger.pipeline.tlog import Checkpoint, NoteError
from agentledger.pipeline.tlog.witness import AddCheckpoint, CosignatureVerifier
from agentledger.schemas.ledger import origin

__all__ = [
    "WITNESS_KEY_ENV",
    "WITNESS_URL_ENV",
    "HttpWitness",
    "WitnessUnavailable",
    "configured_witness",
]

log = logging.getLogger(__name__)

WITNESS_URL_ENV: Final = "AGENTLEDGER_WITNESS_URL"
"""Environment variable: the witness's submission prefix (``<prefix>/add-checkpoint``)."""
WITNESS_KEY_ENV: Final = "AGENTLEDGER_WITNESS_KEY"
"""Environment variable: the witness's public key (vkey), to check its cosignatures."""

Proof = Callable[[int, int], Sequence[bytes]]


class WitnessUnavailable(RuntimeError):
    """The witness did not answer (network, timeout, 5xx): try again later."""


class HttpWitness:
    """A C2SP witness reached over HTTP, with the same ``latest``/``submit`` as ``WitnessDir``."""

    def __init__(
        self,
        url: str,
        key: CosignatureVerifier | None = None,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._cosigned: dict[str, str] = {}
        self._pending: dict[str, tuple[str, Proof]] = {}
        self._state: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_env(cls) -> HttpWitness | None:
        """The witness of ``AGENTLEDGER_WITNESS_URL`` (and key), None when unset; a malformed
        key raises ValueError naming the variable."""
        url = os.environ.get(WITNESS_URL_ENV, "").strip()
        if not url:
            return None
        vkey = os.environ.get(WITNESS_KEY_ENV, "").strip()
        try:
            key = CosignatureVerifier.parse(vkey) if vkey else None
        except NoteError as exc:
            raise ValueError(f"{WITNESS_KEY_ENV}: {exc}") from exc
        return cls(url, key)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def latest(self, tenant: str) -> str | None:
        """The latest checkpoint this witness cosigned for the tenant: the one this process got
        back, else the witness's (``GET /checkpoint``); None when there is none or it cannot be
        reached (the appender then computes proofs from the leaves, which is only slower)."""
        with self._lock:
            cosigned = self._cosigned.get(tenant)
        if cosigned is not None:
            return cosigned
        try:
            return self.fetch(tenant)
        except (WitnessUnavailable, WitnessRefused):
            return None

    def fetch(self, tenant: str) -> str | None:
        """The witness's latest cosigned checkpoint of the tenant's log, asked now; None when it
        has none. Raises WitnessUnavailable, or WitnessRefused when its cosignature is not valid
        under the configured witness key."""
        try:
            resp = self._client.get(f"{self.url}/checkpoint", params={"origin": origin(tenant)})
        except httpx.HTTPError as exc:
            raise WitnessUnavailable(f"witness {self.url}: {exc}") from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise WitnessUnavailable(f"witness {self.url}: {resp.status_code} {resp.text[:200]}")
        if self.key is not None and self.key.verified_time(resp.text) is None:
            raise WitnessRefused(f"witness {self.url}: checkpoint not cosigned by {self.key.vkey}")
        return resp.text

    def state(self) -> dict[str, dict[str, Any]]:
        """Per tenant: the witnessed size, the pending size, consecutive failures, the last
        error and when the witness last answered (POSIX seconds)."""
        with self._lock:
            return {t: dict(s) for t, s in self._state.items()}

    def _note(self, tenant: str, **changes: Any) -> None:
        with self._lock:
            entry = self._state.setdefault(
                tenant,
                {"url": self.url, "witnessed_size": None, "pending_size": None, "failures": 0},
            )
            entry.update(changes)

    def submit(self, tenant: str, note: str, proof: Proof) -> Checkpoint:
        """Have the witness cosign ``note``; ``proof(old, new)``: the consistency proof between two
        sizes of the stored log. Raises WitnessRefused; a witness that cannot be reached only
        leaves the note pending (module docstring)."""
        new = note_checkpoint(note)
        try:
            self._submit(tenant, note, new, proof)
        except WitnessUnavailable as exc:
            with self._lock:
                self._pending[tenant] = (note, proof)
                failures = self._state.get(tenant, {}).get("failures", 0) + 1
            self._note(tenant, pending_size=new.size, failures=failures, last_error=str(exc))
            log.warning(
                "witness %s unreachable for %s (attempt %d, size %d pending): %s",
                self.url,
                tenant,
                failures,
                new.size,
                exc,
            )
        except WitnessRefused as exc:
            with self._lock:
                self._pending.pop(tenant, None)
            self._note(tenant, pending_size=None, last_error=f"refused: {exc}")
            log.error("witness %s refused the checkpoint of %s: %s", self.url, tenant, exc)
            raise
        return new

    def retry(self) -> None:
        """Send every pending checkpoint again (the appender calls this once a pass)."""
        with self._lock:
            pending = dict(self._pending)
        for tenant, (note, proof) in pending.items():
            try:
                self.submit(tenant, note, proof)
            except WitnessRefused:
                pass  # logged and shown in state()

    def _submit(self, tenant: str, note: str, new: Checkpoint, proof: Proof) -> None:
        with self._lock:
            old = self._sizes.get(tenant, 0)
        for _ in range(3):  # old size unknown or stale: 409 tells it, then once more
            path = list(proof(old, new.size)) if 0 < old < new.size else []
            body = AddCheckpoint(old, tuple(path), note).body()
            try:
                resp = self._client.post(f"{self.url}/add-checkpoint", content=body)
            except httpx.HTTPError as exc:
                raise WitnessUnavailable(f"{type(exc).__name__}: {exc}") from exc
            if resp.status_code == 200:
                self._accepted(tenant, note, new, resp.text)
                return
            if resp.status_code == 409 and resp.text.strip().isdigit():
                known = int(resp.text.strip())
                with self._lock:
                    self._sizes[tenant] = known
                if known > new.size:
                    raise WitnessRefused(
                        f"the witness has size {known}, above this log's {new.size}"
                    )
                if known == old:
                    raise WitnessRefused(f"the witness holds another root at size {known}")
                old = known
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                raise WitnessUnavailable(f"{resp.status_code} {resp.text[:200].strip()}")
            raise WitnessRefused(f"{resp.status_code} {resp.text[:300].strip()}")
        raise WitnessUnavailable("the witness's size kept changing under this log")

    def _accepted(self, tenant: str, note: str, new: Checkpoint, lines: str) -> None:
        cosigned = note + "".join(f"{line}\n" for line in lines.splitlines() if line)
        if self.key is not None and self.key.verified_time(cosigned) is None:
            raise WitnessRefused(f"answer carries no valid cosignature by {self.key.vkey}")
        with self._lock:
            self._sizes[tenant] = new.size
            self._cosigned[tenant] = cosigned
            self._pending.pop(tenant, None)
        self._note(
            tenant,
            witnessed_size=new.size,
            pending_size=None,
            failures=0,
            last_error=None,
            answered_at=time.time(),
        )


def configured_witness(directory: str | None) -> Witness | None:
    """Where the appender sends its checkpoints: the witness directory (when given) and the
    witness of ``AGENTLEDGER_WITNESS_URL`` (when set); both when both, None when neither."""
    http = HttpWitness.from_env()
    found: list[Witness] = [w for w in (WitnessDir(directory) if directory else None, http) if w]
    if not found:
        return None
    return found[0] if len(found) == 1 else WitnessSet(found)


def witnessed_note(tenant: str, directory: str | None, url: str | None) -> str | None:
    """The witnessed checkpoint ``verify`` holds the store to: the larger of the directory's and
    the witness URL's (its cosignature checked when ``AGENTLEDGER_WITNESS_KEY`` is set). Raises
    ValueError when the URL's witness cannot be asked or its answer is not cosigned."""
    notes = [WitnessDir(directory).latest(tenant)] if directory else []
    if url:
        vkey = os.environ.get(WITNESS_KEY_ENV, "").strip()
        try:
            witness = HttpWitness(url, CosignatureVerifier.parse(vkey) if vkey else None)
        except NoteError as exc:
            raise ValueError(f"{WITNESS_KEY_ENV}: {exc}") from exc
        try:
            notes.append(witness.fetch(tenant))
        except (WitnessUnavailable, WitnessRefused) as exc:
            raise ValueError(str(exc)) from exc
        finally:
            witness.close()
    found = [n for n in notes if n is not None]
    return max(found, key=lambda n: note_checkpoint(n).size, default=None)
