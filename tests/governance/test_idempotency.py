"""Retries are safe and ids cannot be reused: intents, outcomes, controls and feedback sent again
get the first answer; a key reused for something else gets 409. Real embedded app (collector +
chDB store + governance journal) through its HTTP API."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentledger.collector import CollectorSettings
from agentledger.compose import build_embedded_app
from agentledger.pipeline.governance.idempotency import DUPLICATE, screen
from agentledger.pipeline.governance.records import (
    Decision,
    IntentIn,
    OutcomeIn,
    OutcomeStatus,
    intent_record,
    outcome_record,
)
from agentledger.pipeline.settings import StoreSettings
from agentledger.pipeline.store.records import append_records


def _app(store: Any) -> TestClient:
    return TestClient(
        build_embedded_app(CollectorSettings(no_auth=True, port=0), StoreSettings(), store)
    )


@pytest.fixture
def client(store: Any) -> Iterator[TestClient]:
    with _app(store) as c:
        yield c


def _intent(**over: Any) -> dict[str, Any]:
    arguments = over.pop("arguments", '{"to":"alice"}')
    return {
        "intent_id": uuid.uuid4().hex,
        "attempt": 0,
        "requested_at_ns": 1_760_000_000_000_000_000,
        "tool_name": "send_email",
        "arguments": arguments,
        "arguments_sha256": hashlib.sha256(arguments.encode()).hexdigest(),
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        **over,
    }


def _count(store: Any, kind: str, record_id: str) -> int:
    store.flush_write_behind()  # acknowledged records may still be in the journal
    return int(
        store.query_scalar(
            "SELECT count() FROM records WHERE kind = {k:String} AND record_id = {r:String}",
            {"k": kind, "r": record_id},
        )
    )


# -- intents ------------------------------------------------------------------------------------


def test_the_same_ask_again_is_the_same_record(client: TestClient, store: Any) -> None:
    ask = _intent()
    first = client.post("/v1/intents", json=ask)
    again = client.post("/v1/intents", json=ask)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert _count(store, "intent", ask["intent_id"]) == 1


def test_the_same_id_and_attempt_with_another_request_is_409(
    client: TestClient, store: Any
) -> None:
    ask = _intent()
    assert client.post("/v1/intents", json=ask).status_code == 200
    other = _intent(intent_id=ask["intent_id"], arguments='{"to":"mallory"}')
    refused = client.post("/v1/intents", json=other)
    assert refused.status_code == 409
    assert ask["intent_id"] in refused.json()["detail"]
    store.flush_write_behind()
    (row,) = store.query_rows(
        "SELECT arguments FROM intents_v WHERE intent_id = {i:String}", {"i": ask["intent_id"]}
    )
    assert row["arguments"] == '{"to":"alice"}'


def test_a_re_ask_is_a_new_attempt_but_must_repeat_the_first_ask(
    client: TestClient, store: Any
) -> None:
    ask = _intent()
    assert client.post("/v1/intents", json=ask).status_code == 200
    re_ask = client.post("/v1/intents", json={**ask, "attempt": 1})
    assert re_ask.status_code == 200 and re_ask.json()["attempt"] == 1
    assert _count(store, "intent", ask["intent_id"]) == 2
    hijack = client.post("/v1/intents", json={**ask, "attempt": 2, "tool_name": "wire_money"})
    assert hijack.status_code == 409 and "re-ask" in hijack.json()["detail"]
    assert _count(store, "intent", ask["intent_id"]) == 2


def test_a_repeated_ask_gets_the_answer_it_got_then(client: TestClient) -> None:
    ask = _intent()
    pause = {"action": "pause", "scope": "session", "target": ask["session_id"]}
    control = client.post("/v1/controls", json=pause).json()
    paused = client.post("/v1/intents", json=ask).json()
    assert paused["decision"] == Decision.PAUSED.value
    client.post("/v1/controls", json={**pause, "action": "resume"})
    again = client.post("/v1/intents", json=ask).json()  # the ask as recorded, not a new one
    assert again["decision"] == "paused" and again["control_id"] == control["control_id"]
    assert client.post("/v1/intents", json={**ask, "attempt": 1}).json()["decision"] == "proceed"


def test_an_ask_without_its_time_repeats_as_the_same_record(client: TestClient, store: Any) -> None:
    ask = _intent()
    del ask["requested_at_ns"]  # the collector's clock: the retry takes the first ask's
    assert client.post("/v1/intents", json=ask).status_code == 200
    assert client.post("/v1/intents", json=ask).status_code == 200
    assert _count(store, "intent", ask["intent_id"]) == 1


def test_retries_are_recognised_after_a_restart(store: Any) -> None:
    ask = _intent()
    outcome = {"status": "ok", "finished_at_ns": 1_760_000_000_500_000_000}
    with _app(store) as first:
        assert first.post("/v1/intents", json=ask).status_code == 200
        path = f"/v1/intents/{ask['intent_id']}/outcome"
        assert first.post(path, json=outcome).status_code == 200
    with _app(store) as second:  # a new process: nothing in memory, the store decides
        assert second.post("/v1/intents", json=ask).json()["decision"] == "proceed"
        assert second.post(path, json=outcome).status_code == 200
        assert second.post("/v1/intents", json={**ask, "tool_name": "x"}).status_code == 409
        assert second.post(path, json={**outcome, "status": "error"}).status_code == 409
    assert _count(store, "intent", ask["intent_id"]) == 1
    assert _count(store, "outcome", ask["intent_id"]) == 1


# -- outcomes -----------------------------------------------------------------------------------


def test_an_outcome_for_an_intent_never_asked_is_409(client: TestClient, store: Any) -> None:
    unknown = uuid.uuid4().hex
    refused = client.post(f"/v1/intents/{unknown}/outcome", json={"status": "ok"})
    assert refused.status_code == 409 and unknown in refused.json()["detail"]
    assert _count(store, "outcome", unknown) == 0


def test_one_outcome_per_intent(client: TestClient, store: Any) -> None:
    ask = _intent()
    client.post("/v1/intents", json=ask)
    path = f"/v1/intents/{ask['intent_id']}/outcome"
    result = '"sent"'
    ok = {
        "status": "ok",
        "result": result,
        "result_sha256": hashlib.sha256(result.encode()).hexdigest(),
        "duration_ms": 3.5,
    }  # no finished_at_ns: a retry takes the time recorded the first time
    first = client.post(path, json=ok)
    again = client.post(path, json=ok)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    other = client.post(path, json={"status": "error", "error_type": "Timeout"})
    assert other.status_code == 409 and "another outcome" in other.json()["detail"]
    assert _count(store, "outcome", ask["intent_id"]) == 1
    (row,) = store.query_rows(
        "SELECT status FROM intent_outcomes_v WHERE intent_id = {i:String}",
        {"i": ask["intent_id"]},
    )
    assert row["status"] == "ok"


# -- controls -----------------------------------------------------------------------------------


def test_a_control_sent_again_with_its_key_is_the_same_event(
    client: TestClient, store: Any
) -> None:
    body = {"action": "pause", "scope": "agent", "target": "billing", "reason": "audit"}
    key = f"ops-{uuid.uuid4().hex}"
    first = client.post("/v1/controls", json={**body, "idempotency_key": key})
    again = client.post("/v1/controls", json={**body, "idempotency_key": key})
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    control_id = first.json()["control_id"]
    assert control_id != key and len(control_id) == 32  # the server's id, not the client's
    assert _count(store, "control", control_id) == 1
    other = client.post("/v1/controls", json={**body, "reason": "another", "idempotency_key": key})
    assert other.status_code == 409 and key in other.json()["detail"]
    unkeyed = [client.post("/v1/controls", json=body).json()["control_id"] for _ in range(2)]
    assert len(set(unkeyed)) == 2  # without a key, every event is a new one


def test_an_empty_idempotency_key_is_refused(client: TestClient) -> None:
    body = {"action": "pause", "scope": "agent", "target": "a", "idempotency_key": ""}
    assert client.post("/v1/controls", json=body).status_code == 422
    feedback = {"id": "", "trace_id": "a" * 32, "name": "thumbs", "label": "up"}
    assert client.post("/v1/feedback", json=feedback).status_code == 422


# -- feedback -----------------------------------------------------------------------------------


def _feedback(**over: Any) -> dict[str, Any]:
    return {"trace_id": uuid.uuid4().hex, "name": "helpfulness", "score": 0.8, **over}


def test_feedback_sent_again_under_its_key_is_the_same_record(
    client: TestClient, store: Any
) -> None:
    item = _feedback(id=f"review-{uuid.uuid4().hex}")
    first = client.post("/v1/feedback", json=item)
    again = client.post("/v1/feedback", json=item)
    assert first.status_code == again.status_code == 200, again.text
    (feedback_id,) = first.json()["ids"]
    assert again.json()["ids"] == [feedback_id] and feedback_id != item["id"]
    assert _count(store, "feedback", feedback_id) == 1
    other = client.post("/v1/feedback", json={**item, "score": 0.1})
    assert other.status_code == 409 and item["id"] in other.json()["detail"]
    rows = store.query_rows(
        "SELECT score FROM feedback_v WHERE feedback_id = {f:String}", {"f": feedback_id}
    )
    assert [r["score"] for r in rows] == [0.8]


def test_a_client_cannot_write_under_another_feedbacks_id(client: TestClient, store: Any) -> None:
    mine = client.post("/v1/feedback", json=_feedback()).json()["ids"][0]
    theirs = client.post("/v1/feedback", json=_feedback(id=mine, score=0.0))
    assert theirs.status_code == 200 and theirs.json()["ids"] != [mine]
    assert _count(store, "feedback", mine) == 1


def test_feedback_without_a_key_sent_twice_is_stored_once(client: TestClient, store: Any) -> None:
    item = _feedback(label="good")
    ids = [client.post("/v1/feedback", json=item).json()["ids"] for _ in range(2)]
    assert ids[0] == ids[1]
    assert _count(store, "feedback", ids[0][0]) == 1


# -- the intents topic's consumer ----------------------------------------------------------------


def test_the_pipeline_drops_duplicates_and_refuses_conflicts(store: Any) -> None:
    """What a store-less Kafka collector could not decide, ``screen`` decides where the intents
    topic is stored: against the store and the records before it in the batch."""
    asked = IntentIn.model_validate(_intent())
    intent = intent_record("t", asked, Decision.PROCEED, "", 1_000)
    retry = intent_record("t", asked, Decision.PROCEED, "", 2_000)  # another replica's receipt
    other = intent_record(
        "t", asked.model_copy(update={"tool_name": "rm"}), Decision.PROCEED, "", 3_000
    )
    done = outcome_record("t", asked.intent_id, OutcomeIn(status=OutcomeStatus.OK), 4_000)
    failed = outcome_record("t", asked.intent_id, OutcomeIn(status=OutcomeStatus.ERROR), 5_000)
    orphan = outcome_record("t", uuid.uuid4().hex, OutcomeIn(status=OutcomeStatus.OK), 6_000)
    verdicts = screen(store, [intent, retry, other, done, failed, orphan])
    assert verdicts[:2] == [None, DUPLICATE] and verdicts[3] is None
    assert "another request" in str(verdicts[2]) and "another outcome" in str(verdicts[4])
    assert "no intent" in str(verdicts[5])
    append_records(store, [intent, done])
    assert screen(store, [retry, done, failed]) == [
        DUPLICATE,
        DUPLICATE,
        f"intent {asked.intent_id} already has another outcome",
    ]


# -- drift reports ------------------------------------------------------------------------------


def test_a_drift_report_is_stored_once_and_never_replaced(client: TestClient, store: Any) -> None:
    from agentledger.pipeline.services.replay import drift

    report = drift.DriftReport(
        uuid.uuid4().hex, "default", 1_760_000_000_000_000_000, "m", "", {}, [], drift.summarize([])
    ).as_dict()
    first = client.post("/api/v1/replays", json=report)
    again = client.post("/api/v1/replays", json=report)
    assert first.status_code == again.status_code == 200, again.text
    assert _count(store, "drift_report", report["run_id"]) == 1
    other = client.post("/api/v1/replays", json={**report, "candidate_model": "other"})
    assert other.status_code == 409 and report["run_id"] in other.json()["detail"]
    stored = client.get(f"/api/v1/replays/{report['run_id']}").json()
    assert stored["candidate_model"] == "m"


def test_the_filter_of_stored_ids_spares_new_ids_the_lookup(store) -> None:
    """A fresh id needs no store lookup; an id stored before the process started, or made by it
    (even once the bounded index forgot it), is still looked up and judged."""
    from agentledger.pipeline.governance.idempotency import stored_ids
    from agentledger.pipeline.store.records import append_records
    from agentledger.schemas.records import RecordKind, make_record

    body = {
        "control_id": "c" * 32,
        "created_at": 1,
        "action": "pause",
        "scope": "agent",
        "target": "a",
        "by": "api",
        "reason": "",
    }
    append_records(store, [make_record(RecordKind.CONTROL, "acme", body, actor="api")])
    ids = stored_ids(store, (RecordKind.CONTROL,))
    assert ids.may_hold("acme", "c" * 32)
    assert not ids.may_hold("acme", "d" * 32) and not ids.may_hold("beta", "c" * 32)
    for n in range(100_001):  # the ids made since start are merged in when they are many
        ids.add([("acme", f"{n:032x}")])
    assert ids.may_hold("acme", f"{0:032x}") and ids.may_hold("acme", f"{100_000:032x}")
    assert ids.may_hold("acme", "c" * 32) and not ids.may_hold("acme", "e" * 32)
