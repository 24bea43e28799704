"""Which file of an exported dataset a download may serve: only one inside that dataset's folder.

``GET /api/v1/datasets/{id}/files/{name}`` turns a client's ``name`` into a path on the
server. The name must be a file the dataset's manifest lists, but the check cannot stop
there: a manifest is data read back from the store, and the folder is a folder on disk that
others can change. So the name is refused outright when it could address anything but a
plain file directly in the folder (``..``, an absolute or drive path, a backslash, a NUL),
and the path is resolved before it is served, so a symbolic link that leads out of the folder
is not followed. Each refusal says why, as an error the router maps to its status code.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = [
    "DatasetFileError",
    "FileGone",
    "FileNameRejected",
    "FileNotServed",
    "dataset_file",
]


class DatasetFileError(Exception):
    """A dataset file that is not served."""


class FileNameRejected(DatasetFileError):
    """The name could address something outside the folder (HTTP 400)."""


class FileNotServed(DatasetFileError):
    """The dataset has no such file, or it leads out of the dataset's folder (HTTP 404)."""


class FileGone(DatasetFileError):
    """The dataset lists the file but it is no longer in its folder (HTTP 410)."""


def check_name(name: str) -> str:
    """``name`` if it is a relative path of plain parts, else FileNameRejected saying why."""
    if not name:
        raise FileNameRejected("file name is empty")
    if "\x00" in name:
        raise FileNameRejected("file name must not contain a NUL character")
    if "\\" in name:
        raise FileNameRejected(f"file name {name!r} must not contain a backslash")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise FileNameRejected(f"file name {name!r} must be relative to the dataset's folder")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise FileNameRejected(f"file name {name!r} must not contain '.', '..' or empty parts")
    return name


def dataset_file(folder: str | Path, name: str, listed: set[str]) -> Path:
    """The path to serve for ``name`` of the dataset exported into ``folder``, whose manifest
    lists ``listed``: resolved, and inside ``folder`` (links followed, then checked)."""
    check_name(name)
    if name not in listed:
        raise FileNotServed(f"the dataset has no file {name!r}")
    root = Path(folder).resolve()
    path = root / name
    if not path.exists() and not path.is_symlink():
        raise FileGone(f"{name} is no longer at {root}")
    resolved = path.resolve()
    if root not in resolved.parents:
        raise FileNotServed(f"{name} leads outside the dataset's folder; it is not served")
    if not resolved.is_file():
        raise FileGone(f"{name} at {root} is not a file")
    return resolved
