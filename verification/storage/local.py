"""A directory as an object store: the embedded default, and the reference the S3 backend matches.

Layout under the root: ``objects/<key>`` (the bytes), ``meta/<key>.json`` (user metadata, sha256,
etag, and the size and mtime the sidecar describes) and ``tmp/`` (uploads and staged objects in
progress, on the same filesystem so publishing is an atomic link or rename; never listed). Keys are validated before any path join, and
every path is resolved and checked to stay inside the root, so a symlink cannot lead out of it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from verification.core.hashing import Digests as FullDigests
from verification.core.hashing import Hasher
from verification.core.text import printable
from verification.storage._stream import Digests, copy_with_digests, expected_sha256
from verification.storage.base import (
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StagedObject,
    StoreError,
    StoreUnavailable,
)
from verification.storage.keys import normalize_metadata, validate_key, validate_prefix

logger = logging.getLogger(__name__)

# Temporary files of writes not touched for this long were left by a process that died.
ABANDONED_AFTER = timedelta(hours=24)

_WRITE_ONCE_MODE = 0o444
_OBJECT_MODE = 0o644


class LocalStore:
    """Objects as files under ``root``; write-once objects are hard-linked into place, read-only."""

    def __init__(self, root: Path | str) -> None:
        self._root = Path(root).resolve()
        self._objects = self._root / "objects"
        self._meta = self._root / "meta"
        self._tmp = self._root / "tmp"
        self._swept = False

    def __repr__(self) -> str:
        return f"LocalStore({str(self._root)!r})"

    @property
    def url(self) -> str:
        """``file:///...`` URL of the store root."""
        return self._root.as_uri()

    @property
    def root(self) -> Path:
        """The store's root directory (resolved)."""
        return self._root

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        """Describe one object from its file and sidecar; raises :class:`ObjectNotFound`."""
        path, meta_path = self._paths(key)
        with self._os_errors(key):
            self._check_root()
            status = _stat_object(path, key, version_id)
            sidecar = _read_sidecar(meta_path, status)
        return _info(key, status, sidecar, with_metadata=True)

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """The object's file, opened for binary reading; raises :class:`ObjectNotFound`."""
        path, _ = self._paths(key)
        with self._os_errors(key):
            self._check_root()
            _stat_object(path, key, version_id)
            try:
                return path.open("rb")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise _not_found(key) from exc

    def put(
        self,
        key: str,
        data: BinaryIO,
        *,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Stream ``data`` to a temporary file, verify it, then publish it atomically.

        With ``if_absent`` the publish is ``os.link``, which fails if the key exists even when
        another writer races us, and the file becomes read-only. A plain put refuses to replace a
        read-only (write-once) file: this backend has no versions to fall back on.
        """
        path, meta_path = self._paths(key)
        values = normalize_metadata(metadata)
        expected = expected_sha256(sha256)
        with self._os_errors(key):
            self._make_dirs(key, path.parent, meta_path.parent)
            if not if_absent:
                _refuse_write_once_overwrite(path, key)
            tmp, digests = self._write_temp(data)
            try:
                if expected is not None and digests.sha256 != expected:
                    msg = (
                        f"sha256 mismatch for {key!r}: expected {expected}, "
                        f"received {digests.sha256}; nothing stored"
                    )
                    raise StoreError(msg)
                tmp.chmod(_WRITE_ONCE_MODE if if_absent else _OBJECT_MODE)
                _publish(tmp, path, key, if_absent=if_absent)
            finally:
                tmp.unlink(missing_ok=True)
            status = path.stat()
            sidecar = _sidecar(digests, status, values)
            self._write_sidecar(meta_path, sidecar)
        logger.debug("stored %s in %s (%s bytes)", printable(key), self.url, digests.size)
        return _info(key, status, sidecar, with_metadata=True)

    @contextmanager
    def stage(self) -> Iterator[StagedObject]:
        """A staged object: a file in ``tmp/``, hashed as it is written (:class:`StagingStore`).

        Publishing hard-links it into place, so until the context ends the staged file and the
        object are one file (readable at :attr:`StagedObject.path`, no copy made). Leaving the
        context removes the ``tmp/`` name on every path; only a killed process leaves one there,
        where no listing looks, until :meth:`remove_abandoned` (run before a store's first
        staged object) finds it a day later.
        """
        with self._os_errors("(staged object)"):
            self._check_root()
            self._tmp.mkdir(parents=True, exist_ok=True)
            if not self._swept:
                self._swept = True
                self.remove_abandoned()
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="stage-", suffix=".part")
        staged = _StagedFile(self, os.fdopen(fd, "wb"), Path(name))
        try:
            yield staged
        finally:
            staged.discard()

    def remove_abandoned(self, older_than: timedelta = ABANDONED_AFTER) -> int:
        """Remove the temporary files (``tmp/*.part``) that interrupted writes left: files not
        written for ``older_than``, far longer than any write or analysis holds one (a staged
        file is read by the analysis at most ``analysis_timeout`` after its last write). Never
        touches ``objects/`` or ``meta/``. Returns how many were removed; runs once per store
        before its first staged object."""
        limit = (datetime.now(UTC) - older_than).timestamp()
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.endswith(".part") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < limit:
                    Path(entry.path).unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its writer, or another sweep, removed it first
        if removed:
            logger.info("removed %d temporary file(s) left by interrupted writes", removed)
        return removed

    def list(
        self, prefix: str = "", *, modified_since: datetime | None = None
    ) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key (UTF-8 byte) order.

        Symbolic links are never followed; ``metadata`` is empty, as in S3 listings (use head).
        With ``modified_since``, a file unchanged since then is skipped on its directory
        entry's times alone, before its metadata file is read, and a directory unchanged since
        then is not looked into for files (a file rewritten in place, not through the store, is
        found by the next listing without ``modified_since``). "Changed" is the later of the
        modification and the status-change time: a file copied in with its old modification
        time kept (``cp -p``, ``rsync -a``), or a directory copied so, is still new, since its
        status-change time is when it arrived and no one can set it back.
        """
        since = None if modified_since is None else _ns(modified_since)
        validate_prefix(prefix)
        directory_key = prefix.rpartition("/")[0]
        start = (
            self._objects.joinpath(*directory_key.split("/")) if directory_key else self._objects
        )
        with self._os_errors(prefix):
            self._check_root()
            _check_inside(start, self._objects, prefix)
            if not start.is_dir() or start.is_symlink():
                return
            base = f"{directory_key}/" if directory_key else ""
            for key, entry in _walk(start, base, prefix, since):
                status = entry.stat(follow_symlinks=False)
                if since is not None and _changed_ns(status) < since:
                    continue
                yield _info(key, status, _read_sidecar(self._meta_path(key), status))

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def _paths(self, key: str) -> tuple[Path, Path]:
        """Object and sidecar paths for a validated key, both checked to stay inside the root."""
        validate_key(key)
        path = self._objects.joinpath(*key.split("/"))
        meta_path = self._meta_path(key)
        _check_inside(path, self._objects, key)
        _check_inside(meta_path, self._meta, key)
        return path, meta_path

    def _meta_path(self, key: str) -> Path:
        *parents, name = key.split("/")
        return self._meta.joinpath(*parents, f"{name}.json")

    def _check_root(self) -> None:
        """A missing root is an empty store; a root that is not a directory is unusable."""
        try:
            mode = self._root.stat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            msg = f"local store root {self._root} is not a directory"
            raise StoreUnavailable(msg)

    def _make_dirs(self, key: str, *directories: Path) -> None:
        self._check_root()
        self._tmp.mkdir(parents=True, exist_ok=True)
        for directory in directories:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                msg = f"key {key!r} needs a directory where an object already is"
                raise StoreError(msg) from exc

    def _write_temp(self, data: BinaryIO) -> tuple[Path, Digests]:
        """Copy ``data`` into a fsynced temporary file in ``tmp/``; returns its path and digests."""
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-", suffix=".part")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as sink:
                digests = copy_with_digests(data, sink)
                sink.flush()
                os.fsync(sink.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digests

    def _publish_staged(self, staged: _StagedFile, key: str, sha256: str | None) -> ObjectInfo:
        """Publish ``staged`` as the write-once ``key``: the same steps and fsyncs as a write-once
        :meth:`put` (file, directory, sidecar, directory), without reading the bytes again."""
        path, meta_path = self._paths(key)
        expected = expected_sha256(sha256)
        digests = staged.digests()
        with self._os_errors(key):
            self._make_dirs(key, path.parent, meta_path.parent)
            if expected is not None and digests.sha256 != expected:
                staged.close()
                msg = (
                    f"sha256 mismatch for {key!r}: expected {expected}, "
                    f"staged {digests.sha256}; nothing stored"
                )
                raise StoreError(msg)
            if _is_file(path):  # the usual duplicate: spare the fsync the link would need
                staged.close()
                msg = f"object {key!r} already exists"
                raise ObjectExists(msg)
            staged.close(sync=True)
            staged.path.chmod(_WRITE_ONCE_MODE)
            _publish(staged.path, path, key, if_absent=True)
            status = path.stat()
            sidecar = _sidecar(digests, status, {})
            self._write_sidecar(meta_path, sidecar)
        logger.debug("published %s in %s (%s bytes)", printable(key), self.url, digests.size)
        return _info(key, status, sidecar, with_metadata=True)

    def _write_sidecar(self, meta_path: Path, sidecar: Mapping[str, Any]) -> None:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="meta-", suffix=".part")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as sink:
                json.dump(sidecar, sink, ensure_ascii=False, sort_keys=True)
                sink.flush()
                os.fsync(sink.fileno())
            tmp.chmod(_OBJECT_MODE)
            tmp.replace(meta_path)
            _fsync_directory(meta_path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def _os_errors(self, key: str) -> Iterator[None]:
        """Turn operating-system failures into store errors that name the store, not the data."""
        try:
            yield
        except PermissionError as exc:
            msg = f"local store {self._root} refused access ({exc.strerror}) for key {key!r}"
            raise StoreUnavailable(msg) from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                msg = f"object key {key!r} has a component too long for the filesystem"
                raise InvalidKey(msg) from exc
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO):
                msg = f"local store {self._root} cannot write ({exc.strerror})"
                raise StoreUnavailable(msg) from exc
            msg = f"local store {self._root} failed for key {key!r} ({exc.strerror})"
            raise StoreError(msg) from exc


class _StagedFile:
    """One staged object of a :class:`LocalStore` (see :meth:`LocalStore.stage`)."""

    def __init__(self, store: LocalStore, sink: BinaryIO, path: Path) -> None:
        self._store = store
        self._sink: BinaryIO | None = sink
        self._path = path
        self._hasher = Hasher()

    @property
    def path(self) -> Path:
        """The staged file (after publishing, one file with the object)."""
        return self._path

    def write(self, data: bytes) -> int:
        """Append ``data`` to the file and to the digests."""
        if self._sink is None:
            msg = "a staged object takes no more bytes once published or closed"
            raise StoreError(msg)
        with self._store._os_errors("(staged object)"):
            self._sink.write(data)
        self._hasher.update(data)
        return len(data)

    def digests(self) -> FullDigests:
        """SHA-256, SHA-1, MD5 and size of what was written."""
        return self._hasher.digests()

    def publish(self, key: str, *, sha256: str | None = None) -> ObjectInfo:
        """Publish as the write-once ``key`` (see :meth:`StagedObject.publish`)."""
        if self._sink is None:
            msg = "a staged object is published at most once"
            raise StoreError(msg)
        return self._store._publish_staged(self, key, sha256)

    def close(self, *, sync: bool = False) -> None:
        """Stop writing; with ``sync``, flush the bytes to disk first (publishing needs them)."""
        if self._sink is None:
            return
        sink, self._sink = self._sink, None
        with sink:
            if sync:
                sink.flush()
                os.fsync(sink.fileno())

    def discard(self) -> None:
        """Close and remove the staged name (a published object keeps its own name)."""
        try:
            self.close()
        finally:
            self._path.unlink(missing_ok=True)


def _not_found(key: str) -> ObjectNotFound:
    return ObjectNotFound(f"no object {key!r}")


def _check_inside(path: Path, base: Path, key: str) -> None:
    """Defence in depth after validate_key: the resolved path (symlinks followed) stays in base."""
    try:
        resolved = path.resolve()
        resolved_base = base.resolve()
    except RuntimeError as exc:  # symlink loop (Python 3.11 raises RuntimeError)
        msg = f"object key {key!r} resolves through a symlink loop"
        raise InvalidKey(msg) from exc
    if resolved != resolved_base and not resolved.is_relative_to(resolved_base):
        msg = f"object key {key!r} resolves outside the store"
        raise InvalidKey(msg)


def _stat_object(path: Path, key: str, version_id: str | None) -> os.stat_result:
    if version_id is not None:
        msg = f"no version {version_id!r} of {key!r}: the local store keeps no versions"
        raise ObjectNotFound(msg)
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _not_found(key) from exc
    if not stat.S_ISREG(status.st_mode):
        raise _not_found(key)
    return status


def _read_sidecar(meta_path: Path, status: os.stat_result) -> dict[str, Any] | None:
    """The sidecar if it describes this very file (same size and mtime), else None."""
    try:
        with meta_path.open(encoding="utf-8") as source:
            sidecar = json.load(source)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("ignoring unreadable metadata sidecar %s", printable(str(meta_path)))
        return None
    if not isinstance(sidecar, dict) or (sidecar.get("size"), sidecar.get("mtime_ns")) != (
        status.st_size,
        status.st_mtime_ns,
    ):
        logger.warning(
            "ignoring metadata sidecar %s: it describes another file", printable(str(meta_path))
        )
        return None
    return sidecar


def _sidecar(
    digests: Digests | FullDigests, status: os.stat_result, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """What an object's metadata file holds: its digests, the size and mtime it was written
    with (a file changed behind the store's back no longer agrees), and the user metadata."""
    return {
        "sha256": digests.sha256,
        "etag": digests.md5,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "metadata": dict(metadata),
    }


def _info(
    key: str,
    status: os.stat_result,
    sidecar: Mapping[str, Any] | None,
    *,
    with_metadata: bool = False,
) -> ObjectInfo:
    if sidecar is None:
        # A file placed by hand: an etag that still changes whenever the content is replaced.
        etag = f"{status.st_size:x}-{status.st_mtime_ns:x}"
        metadata: dict[str, str] = {}
    else:
        etag = str(sidecar["etag"])
        metadata = dict(sidecar.get("metadata", {})) if with_metadata else {}
    return ObjectInfo(
        key=key,
        size=status.st_size,
        etag=etag,
        last_modified=datetime.fromtimestamp(status.st_mtime, tz=UTC),
        version_id=None,
        metadata=metadata,
    )


def _refuse_write_once_overwrite(path: Path, key: str) -> None:
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISREG(mode) and not mode & 0o222:
        msg = f"object {key!r} was written write-once and cannot be replaced"
        raise ObjectExists(msg)


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _publish(tmp: Path, path: Path, key: str, *, if_absent: bool) -> None:
    try:
        if if_absent:
            os.link(tmp, path)
        else:
            tmp.replace(path)
    except FileExistsError as exc:
        msg = f"object {key!r} already exists"
        raise ObjectExists(msg) from exc
    except IsADirectoryError as exc:
        msg = f"key {key!r} is a directory of other objects"
        raise StoreError(msg) from exc
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sort_name(entry: os.DirEntry[str]) -> bytes:
    """Directories sort as ``name/`` so a depth-first walk yields keys in UTF-8 byte order."""
    suffix = "/" if entry.is_dir(follow_symlinks=False) else ""
    return os.fsencode(entry.name + suffix)


def _ns(moment: datetime) -> int:
    """A time as nanoseconds since the epoch (naive times are UTC)."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _changed_ns(status: os.stat_result) -> int:
    """When a file or directory last changed: its modification time, or its status-change
    time when later (a copy that kept an old modification time, a rename, a new link)."""
    return max(status.st_mtime_ns, status.st_ctime_ns)


def _walk(
    directory: Path, base: str, prefix: str, since: int | None = None
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(key, directory entry) of regular files under ``directory`` whose key starts with
    ``prefix``.

    With ``since`` (ns), a directory unchanged since then (no entry added, renamed or removed:
    the store publishes every object by link or rename; see :func:`_changed_ns`) yields none
    of its files, only what its subdirectories hold, so an old collection costs one directory
    scan, not a stat per file; and no scan at all when the directory's link count says it has
    no subdirectories (ext4, XFS and tmpfs count them; a file system that does not reports 1,
    and the directory is scanned).
    """
    status = directory.stat()
    quiet = since is not None and _changed_ns(status) < since
    if quiet and status.st_nlink == 2:
        return  # no subdirectories either (a directory's link count is 2 + its subdirectories)
    with os.scandir(directory) as scan:
        if quiet:
            entries = sorted((e for e in scan if e.is_dir(follow_symlinks=False)), key=_sort_name)
        else:
            entries = sorted(scan, key=_sort_name)
    for entry in entries:
        key = base + entry.name
        if not _is_utf8(entry.name):
            logger.warning("skipping %r in the local store: name is not UTF-8", entry.path)
            continue
        if entry.is_dir(follow_symlinks=False):
            child = key + "/"
            if child.startswith(prefix) or prefix.startswith(child):
                yield from _walk(Path(entry.path), child, prefix, since)
        elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
            yield key, entry


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
