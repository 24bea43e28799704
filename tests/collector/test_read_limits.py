"""Every page-size parameter of the read API has a maximum (``schemas.read.defaults``): above it,
or below its minimum, the read answers 400 with the allowed range; at it, the read runs. The
bounds are in the OpenAPI document, and the CLI options carry the same ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agentledger.collector import CollectorSettings
from agentledger.compose import build_embedded_app
from agentledger.pipeline.settings import StoreSettings
from agentledger.schemas.read import defaults as D

KEY = "limits-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
DS = "0" * 32

# (path, parameter, minimum, maximum): every read that pages
PAGED = [
    ("/api/v1/traces", "limit", 1, D.TRACES_MAX),
    ("/api/v1/usage", "top", 0, D.USAGE_TOP_MAX),
    ("/api/v1/patterns", "top", 1, D.PATTERNS_TOP_MAX),
    ("/api/v1/anomalies", "limit", 1, D.ANOMALIES_MAX),
    ("/api/v1/feedback", "limit", 1, D.FEEDBACK_MAX),
    ("/api/v1/datasets", "limit", 1, D.DATASETS_MAX),
    (f"/api/v1/datasets/{DS}/spans", "limit", 1, D.DATASET_SPANS_MAX),
    ("/api/v1/replay/requests", "limit", 1, D.REPLAY_REQUESTS_MAX),
    ("/api/v1/replays", "limit", 1, D.REPLAYS_MAX),
    ("/v1/intents", "limit", 1, D.INTENTS_MAX),
    ("/v1/controls", "limit", 1, D.CONTROLS_MAX),
]


@pytest.fixture
def client(store, tmp_path, monkeypatch) -> Iterator[TestClient]:
    monkeypatch.setenv("AGENTLEDGER_DATASETS_DIR", str(tmp_path / "datasets"))
    app = build_embedded_app(
        CollectorSettings(api_keys=f"acme={KEY}"), StoreSettings(data_dir=str(tmp_path)), store
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_over_the_maximum_is_a_400_naming_the_range(client: TestClient) -> None:
    for path, name, low, high in PAGED:
        extra = {"trace_id": "1" * 32} if path.endswith("/feedback") else {}
        over = client.get(path, params={**extra, name: high + 1}, headers=AUTH)
        assert over.status_code == 400, (path, over.text)
        assert over.json() == {
            "detail": f"{name} must be between {low} and {high}, not {high + 1}"
        }, path
        under = client.get(path, params={**extra, name: low - 1}, headers=AUTH)
        assert under.status_code == 400 and "must be between" in under.json()["detail"], path
        at_max = client.get(path, params={**extra, name: high}, headers=AUTH)
        # the dataset does not exist: 404 from the read itself, past the parameter check
        expected = 404 if "/datasets/" in path else 200
        assert at_max.status_code == expected, (path, at_max.text)


def test_not_a_number_stays_a_validation_error(client: TestClient) -> None:
    bad = client.get("/api/v1/traces", params={"limit": "many"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]


def test_openapi_documents_the_bounds(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, name, low, high in PAGED:
        template = path.replace(DS, "{dataset_id}")
        params = spec["paths"][template]["get"]["parameters"]
        (param,) = [p for p in params if p["name"] == name]
        assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (low, high), path


def test_cli_options_carry_the_same_maximum() -> None:
    """The CLI refuses the same values before it asks anything (usage error, exit code 2)."""
    from typer.testing import CliRunner

    from agentledger.cli import app

    runner = CliRunner()
    for command, option, high in [
        ("traces", "--limit", D.TRACES_MAX),
        ("usage", "--top", D.USAGE_TOP_MAX),
        ("anomalies", "--limit", D.ANOMALIES_MAX),
        ("controls", "--limit", D.CONTROLS_MAX),
    ]:
        args = [command, option, str(high + 1), "--url", "http://127.0.0.1:9"]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (command, result.output)
        text = " ".join(result.output.replace("│", " ").split())  # rich's box, unwrapped
        assert f"less than or equal to {high}" in text, (command, text)
