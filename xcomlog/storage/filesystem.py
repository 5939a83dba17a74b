"""Where a dataset lives: a local folder or any pyarrow filesystem URI.

``--out`` / ``out =`` / ``xcomlog.read`` accept plain paths, ``file://`` and every URI
``pyarrow.fs.FileSystem.from_uri`` knows: ``s3://bucket/prefix`` (options in the query as
pyarrow takes them, e.g. ``?endpoint_override=127.0.0.1:9000&scheme=http`` for MinIO or
Ceph, ``region=``; credentials from the standard AWS environment and files), ``gs://``,
``hdfs://``. Object stores have no fsync, append or rename, so writers keep their journal
and working files on local disk and only ever publish whole files (see ``publisher``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from ..exceptions import ConfigError

#: Filesystems whose writes become visible only when the stream closes (a single put or a
#: completed multipart upload): files can be written in place, readers see all or nothing.
_WHOLE_OBJECT_FILESYSTEMS = ("s3", "gcs")


def is_uri(text: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (s3, gs, hdfs, file...), False for a plain path."""
    text = os.fspath(text)
    head, sep, _ = text.partition("://")
    return bool(sep) and head.isalnum() and len(head) > 1  # "C://" is a Windows path


@dataclasses.dataclass(frozen=True)
class DatasetLocation:
    """A dataset root: the filesystem, the root path inside it and the text it came from."""

    text: str
    filesystem: pafs.FileSystem
    base: str

    @property
    def local(self) -> bool:
        """True when the dataset is a folder of this machine (Path operations work)."""
        return self.filesystem.type_name == "local"

    @property
    def whole_object_writes(self) -> bool:
        return self.filesystem.type_name in _WHOLE_OBJECT_FILESYSTEMS

    def path(self, *parts: str) -> str:
        """The filesystem path of ``parts`` under the root."""
        return "/".join([self.base.rstrip("/"), *parts]) if parts else self.base

    def exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type != pafs.FileType.NotFound

    def is_dir(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type == pafs.FileType.Directory

    def list_dir(self, path: str) -> list[pafs.FileInfo]:
        """The entries directly in ``path`` (empty when it does not exist)."""
        try:
            return self.filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except FileNotFoundError:
            return []

    def list_files(self, path: str) -> list[pafs.FileInfo]:
        """Every file below ``path``, recursively (empty when it does not exist)."""
        try:
            infos = self.filesystem.get_file_info(
                pafs.FileSelector(path, recursive=True, allow_not_found=True)
            )
        except FileNotFoundError:
            return []
        return [i for i in infos if i.type == pafs.FileType.File]

    def read_bytes(self, path: str) -> bytes:
        with self.filesystem.open_input_stream(path) as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a whole file so readers see either nothing or all of it."""
        put_file(self, path, data)

    def delete(self, path: str) -> None:
        try:
            self.filesystem.delete_file(path)
        except FileNotFoundError:
            pass


def open_location(text: str | os.PathLike) -> DatasetLocation:
    """The filesystem and root of a dataset given as a path or a URI.

    Raises ConfigError with one sentence when the URI cannot be understood.
    """
    text = os.fspath(text)
    if not is_uri(text):
        base = str(Path(text).expanduser().absolute())
        return DatasetLocation(text, pafs.LocalFileSystem(), base)
    try:
        filesystem, base = pafs.FileSystem.from_uri(text)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise ConfigError(
            f"cannot open the dataset location {text!r}: {exc} (use a folder, file:///path, "
            "s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http, gs://bucket/prefix "
            "or hdfs://host:port/path)"
        ) from exc
    return DatasetLocation(text, filesystem, base.rstrip("/"))


def put_file(location: DatasetLocation, path: str, data: bytes | str | os.PathLike) -> None:
    """Publish one whole file (``data`` bytes or a local file's path) at ``path``.

    On object stores the single put or completed multipart upload makes it appear whole;
    elsewhere (local disk, HDFS) it is written under a temporary name and moved into place.
    """
    fs = location.filesystem
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    target = path
    if not location.whole_object_writes:
        name = path.rsplit("/", 1)[1]
        target = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            with fs.open_output_stream(target) as out:
                out.write(data)
        else:
            with open(data, "rb") as src, fs.open_output_stream(target) as out:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
        if target != path:
            if location.local:
                with open(target, "rb+") as f:
                    os.fsync(f.fileno())
            fs.move(target, path)
    except BaseException:
        if target != path:
            try:
                fs.delete_file(target)
            except (OSError, pa.ArrowException):
                pass
        raise


def default_journal_dir(out: str | os.PathLike) -> Path:
    """The local journal folder of a remote dataset: one per output, under the user cache
    (``$XDG_CACHE_HOME/xcomlog/journal/<hash of the output>``)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(os.fspath(out).encode()).hexdigest()[:16]
    return cache / "xcomlog" / "journal" / digest


def default_writer_id(journal: str | os.PathLike) -> str:
    """A stable writer id for a journal folder: the host name and a hash of the folder, so a
    restarted writer keeps its id (and finds its own files) and two writers never share one."""
    import socket

    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:24]
    digest = hashlib.sha1(str(Path(journal).absolute()).encode()).hexdigest()[:8]
    return f"{host or 'host'}-{digest}"
