"""Where a run writes: OUT, its staging folder and the scratch, each a local path or an
fsspec URL (``sftp://user@host/path``, ``s3://bucket/path``, ...).

A ``Place`` is a value (URL and storage options), so a task sent to a Dask worker opens
the filesystem there: workers that share no disk with the client write to the same
server. ``sftp://`` goes through the verified SFTP filesystem of ``source`` (host keys
checked against known_hosts). Local places use the operating system directly: renames
are atomic there, and shuffle files can be memory-mapped.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec

from ..errors import ConfigError
from .source import fs_url, options_for, refuse_password


@dataclass(frozen=True)
class Place:
    """A file or folder: ``url`` is an absolute local path or ``protocol://...``."""

    url: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def local(self) -> bool:
        return "://" not in self.url

    def _remote(self) -> tuple[Any, str]:
        """The fsspec filesystem (fsspec keeps one instance per set of arguments) and the
        path inside it."""
        return fsspec.core.url_to_fs(fs_url(self.url), **dict(self.options))

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Place:
        if self.local:
            return Place(os.path.dirname(self.url.rstrip("/")) or "/", self.options)
        scheme, rest = self.url.split("://", 1)
        netloc, _, path = rest.partition("/")
        return Place(f"{scheme}://{netloc}/{posixpath.dirname(path.rstrip('/'))}",
                     self.options)

    def __truediv__(self, name: str) -> Place:
        return Place(self.url.rstrip("/") + "/" + name, self.options)

    def __str__(self) -> str:
        return self.url

    def exists(self) -> bool:
        if self.local:
            return os.path.lexists(self.url)
        fs, path = self._remote()
        return bool(fs.exists(path))

    def is_dir(self) -> bool:
        if self.local:
            return os.path.isdir(self.url)
        fs, path = self._remote()
        return bool(fs.isdir(path))

    def names(self) -> list[str]:
        """The entries of a folder, by name."""
        if self.local:
            return sorted(os.listdir(self.url))
        fs, path = self._remote()
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))

    def glob(self, pattern: str) -> list[Place]:
        """The entries of this folder whose names match ``pattern``, by name."""
        import fnmatch
        try:
            return [self / n for n in self.names() if fnmatch.fnmatchcase(n, pattern)]
        except FileNotFoundError:
            return []

    def read_bytes(self) -> bytes:
        if self.local:
            return Path(self.url).read_bytes()
        fs, path = self._remote()
        return bytes(fs.cat_file(path))

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def mtime(self) -> float:
        if self.local:
            return os.stat(self.url).st_mtime
        fs, path = self._remote()
        info = fs.info(path)
        stamp = info.get("mtime") or info.get("LastModified") or info.get("updated")
        return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp or 0)

    def makedirs(self) -> None:
        if self.local:
            os.makedirs(self.url, exist_ok=True)
            return
        fs, path = self._remote()
        try:
            fs.makedirs(path, exist_ok=True)
        except OSError:
            if not fs.isdir(path):  # another task made it meanwhile: fine
                raise

    def mkdir_new(self) -> None:
        """Make this folder, which must not exist yet."""
        if self.local:
            os.mkdir(self.url)
        elif self.exists():
            raise FileExistsError(self.url)
        else:
            self.makedirs()

    @contextmanager
    def open_write(self) -> Iterator[IO[bytes]]:
        """Write a file whole or not at all: beside it first, then renamed over it."""
        part = self.parent / f".{self.name}.part"
        try:
            with part.open("wb") as fh:
                if part.local:
                    yield fh
                else:  # writes in large blocks, and says how much it wrote
                    with io.BufferedWriter(_Counted(fh), 1 << 20) as buffered:
                        yield buffered
            part.rename(self, replace=True)
        except BaseException:
            part.remove()
            raise

    @contextmanager
    def write_target(self) -> Iterator[str | IO[bytes]]:
        """For writers that take a path or a file (polars, pyarrow): a local part file's
        path (the writer's own fast path), else a remote part file open for writing;
        renamed over this file when done."""
        if not self.local:
            with self.open_write() as fh:
                yield fh
            return
        part = self.parent / f".{self.name}.part"
        try:
            yield part.url
            os.replace(part.url, self.url)
        except BaseException:
            part.remove()
            raise

    def open(self, mode: str) -> IO[bytes]:
        if self.local:
            return open(self.url, mode)  # noqa: SIM115 (the caller closes it)
        fs, path = self._remote()
        return fs.open(path, mode, block_size=1 << 20)

    def write_bytes(self, data: bytes) -> None:
        with self.open_write() as fh:
            fh.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def rename(self, dest: Place, replace: bool = False) -> None:
        """Move to ``dest`` (same filesystem). A folder moves only when ``dest`` is absent;
        ``replace``: a file replaces ``dest``."""
        if self.local:
            (os.replace if replace else os.rename)(self.url, dest.url)
            return
        from fsspec.implementations.sftp import SFTPFileSystem
        (fs, path), target = self._remote(), dest._remote()[1]
        if not replace and fs.exists(target):
            raise FileExistsError(dest.url)
        if isinstance(fs, SFTPFileSystem):
            # OpenSSH's posix-rename: atomic, replaces a file, moves a folder whole
            fs.mv(path, target)
            return
        if replace and fs.exists(target):
            fs.rm_file(target)
        fs.mv(path, target, recursive=True)  # object stores: copy + delete

    def remove(self) -> None:
        """Remove a file or a whole folder; nothing when it is not there."""
        try:
            if self.local:
                if os.path.isdir(self.url) and not os.path.islink(self.url):
                    shutil.rmtree(self.url, ignore_errors=True)
                else:
                    os.unlink(self.url)
            else:
                fs, path = self._remote()
                fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass


class _Counted(io.RawIOBase):
    """A remote file as a raw stream: paramiko's ``write`` returns None, where polars and
    io's buffers expect the number of bytes written. Closing it leaves the file open."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.written = fh, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self.fh.write(bytes(data))
        self.written += n
        return n

    def tell(self) -> int:
        return self.written


def place(where: str | Path | Place, storage_options: Mapping[str, Any] | None = None,
          flag: str = "-o") -> Place:
    """A local path (made absolute) or a URL (SSH options for sftp:// only).

    Raises:
        ConfigError: a URL with a password, or of a protocol fsspec does not know.
    """
    if isinstance(where, Place):
        return where
    text = str(where)
    if "://" in text and not text.startswith("file://"):
        refuse_password(text, f"{flag} URL")
        protocol = text.split("://", 1)[0]
        try:
            fsspec.get_filesystem_class(fs_url(text).split("://", 1)[0])
        except (ValueError, ImportError) as e:
            raise ConfigError(f"{flag}: cannot write to {protocol}:// URLs here ({e}); install "
                              "that fsspec backend or give a local path") from None
        opts = options_for(text, dict(storage_options or {}))
        return Place(text.rstrip("/") or text, tuple(sorted(opts.items())))
    return Place(str(Path(text.removeprefix("file://")).expanduser().resolve()))
