"""The witness directory: every new signed checkpoint is also written outside the store.

Whoever can write the store can rebuild a tenant's whole log and sign it again (with a key they
made); what they cannot do is change what was already sent elsewhere. A witness (C2SP
``tlog-witness`` in spirit) keeps the latest checkpoint of each log it has seen and refuses one
that would rewrite history: a smaller tree, another root at the same size, or a larger tree that
is not an extension of the witnessed one (its consistency proof fails). ``agentledger ledger
verify`` compares the store's log with the witnessed checkpoint.

One file per tenant, ``<dir>/<tenant>.checkpoint`` (the tenant name, URL-quoted), holding the
latest accepted signed note, replaced atomically. ``AGENTLEDGER_WITNESS_DIR`` names the directory;
the embedded server defaults to ``<data dir>/witness/<database>`` and warns that a directory beside
the data is not external (mount another volume, or another machine's, for a real witness).
``AGENTLEDGER_WITNESS_URL`` adds a C2SP witness over HTTP (``witness_http.py``); with both, every
checkpoint goes to each (``WitnessSet``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from agentledger.pipeline.tlog import Checkpoint, ProofError, parse_note, verify_consistency
from agentledger.pipeline.tlog.witness import write_atomically

__all__ = [
    "WITNESS_DIR_ENV",
    "Witness",
    "WitnessDir",
    "WitnessRefused",
    "WitnessSet",
    "note_checkpoint",
]

log = logging.getLogger(__name__)

WITNESS_DIR_ENV: Final = "AGENTLEDGER_WITNESS_DIR"
"""Environment variable naming the witness directory."""


class WitnessRefused(ValueError):
    """The witness refused a checkpoint: it would rewrite what the witness saw."""


def note_checkpoint(note: str) -> Checkpoint:
    """The checkpoint a signed note carries (signatures not checked here)."""
    text, _ = parse_note(note)
    return Checkpoint.parse(text)


class Witness(Protocol):
    """Where the appender sends each new checkpoint. ``submit`` raises WitnessRefused when the
    checkpoint would rewrite what the witness saw, and nothing else: a witness out of reach keeps
    it for ``retry`` (called once a pass), so it can never stop the appender."""

    def latest(self, tenant: str) -> str | None:
        """The latest witnessed signed note of the tenant's log (None: none, or not known)."""
        ...

    def submit(
        self, tenant: str, note: str, proof: Callable[[int, int], Sequence[bytes]]
    ) -> Checkpoint:
        """Witness ``note``; ``proof(old, new)`` is the log's consistency proof."""
        ...

    def retry(self) -> None:
        """Send again what could not be delivered."""
        ...

    def state(self) -> dict[str, dict[str, Any]]:
        """What the witness holds per tenant, for the job's result."""
        ...


class WitnessSet:
    """Several witnesses: each gets every checkpoint; a refusal by any is a refusal."""

    def __init__(self, witnesses: Sequence[Witness]) -> None:
        self.witnesses = list(witnesses)

    def latest(self, tenant: str) -> str | None:
        """The first witness's latest note (the appender uses it only to find a cached range)."""
        for witness in self.witnesses:
            note = witness.latest(tenant)
            if note is not None:
                return note
        return None

    def submit(
        self, tenant: str, note: str, proof: Callable[[int, int], Sequence[bytes]]
    ) -> Checkpoint:
        """Submit to every witness, then raise the first refusal, if any."""
        refused: WitnessRefused | None = None
        for witness in self.witnesses:
            try:
                witness.submit(tenant, note, proof)
            except WitnessRefused as exc:
                refused = refused or exc
        if refused is not None:
            raise refused
        return note_checkpoint(note)

    def retry(self) -> None:
        """Retry each witness."""
        for witness in self.witnesses:
            witness.retry()

    def state(self) -> dict[str, dict[str, Any]]:
        """Each witness's state, by tenant, then by witness."""
        merged: dict[str, dict[str, Any]] = {}
        for i, witness in enumerate(self.witnesses):
            for tenant, entry in witness.state().items():
                merged.setdefault(tenant, {})[str(i)] = entry
        return merged


class WitnessDir:
    """The latest checkpoint of each tenant's log, in files of one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, tenant: str) -> Path:
        """The file of a tenant's latest witnessed checkpoint."""
        return self.directory / f"{urllib.parse.quote(tenant, safe='')}.checkpoint"

    def latest(self, tenant: str) -> str | None:
        """The latest witnessed signed note of the tenant's log; None when there is none."""
        try:
            return self.path(tenant).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def retry(self) -> None:
        """Nothing to retry: a write to the directory either happened or raised."""

    def state(self) -> dict[str, dict[str, Any]]:
        """Nothing beyond the files (``latest``)."""
        return {}

    def submit(
        self, tenant: str, note: str, proof: Callable[[int, int], Sequence[bytes]]
    ) -> Checkpoint:
        """Keep ``note`` as the tenant's latest checkpoint when it extends the witnessed one;
        ``proof(old, new)``: the consistency proof between two sizes of the log. Raises
        WitnessRefused (and logs an error) otherwise."""
        new = note_checkpoint(note)
        self.directory.mkdir(parents=True, exist_ok=True)
        # one submit at a time across processes: pipeline replicas append and sign concurrently,
        # and an unlocked read-check-write could put an older checkpoint over a newer one
        with open(self.directory / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            old_note = self.latest(tenant)
            if old_note is None:
                write_atomically(self.path(tenant), note)
                return new
            old = note_checkpoint(old_note)
            try:
                if old.origin != new.origin:
                    raise ProofError(f"origin {new.origin!r} is not {old.origin!r}")
                if new.size < old.size:  # another appender signed a later one first: stale
                    verify_consistency(
                        new.size, old.size, proof(new.size, old.size), new.root_hash, old.root_hash
                    )
                    return old
                verify_consistency(
                    old.size, new.size, proof(old.size, new.size), old.root_hash, new.root_hash
                )
            except (ProofError, ValueError) as exc:
                log.error(
                    "witness %s refused the checkpoint of %s at size %d: %s",
                    self.directory,
                    tenant,
                    new.size,
                    exc,
                )
                raise WitnessRefused(str(exc)) from exc
            if old_note != note:
                write_atomically(self.path(tenant), note)
            return new
