"""``dsaccess collect``: copy access logs from many servers into a staging area.

For each server, ``STAGE/<server>/`` receives its logs and ``MANIFEST.json``
says what was collected (size, remote mtime, sha256, and for the live file the
offset and a fingerprint of its head). A collect is incremental and safe:

- rotated files (``access.YYYYMMDD-HHMMSS[.gz]``, logrotate's dateext
  ``access-YYYYMMDD[.gz]``; its numbered ``access.1``, renamed at every rotation, are
  refused, named) never change: each is fetched
  once, into a hidden ``.NAME.part`` file that is renamed only when complete and
  verified; an interrupted transfer resumes from the part file next time;
- the live ``access`` grows: only the new complete lines are fetched, and the
  local copy is replaced by a longer one, never rewritten shorter;
- when the live file was rotated (it shrank, or its head changed), the old local
  copy is moved to ``STAGE/<server>/.retired/`` (kept, out of the runs' sight),
  because the rotated file that now holds those lines is fetched in full;
- nothing in STAGE is deleted or truncated;
- crash-safe: a new live copy is recorded in the manifest as *pending* before it is
  renamed into place, and every collect first checks the copy against the manifest
  (size and sha256), so a kill at any step leaves a state the next collect recognises:
  the old copy, or the new one; a copy that matches neither is retired and fetched anew;
- rotated files are fetched before the live file, so a rotation's old live copy is
  retired only once the rotated file holding its lines is in STAGE.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import _core
from ..config import ServerConfig
from ..errors import SourceError
from ..names import printable
from .source import LOG_NAME, TRANSIENT_ERRORS, remote_listing, remote_open, rotation_key

log = logging.getLogger(__name__)

HEAD_BYTES = 4096           # identity of the live file: a hash of its first bytes
BLOCK = 1 << 20
RETRIES = 3
BACKOFF_SECONDS = 1.0
MANIFEST = "MANIFEST.json"


@dataclass
class ServerOutcome:
    """What collecting one server did (each file counted once, whatever the retries)."""

    server: str
    fetched: list[str] = field(default_factory=list)
    bytes: int = 0
    unchanged: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def skipped(self) -> int:
        """Files left as they were: already collected, or older than --since."""
        return len(self.unchanged - set(self.fetched))

    def got(self, name: str, nbytes: int) -> None:
        if name not in self.fetched:
            self.fetched.append(name)
        self.bytes += nbytes

    def refuse(self, text: str) -> None:
        if text not in self.refused:
            self.refused.append(text)


Progress = Callable[[str, int], None]  # (server, bytes just copied)


def collect(servers: tuple[ServerConfig, ...], stage: Path, *, accept_new_host_keys: bool = False,
            since: int | None = None, parallel: int = 4,
            progress: Progress | None = None) -> list[ServerOutcome]:
    """Collect every server (in parallel, bounded); one failure does not stop the others.

    Args:
        servers: from ``config.load_servers``.
        stage: the staging directory.
        accept_new_host_keys: record unknown host keys instead of refusing them.
        since: UTC nanoseconds: skip rotated files whose name stamp is older (the stamp is
            the server's local time: its zone is read from the newest log's first line).
        parallel: servers collected at once.
        progress: called with bytes copied, for a progress display.
    """
    stage.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(servers)))) as pool:
        futures = [pool.submit(_with_retries, s, stage, accept_new_host_keys, since, progress)
                   for s in servers]
        return [f.result() for f in futures]


def _with_retries(server: ServerConfig, stage: Path, accept_new: bool, since: int | None,
                  progress: Progress | None) -> ServerOutcome:
    outcome = ServerOutcome(server.name)
    for attempt in range(1, RETRIES + 1):
        try:
            collect_server(server, stage, outcome, accept_new, since, progress)
            outcome.error = None
            return outcome
        except SourceError as e:
            outcome.error = str(e)
            if "host key" in str(e) or "authentication failed" in str(e):
                return outcome  # retrying cannot fix a key problem
        except TRANSIENT_ERRORS as e:  # dropped connection, timeout: try again
            outcome.error = f"{server.name}: {type(e).__name__}: {e}"
        log.info("collect %s failed (attempt %d): %s", server.name, attempt, outcome.error)
        if attempt < RETRIES:
            time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    return outcome


def collect_server(server: ServerConfig, stage: Path, outcome: ServerOutcome,
                   accept_new: bool = False, since: int | None = None,
                   progress: Progress | None = None) -> None:
    """One pass over one server (raises on connection trouble; the caller retries)."""
    folder = stage / server.name
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(folder)
    options = server.storage_options(accept_new)
    fs, listing = remote_listing(server.logs, options)
    logs = []
    for remote in listing:
        name = remote["name"].rstrip("/").rsplit("/", 1)[-1]
        if not _safe_name(name):
            outcome.refuse(printable(name))
            log.warning("refused remote name %s on %s", printable(name), server.name)
            continue
        m = LOG_NAME.fullmatch(name)
        if m and (m["rotated"] or "").startswith("."):
            # logrotate's access.1 becomes access.2 at the next rotation: a copy kept
            # under its name would be overwritten by other lines
            outcome.refuse(f"{name} (logrotate's numbered rotations are renamed each time: "
                           "set dateext for this log)")
        elif m:
            logs.append((rotation_key(name), name, m["stamp"], remote))
    logs.sort(key=lambda t: t[0])  # rotated files by stamp, then the live file
    stamp_since = _local_stamp(fs, logs, since) if since is not None else None
    for _, name, stamp, remote in logs:
        if name == "access":
            _collect_live(fs, remote, folder, manifest, outcome, progress)
        elif stamp and stamp_since and stamp < stamp_since:
            outcome.unchanged.add(name)
        else:  # (logrotate's dateext names never change, but say no time to --since)
            _collect_rotated(fs, remote, name, folder, manifest, outcome, progress)


def _zone(head: bytes) -> timedelta | None:
    """The UTC offset of the first line of ``head`` that opens with a 389 timestamp (read
    by the tokenizer's parser); None when no line does."""
    for line in head.split(b"\n"):
        end = line.find(b"]")
        if line.startswith(b"[") and end > 0:
            try:
                _, minutes = _core.parse_stamp(line[:end + 1].decode("ascii", "replace"))
            except ValueError:
                continue
            return timedelta(minutes=minutes)
    return None


def _local_stamp(fs: Any, logs: list[tuple[Any, str, str | None, dict[str, Any]]],
                 since: int) -> str:
    """``since`` (UTC) as a rotation stamp ``YYYYMMDD-HHMMSS`` in the server's local time,
    the zone of the first timestamp in its newest log (UTC when none says)."""
    offset = timedelta(0)
    for _, name, _, remote in reversed(logs):
        try:
            with remote_open(fs, remote["name"]) as fh:
                head = fh.read(HEAD_BYTES)
            if name.endswith(".gz"):
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except (OSError, zlib.error, *TRANSIENT_ERRORS):
            continue
        found = _zone(head)
        if found is not None:
            offset = found
            break
    local = datetime.fromtimestamp(since // 10**9, tz=UTC) + offset
    return local.strftime("%Y%m%d-%H%M%S")


def _collect_rotated(fs: Any, remote: dict[str, Any], name: str, folder: Path,
                     manifest: dict[str, Any], outcome: ServerOutcome,
                     progress: Progress | None) -> None:
    size = int(remote["size"])
    known = manifest["files"].get(name)
    local = folder / name
    if known and known["size"] == size and local.exists() and local.stat().st_size == size:
        outcome.unchanged.add(name)
        return
    if local.exists() and local.stat().st_size > size:
        outcome.refuse(f"{printable(name)} (remote copy is shorter than the collected one)")
        return
    part = folder / f".{name}.part"
    have = part.stat().st_size if part.exists() else 0
    if have > size:  # a part file from a different remote file: keep it aside, start over
        os.replace(part, _retire(folder, part.name))
        have = 0
    received = _sha256(part) if have else hashlib.sha256()
    with remote_open(fs, remote["name"]) as src, open(part, "ab") as dst:
        src.seek(have)  # resume an interrupted transfer
        _copy(src, dst, size - have, folder.name, progress, received)
        dst.flush()
        os.fsync(dst.fileno())
    got = part.stat().st_size
    if got != size:
        raise OSError(f"short transfer of {name}: {got} of {size} bytes")
    digest = _sha256(part).hexdigest()
    if digest != received.hexdigest():  # what landed on disk is not what came
        os.replace(part, _retire(folder, part.name))
        raise OSError(f"{name}: the copy on disk differs from the bytes received; retried")
    os.replace(part, local)
    manifest["files"][name] = {"size": size, "mtime": _mtime(remote), "sha256": digest,
                               "collected_at": _now()}
    _save_manifest(folder, manifest)
    outcome.got(name, size - have)


def _settle_live(folder: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The live copy's verified state: the one of the manifest's ``live`` or
    ``live_pending`` records that the copy on disk matches (size and sha256); None when
    there is no copy, or it matches neither (then it is retired, to be fetched anew)."""
    local = folder / "access"
    pending, live = manifest.pop("live_pending", None), manifest.get("live")
    state = None
    if local.exists():
        size, digest = local.stat().st_size, None
        for candidate in (pending, live):
            if candidate and candidate.get("offset") == size:
                digest = digest or _sha256(local).hexdigest()
                if candidate.get("sha256") == digest:
                    state = candidate
                    break
        if state is None:
            os.replace(local, _retire(folder, "access"))
    if state is not live or pending is not None:
        manifest["live"] = state
        _save_manifest(folder, manifest)
    return state


def _collect_live(fs: Any, remote: dict[str, Any], folder: Path, manifest: dict[str, Any],
                  outcome: ServerOutcome, progress: Progress | None) -> None:
    size = int(remote["size"])
    live = _settle_live(folder, manifest) or {}
    local = folder / "access"
    offset = int(live.get("offset", 0))
    with remote_open(fs, remote["name"]) as src:
        head = src.read(min(HEAD_BYTES, size))
        same_file = (offset > 0 and size >= offset and
                     hashlib.sha256(head[: live.get("head_len", 0)]).hexdigest()
                     == live.get("head_sha256"))
        if local.exists() and not same_file:
            # rotated since last time: its lines are now in a rotated file, fetched whole
            # before this one; keep the old copy aside rather than replace it
            os.replace(local, _retire(folder, "access"))
            manifest["live"] = None
            _save_manifest(folder, manifest)
            offset = 0
        if size == offset:
            outcome.unchanged.add("access")
            return
        src.seek(offset)
        tmp = folder / ".access.part"
        with open(tmp, "wb") as dst:
            if offset:
                with open(local, "rb") as old:
                    shutil.copyfileobj(old, dst, BLOCK)
            copied = _copy(src, dst, size - offset, folder.name, progress)
            dst.flush()
            # only whole lines: the server may be writing the last one right now
            end = dst.tell()
            dst.seek(0)
            cut = _last_newline(tmp, end)
            dst.truncate(cut)
            dst.flush()
            os.fsync(dst.fileno())
    if cut <= offset:
        tmp.unlink()  # nothing complete yet (never shorter than what we have)
        outcome.unchanged.add("access")
        return
    head_len = min(len(head), cut)
    _crash_point("live-written")
    # the new state first, as pending: a kill between here and the save below leaves a
    # manifest that names both copies, and _settle_live finds which one is on disk
    manifest["live_pending"] = {
        "name": "access", "offset": cut, "remote_size": size, "mtime": _mtime(remote),
        "head_len": head_len, "head_sha256": hashlib.sha256(head[:head_len]).hexdigest(),
        "sha256": _sha256(tmp).hexdigest(), "collected_at": _now()}
    _save_manifest(folder, manifest)
    _crash_point("live-pending")
    os.replace(tmp, local)
    _crash_point("live-renamed")
    manifest["live"] = manifest.pop("live_pending")
    _save_manifest(folder, manifest)
    _crash_point("live-saved")
    outcome.got("access", min(copied, cut - offset))


CRASH_STEPS = ("live-written", "live-pending", "live-renamed", "live-saved")


def _crash_point(step: str) -> None:
    # The test hook of the crash-safety test: DSACCESS_COLLECT_KILL_AT=<step> kills this
    # process at that step, as SIGKILL would at any moment (nothing else reads it).
    if os.environ.get("DSACCESS_COLLECT_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _copy(src: Any, dst: Any, length: int, server: str, progress: Progress | None,
          received: Any = None) -> int:
    done = 0
    while done < length:
        block = src.read(min(BLOCK, length - done))
        if not block:
            break
        dst.write(block)
        if received is not None:
            received.update(block)
        done += len(block)
        if progress:
            progress(server, len(block))
    return done


def _last_newline(path: Path, end: int) -> int:
    with open(path, "rb") as fh:
        pos = end
        while pos > 0:
            start = max(0, pos - BLOCK)
            fh.seek(start)
            block = fh.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            pos = start
    return 0


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and ".." not in name \
        and not any(ord(ch) < 32 or ord(ch) == 127 for ch in name)


def _retire(folder: Path, name: str) -> Path:
    retired = folder / ".retired"
    retired.mkdir(exist_ok=True)
    return retired / f"{name}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}"


def _sha256(path: Path) -> Any:
    """The sha256 of a file (a hash object: ``.hexdigest()``, or go on ``.update()``)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    return h


def _load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        return {"server": folder.name, "files": {}, "live": None}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise SourceError(f"corrupt manifest: {path} ({e}); move it aside and collect again "
                          "(files already collected are kept and re-verified)") from None


def _save_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write-temp, fsync, rename: a kill leaves the old manifest or the new one."""
    tmp = folder / f".{MANIFEST}.part"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST)


def _mtime(remote: dict[str, Any]) -> str | None:
    value = remote.get("mtime")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
