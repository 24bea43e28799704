"""Ack, mute and label anomalies (records of kind ``anomaly_label``): the state read back, mutes
that silence later anomalies of the same signature, and labels as per-type precision."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from agentledger.pipeline.derive import (
    AnomalyDetectionJob,
    JobSettings,
    list_anomalies,
    write_anomalies,
)
from agentledger.pipeline.derive import anomalies as job_module
from agentledger.pipeline.derive.detectors import Anomaly, Found
from agentledger.pipeline.derive.labels import label_anomaly, label_precision, muted_keys

T0 = datetime(2026, 3, 11, 3, tzinfo=timezone.utc)


def _anomaly(hour: int, principal: str = "u0@acme.example", type_: str = "off_hours") -> Anomaly:
    start = T0 + timedelta(hours=hour)
    return Anomaly(
        "default",
        type_,
        "runs",
        {"principal_id": principal},
        start,
        start + timedelta(hours=1),
        9.0,
        0.1,
        5.0,
        ["ab" * 16],
        f"{principal} made 5 runs at night",
    )


def test_ack_label_and_mute_are_read_back(store) -> None:
    write_anomalies(store, [_anomaly(0), _anomaly(1, "u1@acme.example")], T0)
    first, second = sorted(list_anomalies(store, "default"), key=lambda a: a["window_start"])
    assert (first["acked"], first["muted"], first["label"]) == (False, False, "")
    label_anomaly(store, "default", first, "ack", now=T0)
    label_anomaly(store, "default", second, "label", label="false_alarm", now=T0)
    label_anomaly(
        store, "default", second, "label", label="true_alarm", now=T0 + timedelta(minutes=1)
    )
    label_anomaly(store, "default", second, "mute", note="known night shift", now=T0)
    states = {a["window_start"]: a for a in list_anomalies(store, "default")}
    a, b = states[first["window_start"]], states[second["window_start"]]
    assert (a["acked"], a["muted"], a["label"]) == (True, False, "")
    assert (b["acked"], b["muted"], b["label"]) == (True, True, "true_alarm")  # the latest label
    label_anomaly(store, "default", second, "unmute", now=T0 + timedelta(minutes=2))
    assert not any(a["muted"] for a in list_anomalies(store, "default"))


def test_a_mute_can_expire(store) -> None:
    write_anomalies(store, [_anomaly(0)], T0)
    (a,) = list_anomalies(store, "default")
    label_anomaly(store, "default", a, "mute", until=T0 + timedelta(hours=2), now=T0)
    assert len(muted_keys(store, "default", T0 + timedelta(hours=1))) == 1
    assert muted_keys(store, "default", T0 + timedelta(hours=3)) == set()


def test_wrong_actions_are_refused(store) -> None:
    write_anomalies(store, [_anomaly(0)], T0)
    (a,) = list_anomalies(store, "default")
    with pytest.raises(ValueError):
        label_anomaly(store, "default", a, "label")  # a label action needs a label
    with pytest.raises(ValueError):
        label_anomaly(store, "default", a, "ack", label="true_alarm")
    with pytest.raises(ValueError):
        label_anomaly(store, "default", a, "delete")


def test_labels_give_precision_per_type(store) -> None:
    found = [_anomaly(h, f"u{h}@acme.example") for h in range(4)] + [_anomaly(5, type_="cohort")]
    write_anomalies(store, found, T0)
    rows = sorted(list_anomalies(store, "default"), key=lambda a: a["window_start"])
    for a, label in zip(
        rows, ["true_alarm", "true_alarm", "true_alarm", "false_alarm", "true_alarm"]
    ):
        label_anomaly(store, "default", a, "label", label=label, now=T0)
    precision = label_precision(store, "default")
    assert precision["off_hours"] == {"true_alarm": 3, "false_alarm": 1, "precision": 0.75}
    assert precision["cohort"]["precision"] == 1.0


def test_a_muted_signature_is_not_alerted_again(store, monkeypatch) -> None:
    hour = [0]
    monkeypatch.setitem(
        job_module.DETECTORS, "scripted", lambda ctx: Found([_anomaly(hour[0])], tests=1)
    )
    sent: list[list[dict]] = []
    job = AnomalyDetectionJob(
        JobSettings(webhook_url="http://127.0.0.1:9/hook"), tenant="default", detectors=["scripted"]
    )
    assert job.notifier is not None
    monkeypatch.setattr(job.notifier, "notify", lambda new: sent.append(new) or len(new))
    first = job.run(store, T0 + timedelta(hours=2))
    assert [len(batch) for batch in sent] == [1] and first.info["muted"] == 0
    (a,) = list_anomalies(store, "default")
    label_anomaly(store, "default", a, "mute", now=T0)
    hour[0] = 1  # the same principal off-hours again, an hour later: a new anomaly, muted
    second = job.run(store, T0 + timedelta(hours=3))
    assert len(second.info["new"]) == 1 and second.info["muted"] == 1
    assert [len(batch) for batch in sent] == [1, 0]
    assert all(a["muted"] for a in list_anomalies(store, "default"))


def test_cli_acks_labels_and_mutes_on_a_data_dir(store, chdb_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from agentledger.cli import app

    # chDB opens one data directory per process: the session's, with this test's database
    monkeypatch.setenv("AGENTLEDGER_DATABASE", store.database)
    data = str(chdb_path)
    write_anomalies(store, [_anomaly(0)], T0)
    (a,) = list_anomalies(store, "default")
    ref = a["anomaly_id"][:10]

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, ["anomalies", *args, "--data-dir", data])
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(cli("ack", ref, "--json"))["anomaly_id"] == a["anomaly_id"]
    cli("label", ref, "false", "--note", "the night shift")
    cli("mute", ref, "--for", "2h")
    (listed,) = json.loads(cli("--since", "2026-03-01T00:00:00+00:00", "--json"))
    assert (listed["acked"], listed["label"], listed["muted"]) == (True, "false_alarm", True)
    refused = CliRunner().invoke(app, ["anomalies", "label", ref, "maybe", "--data-dir", data])
    assert refused.exit_code != 0 and "true or false" in refused.output
    unknown = CliRunner().invoke(app, ["anomalies", "ack", "0123456789", "--data-dir", data])
    assert unknown.exit_code != 0 and "no single anomaly" in unknown.output
