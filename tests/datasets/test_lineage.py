"""Lineage both ways: the spans in a dataset, the datasets of a span; manifests and checksums."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from agentledger.pipeline.services import queries
from agentledger.pipeline.services.datasets import (
    MEMBER_SPANS_SQL,
    ExportFilters,
    ExportRequest,
    datasets_of_span,
    demo_dataset,
    export_dataset,
    get_dataset,
    list_datasets,
)
from agentledger.pipeline.services.datasets.writers import sha256_file
from tests.datasets import otlp
from tests.datasets.conftest import read_lines

CLI = [sys.executable, "-m", "agentledger.cli"]


def test_lineage_answers_both_directions(server, run_agent, tmp_path) -> None:
    run = run_agent()
    other = otlp.chat_span("Unrelated question?", "Unrelated answer.")
    otlp.send(server.url, [other])
    store = server.store
    llm_spans = [
        s["span_id"]
        for s in queries.get_trace(store, "default", run.trace_id)
        if s["kind"] == "LLM"
    ]

    demo = export_dataset(
        store,
        "default",
        tmp_path / "demo",
        ExportRequest(
            name="demo calls", creator="tester", filters=ExportFilters(trace_ids=(run.trace_id,))
        ),
    )
    everything = export_dataset(
        store, "default", tmp_path / "all", ExportRequest(name="everything")
    )

    # manifest: id, filters, counts, hashes, span ids, redaction, creator, time, checksums
    on_disk = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert on_disk == demo
    assert (
        demo["creator"] == "tester"
        and demo["created_at"]
        and demo["filters"]["trace_ids"] == [run.trace_id]
    )
    assert sorted(demo["source_span_ids"]) == sorted(llm_spans)
    assert len(demo["content_hashes"]) == demo["counts"]["examples"] == 2
    assert demo["hygiene"]["redaction_policy"].startswith("agentledger-export@1:")
    for f in demo["files"]:
        assert sha256_file(tmp_path / "demo" / f["path"]) == f["sha256"]
        assert (tmp_path / "demo" / f["path"]).stat().st_size == f["bytes"]

    # dataset -> spans
    recorded = get_dataset(store, "default", demo["id"])
    assert (
        recorded is not None
        and recorded["recorded"]["spans"] == 2
        and recorded["recorded"]["traces"] == 1
    )
    in_dataset = store.query_rows(MEMBER_SPANS_SQL, {"tenant": "default", "dataset_id": demo["id"]})
    assert sorted(r["span_id"] for r in in_dataset) == sorted(llm_spans)
    # span -> datasets
    found = datasets_of_span(store, "default", llm_spans[0])
    assert sorted(d["dataset_id"] for d in found) == sorted([demo["id"], everything["id"]])
    assert {d["dataset_id"]: d["name"] for d in found}[demo["id"]] == "demo calls"
    assert [d["dataset_id"] for d in datasets_of_span(store, "default", other.span_id)] == [
        everything["id"]
    ]
    tool_span = next(
        s for s in queries.get_trace(store, "default", run.trace_id) if s["kind"] == "TOOL"
    )
    assert datasets_of_span(store, "default", tool_span["span_id"]) == []
    assert [d["dataset_id"] for d in list_datasets(store, "default")] == [
        everything["id"],
        demo["id"],
    ]
    assert datasets_of_span(store, "other-tenant", llm_spans[0]) == []

    # the same through the HTTP API and the CLI (which asks the running server)
    api = httpx.get(f"{server.url}/api/v1/spans/{llm_spans[0]}/datasets", timeout=30).json()
    assert sorted(d["dataset_id"] for d in api) == sorted([demo["id"], everything["id"]])
    spans_api = httpx.get(f"{server.url}/api/v1/datasets/{demo['id']}/spans", timeout=30).json()
    assert sorted(s["span_id"] for s in spans_api) == sorted(llm_spans)
    assert httpx.get(f"{server.url}/api/v1/datasets/ds-nope", timeout=30).status_code == 404
    show = subprocess.run(
        [*CLI, "dataset", "show", demo["id"], "--url", server.url, "--spans", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert show.returncode == 0, show.stderr
    shown = json.loads(show.stdout)
    assert shown["id"] == demo["id"] and sorted(s["span_id"] for s in shown["spans"]) == sorted(
        llm_spans
    )
    of_span = subprocess.run(
        [*CLI, "dataset", "of-span", other.span_id, "--url", server.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        of_span.returncode == 0
        and everything["id"] in of_span.stdout
        and demo["id"] not in of_span.stdout
    )


def test_cli_exports_through_the_server_and_downloads_files(server, run_agent, tmp_path) -> None:
    run_agent()
    out = tmp_path / "via-cli"
    done = subprocess.run(
        [
            *CLI,
            "dataset",
            "export",
            str(out),
            "--url",
            server.url,
            "--format",
            "trajectory",
            "--validation",
            "0",
            "--name",
            "cli export",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["format"] == "trajectory" and manifest["counts"]["examples"] == 1
    assert json.loads((out / "manifest.json").read_text())["id"] == manifest["id"]
    # a file listed in the manifest can be fetched from the server
    got = httpx.get(f"{server.url}/api/v1/datasets/{manifest['id']}/files/train.jsonl", timeout=30)
    assert got.status_code == 200 and got.content == (out / "train.jsonl").read_bytes()
    assert (
        httpx.get(
            f"{server.url}/api/v1/datasets/{manifest['id']}/files/..%2Fsecret", timeout=30
        ).status_code
        == 404
    )
    listed = subprocess.run(
        [*CLI, "dataset", "list", "--url", server.url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [d["name"] for d in json.loads(listed.stdout)] == ["cli export"]


def test_demo_dataset_prints_a_manifest(server, run_agent, tmp_path) -> None:
    run = run_agent()
    manifest = demo_dataset(server.store, tmp_path / "demo")
    assert manifest["counts"]["examples"] == run.llm_calls == 2
    assert manifest["format"] == "chat" and manifest["files"][0]["path"] == "train.jsonl"
    assert len(read_lines(tmp_path / "demo" / "train.jsonl")) == 2
    assert get_dataset(server.store, "default", manifest["id"]) is not None
    again = demo_dataset(server.store, tmp_path / "demo")  # the demo run twice: a new directory
    assert (
        again["id"] != manifest["id"] and (tmp_path / "demo" / "run-2" / "manifest.json").is_file()
    )


def test_authenticated_exports_stay_in_the_tenants_folder(
    auth_server, tmp_path, monkeypatch
) -> None:
    from tests.conftest import API_KEYS

    monkeypatch.setenv("AGENTLEDGER_DATASETS_DIR", str(tmp_path / "server-datasets"))
    headers = {"Authorization": f"Bearer {API_KEYS['acme']}"}
    otlp.send(
        auth_server.url,
        [otlp.chat_span("Tenant question?", "Tenant answer.")],
        api_key=API_KEYS["acme"],
    )
    outside = httpx.post(
        f"{auth_server.url}/api/v1/datasets",
        headers=headers,
        timeout=60,
        json={"out_dir": str(tmp_path / "anywhere"), "request": {}},
    )
    assert outside.status_code == 403 and not (tmp_path / "anywhere").exists()
    escape = httpx.post(
        f"{auth_server.url}/api/v1/datasets",
        headers=headers,
        timeout=60,
        json={"out_dir": "../globex/x", "request": {}},
    )
    assert escape.status_code == 403
    inside = httpx.post(
        f"{auth_server.url}/api/v1/datasets",
        headers=headers,
        timeout=60,
        json={"out_dir": "q3", "request": {"validation_fraction": 0}},
    )
    assert inside.status_code == 200, inside.text
    assert (tmp_path / "server-datasets" / "acme" / "q3" / "train.jsonl").is_file()
    assert inside.json()["counts"]["examples"] == 1
    # the other tenant sees neither the dataset nor its files
    other = {"Authorization": f"Bearer {API_KEYS['globex']}"}
    dataset_id = inside.json()["id"]
    assert (
        httpx.get(
            f"{auth_server.url}/api/v1/datasets/{dataset_id}", headers=other, timeout=30
        ).status_code
        == 404
    )
    assert (
        httpx.get(
            f"{auth_server.url}/api/v1/datasets/{dataset_id}/files/train.jsonl",
            headers=other,
            timeout=30,
        ).status_code
        == 404
    )
    # the CLI, given a local path, lets the server export into its folder and downloads the files
    local = tmp_path / "local-copy"
    done = subprocess.run(
        [
            *CLI,
            "dataset",
            "export",
            str(local),
            "--url",
            auth_server.url,
            "--api-key",
            API_KEYS["acme"],
            "--validation",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    for f in manifest["files"]:
        assert sha256_file(local / f["path"]) == f["sha256"]
    assert json.loads((local / "manifest.json").read_text())["id"] == manifest["id"]


def test_cli_works_on_a_data_directory_without_a_server(tmp_path) -> None:
    data = str(tmp_path / "data")
    env_url = "http://127.0.0.1:9"  # nothing listens: the commands open the data directory
    demo = subprocess.run(
        [*CLI, "demo", "--json", "--data-dir", data], capture_output=True, text=True, timeout=180
    )
    assert demo.returncode == 0, demo.stderr
    trace_id = json.loads(demo.stdout)["trace_id"]
    added = subprocess.run(
        [
            *CLI,
            "feedback",
            "add",
            "--data-dir",
            data,
            "--url",
            env_url,
            "--trace-id",
            trace_id,
            "--name",
            "thumbs",
            "--label",
            "up",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    out = tmp_path / "ds"
    exported = subprocess.run(
        [
            *CLI,
            "dataset",
            "export",
            str(out),
            "--data-dir",
            data,
            "--url",
            env_url,
            "--feedback",
            "thumbs=up",
            "--validation",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads(exported.stdout)
    assert manifest["counts"]["examples"] == 2 and manifest["filters"]["feedback"] == ["thumbs=up"]
    span_id = json.loads(read_lines(out / "members.jsonl")[0])["span_id"]
    of_span = subprocess.run(
        [*CLI, "dataset", "of-span", span_id, "--data-dir", data, "--url", env_url, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = json.loads(of_span.stdout)  # newest first: this export, then the one the demo made
    assert [d["dataset_id"] for d in found][0] == manifest["id"] and len(found) == 2
    assert found[1]["creator"] == "agentledger demo" and found[0]["split"] == "train"
    shown = subprocess.run(
        [*CLI, "dataset", "show", manifest["id"], "--data-dir", data, "--url", env_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        shown.returncode == 0 and manifest["id"] in shown.stdout and "train.jsonl" in shown.stdout
    )
    missing = subprocess.run(
        [*CLI, "dataset", "show", "ds-missing", "--data-dir", data, "--url", env_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "no dataset" in missing.stderr
