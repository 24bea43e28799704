"""The local client's writes, key administration, SQL and ledger proofs (its reads: ``local.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from agentledger.cli.client.base import ClientError, Progress
from agentledger.cli.client.local_base import LocalClientBase
from agentledger.schemas.read import (
    AccessLog,
    AnomalyActionDone,
    AnomalyActionIn,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    ControlEvent,
    DatasetManifest,
    DetectionResult,
    FeedbackAccepted,
    ReplayStored,
)
from agentledger.schemas.read import defaults as D
from agentledger.schemas.records import Actor

__all__ = ["LocalWrites"]


class LocalWrites(LocalClientBase):
    """What the CLI writes to a data directory or server, through the services the routers call."""

    # -- writes --

    def detect_anomalies(
        self,
        *,
        now: datetime | None = None,
        window_hours: int | None = None,
        baseline_hours: int | None = None,
    ) -> DetectionResult:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.detect_anomalies,
            self.store,
            self.tenant,
            now=now,
            window_hours=window_hours,
            baseline_hours=baseline_hours,
        )

    def add_feedback(self, items: Sequence[Mapping[str, Any]]) -> FeedbackAccepted:
        from agentledger.pipeline.services import reads
        from agentledger.pipeline.services.datasets import FeedbackIn

        if self._feedback_log is None:
            raise ClientError(f"feedback cannot be stored in {self.where}")
        log = self._feedback_log

        def add() -> FeedbackAccepted:
            parsed = [FeedbackIn.model_validate(dict(i)) for i in items]
            return reads.add_feedback(log, self.tenant, parsed, source="cli")

        return self._call(add)

    def export_dataset(
        self, out_dir: str, request: Mapping[str, Any], progress: Progress | None = None
    ) -> DatasetManifest:
        from agentledger.pipeline.services import reads

        found = self._call(
            reads.export_dataset,
            self.store,
            self.tenant,
            out_dir,
            request,
            progress=progress,
            actor=Actor.CLI,
        )
        return self._logged("dataset export", [found.id], found.counts.examples, found)

    def save_replay(self, report: Mapping[str, Any]) -> ReplayStored:
        from agentledger.pipeline.services import reads

        return self._call(reads.save_replay, self.store, self.tenant, report, actor=Actor.CLI)

    def control(
        self, *, action: str, scope: str, target: str, by: str, reason: str
    ) -> ControlEvent:
        from agentledger.pipeline.governance import ControlIn
        from agentledger.pipeline.services import reads

        def record() -> ControlEvent:
            request = ControlIn.model_validate(
                {"action": action, "scope": scope, "target": target, "by": by, "reason": reason}
            )
            return reads.control(self._service(), self.tenant, request)

        return self._call(record)

    def anomaly_action(
        self,
        ref: str,
        action: str,
        *,
        label: str = "",
        note: str = "",
        until: datetime | None = None,
    ) -> AnomalyActionDone:
        from agentledger.pipeline.services import reads

        def act() -> AnomalyActionDone:
            body = AnomalyActionIn.model_validate(
                {"action": action, "label": label, "note": note, "until": until}
            )
            return reads.anomaly_action(self.store, self.tenant, ref, body, actor=Actor.CLI)

        return self._call(act)

    # -- access --

    def create_key(self, *, tenant: str, role: str, name: str, agent: str = "") -> ApiKeyCreated:
        from agentledger.pipeline.services.access import KeyBook

        book = KeyBook(self.store)
        return self._call(book.create, tenant, role, name, agent=agent, actor=Actor.CLI)

    def keys(self, *, tenant: str | None = None) -> ApiKeyList:
        from agentledger.pipeline.services.access import KeyBook

        found = self._call(KeyBook(self.store).list_keys, tenant)
        listed = ApiKeyList(keys=[k.info() for k in found])
        return self._logged("keys", [k.name for k in found], len(found), listed)

    def revoke_key(self, name: str) -> ApiKeyInfo:
        from agentledger.pipeline.services.access import KeyBook

        return self._call(KeyBook(self.store).revoke, name, actor=Actor.CLI).info()

    def sql(
        self, query: str, *, fmt: str = "JSON", params: Mapping[str, str] | None = None
    ) -> bytes:
        from agentledger.pipeline.services.sql import SqlError, SqlService, SqlUnavailable

        try:
            service = SqlService(self.store)
        except SqlUnavailable as exc:
            raise ClientError(str(exc)) from exc
        try:
            answer = service.run(self.tenant, query, params=params, fmt=fmt)
        except SqlError as exc:
            self._logged("sql", [f"sql refused: {query[:4000]}"], 0, None)
            raise ClientError(str(exc)) from exc
        finally:
            service.close()
        return self._logged("sql", [f"sql: {query[:4000]}"], answer.rows_read, answer.body)

    def access_log(self, *, limit: int = D.ACCESS_LOG_LIMIT, key: str | None = None) -> AccessLog:
        from agentledger.pipeline.services.access import read_access_log

        return self._call(read_access_log, self.store, self.tenant, limit=limit, key_name=key)

    # -- the verifiable ledger --

    def ledger_checkpoint(self) -> str:
        from agentledger.pipeline.services import ledger

        return self._call(ledger.checkpoint, self.store, self.tenant)

    def ledger_proof(self, kind: str, record_id: str) -> dict[str, Any]:
        from agentledger.pipeline.services import ledger

        proof = self._call(ledger.prove, self.store, self.tenant, kind, record_id)
        return self._logged("ledger proof", [record_id], 1, proof.to_json())

    def ledger_consistency(self, first: int, second: int) -> dict[str, Any]:
        from agentledger.pipeline.services import ledger

        return self._call(ledger.consistency, self.store, self.tenant, first, second).to_json()
