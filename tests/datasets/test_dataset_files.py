"""A dataset file download serves only a file its manifest lists, inside the dataset's folder:
traversal names, absolute paths, NULs and links that lead out are refused with a clear 4xx."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agentledger.collector import CollectorSettings
from agentledger.compose import build_embedded_app
from agentledger.pipeline.services.datasets.export import demo_dataset
from agentledger.pipeline.services.datasets.files import (
    FileGone,
    FileNameRejected,
    FileNotServed,
    dataset_file,
)
from agentledger.pipeline.settings import StoreSettings

KEY = "files-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("..", "'..'"),
        ("../secret", "'..'"),
        ("a/../../secret", "'..'"),
        ("./members.jsonl", "'.'"),
        ("/etc/passwd", "relative"),
        ("C:/Windows/win.ini", "relative"),
        ("..\\secret", "backslash"),
        ("members.jsonl\x00.txt", "NUL"),
        ("a//b", "empty parts"),
    ],
)
def test_names_that_could_leave_the_folder_are_refused(tmp_path: Path, name: str, why: str) -> None:
    with pytest.raises(FileNameRejected, match=why):
        dataset_file(tmp_path, name, {name})  # refused even when a manifest lists it


def test_only_listed_plain_files_inside_the_folder_are_served(tmp_path: Path) -> None:
    folder, outside = tmp_path / "ds", tmp_path / "secret.txt"
    folder.mkdir()
    outside.write_text("not yours")
    (folder / "train.jsonl").write_text("{}\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "part.jsonl").write_text("{}\n")
    os.symlink(outside, folder / "link.jsonl")
    os.symlink(folder / "train.jsonl", folder / "inner.jsonl")
    listed = {"train.jsonl", "sub/part.jsonl", "link.jsonl", "inner.jsonl", "gone.jsonl", "sub"}

    assert dataset_file(folder, "train.jsonl", listed) == (folder / "train.jsonl").resolve()
    assert dataset_file(folder, "sub/part.jsonl", listed).read_text() == "{}\n"
    assert dataset_file(folder, "inner.jsonl", listed).name == "train.jsonl"  # a link inside: ok
    with pytest.raises(FileNotServed, match="leads outside the dataset's folder"):
        dataset_file(folder, "link.jsonl", listed)
    with pytest.raises(FileNotServed, match="has no file 'other.jsonl'"):
        dataset_file(folder, "other.jsonl", listed)
    with pytest.raises(FileGone, match="no longer at"):
        dataset_file(folder, "gone.jsonl", listed)
    with pytest.raises(FileGone, match="not a file"):
        dataset_file(folder, "sub", listed)


@pytest.fixture
def client(store, tmp_path, monkeypatch) -> Iterator[TestClient]:
    monkeypatch.setenv("AGENTLEDGER_JOBS_INTERVAL_S", "0")
    app = build_embedded_app(
        CollectorSettings(api_keys=f"default={KEY}"), StoreSettings(data_dir=str(tmp_path)), store
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_download_route_refuses_traversal(client: TestClient, store, tmp_path: Path) -> None:
    manifest = demo_dataset(store, tmp_path / "export")  # an empty dataset: members.jsonl only
    (tmp_path / "secret.txt").write_text("server secret")
    files = f"/api/v1/datasets/{manifest['id']}/files"
    ok = client.get(f"{files}/manifest.json", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["id"] == manifest["id"]

    for raw, status, says in [
        ("%2E%2E", 400, "must not contain '.', '..'"),
        ("..%5Csecret.txt", 400, "backslash"),
        ("members.jsonl%00", 400, "NUL"),
        ("secret.txt", 404, "has no file 'secret.txt'"),
        ("..%2Fsecret.txt", 404, "Not Found"),  # a slash never reaches the route's name
    ]:
        got = client.get(f"{files}/{raw}", headers=AUTH)
        assert got.status_code == status, (raw, got.text)
        assert says in got.json()["detail"], (raw, got.text)
        assert "server secret" not in got.text

    # the listed file replaced by a link out of the folder: not followed
    members = tmp_path / "export" / "members.jsonl"
    members.unlink()
    os.symlink(tmp_path / "secret.txt", members)
    linked = client.get(f"{files}/members.jsonl", headers=AUTH)
    assert linked.status_code == 404 and "leads outside" in linked.json()["detail"]
    assert "server secret" not in linked.text
