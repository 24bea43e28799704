"""What both halves of the local client share: the store, the tenant, and one error boundary.

Every read and write of ``LocalReadClient`` goes through ``_call`` (the services' errors as
``ClientError``, saying where a missing thing was looked for), and every read of content through
``_logged`` (the access log, as ``cli``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from agentledger.cli.client.base import ClientError
from agentledger.schemas.records import Actor

if TYPE_CHECKING:
    from agentledger.pipeline.governance import GovernanceService
    from agentledger.pipeline.services.access import AccessRecorder
    from agentledger.pipeline.services.datasets.feedback import FeedbackLog
    from agentledger.pipeline.store import Store

__all__ = ["LocalClientBase"]

T = TypeVar("T")
S = TypeVar("S", bound="LocalClientBase")


class LocalClientBase:
    """A store and tenant read in this process; the reads and writes are its subclasses'."""

    def __init__(
        self,
        store: Store,
        tenant: str,
        *,
        where: str,
        governance: Callable[[], GovernanceService] | None = None,
        feedback_log: FeedbackLog | None = None,
        ledger_key: bytes | None = None,
        on_close: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.where = where
        self._governance = governance
        self._feedback_log = feedback_log
        self._ledger_key = ledger_key
        self._on_close = list(on_close)
        self._access: AccessRecorder | None = None

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for closer in self._on_close:
            closer()
        self._on_close = []

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(...)``, its errors as ClientError (what is missing, with where it was looked for)."""
        from agentledger.pipeline.governance import GovernanceRejected, GovernanceUnavailable
        from agentledger.pipeline.services.datasets.feedback import FeedbackUnavailable
        from agentledger.pipeline.services.reads import ReadError, ReadNotFound
        from agentledger.pipeline.store import StoreError

        try:
            return fn(*args, **kwargs)
        except ReadNotFound as exc:
            raise ClientError(f"{exc} in {self.where}") from exc
        except (
            ReadError,
            StoreError,
            GovernanceUnavailable,
            GovernanceRejected,
            FeedbackUnavailable,
            ValueError,
        ) as exc:
            raise ClientError(str(exc)) from exc

    def _logged(self, what: str, object_ids: Sequence[str], rows: int, answer: T) -> T:
        """``answer``, once its read is in the access log (as ``cli``: a local reader holds the
        whole store, but what it read is still on record)."""
        from agentledger.pipeline.services.access import AccessRecorder

        if self._access is None:
            self._access = AccessRecorder(self.store, writer=f"cli-{os.getpid()}")
        recorder = self._access
        self._call(
            lambda: recorder.record(
                self.tenant,
                key_name=Actor.CLI,
                role="admin",
                method="cli",
                route=what,
                object_ids=object_ids,
                rows=rows,
            )
        )
        return answer

    def _service(self) -> GovernanceService:
        if self._governance is None:
            raise ClientError(f"no governance records can be read from {self.where}")
        return self._call(self._governance)
