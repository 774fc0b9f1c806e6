"""Reading file trees from folders and archives (tar, tar.gz, tar.xz, zip), safely.

Archives are read member by member without touching the disk when they fit the memory budget;
otherwise they are extracted with Python's "data" filter, which refuses members or links that would
land outside the target folder.
"""

from __future__ import annotations

import errno
import lzma
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import DeepresError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".zip")
# What the folder being written to raises (not the archive's fault).
WRITE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG}
# What a damaged archive raises, across compressions.
CORRUPT_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error, OSError)


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(ARCHIVE_SUFFIXES)


def _safe_name(archive: Path, name: str) -> str:
    """A member's relative path; refuses absolute paths and '..' that would leave the archive."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DeepresError(f"{archive}: member {name!r} points outside the archive's folder; refusing to read it")
    return str(p)


def read_archive(path: Path, budget_bytes: int) -> tuple[dict[str, bytes], set[str]] | None:
    """({relative path: bytes} of its regular files, its folders), or None if over the budget.

    Links are never followed; a link whose target leaves the archive is refused.
    """
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    total = 0
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        dirs.add(_safe_name(path, info.filename).rstrip("/"))
                        continue
                    total += info.file_size
                    if total > budget_bytes:
                        return None
                    files[_safe_name(path, info.filename)] = zf.read(info)
            return files, dirs
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                name = _safe_name(path, member.name)
                if member.issym() or member.islnk():
                    target = PurePosixPath(name).parent / member.linkname
                    if member.linkname.startswith("/") or _escapes(target):
                        raise DeepresError(
                            f"{path}: link {member.name!r} -> {member.linkname!r} points "
                            "outside the archive's folder; refusing to read it"
                        )
                    continue
                if member.isdir():
                    dirs.add(name)
                if not member.isfile():
                    continue
                total += member.size
                if total > budget_bytes:
                    return None
                f = tf.extractfile(member)
                files[name] = f.read() if f else b""
            _check_complete(tf, path)
    except DeepresError:
        raise
    except CORRUPT_ERRORS as e:
        raise DeepresError(f"{path}: truncated or corrupt archive ({type(e).__name__}: {_first_line(e)})") from None
    return files, dirs


def _check_complete(tf: tarfile.TarFile, path: Path) -> None:
    """tarfile stops reading quietly at a damaged member header (only one at the very start raises),
    which would leave the members after it out: what follows the last member must be the
    end-of-archive zero blocks. Reading to the end also runs a gzip stream's CRC check."""
    assert tf.fileobj is not None
    tf.fileobj.seek(tf.offset)
    while chunk := tf.fileobj.read(1 << 16):
        if chunk.strip(b"\0"):
            raise DeepresError(
                f"{path}: corrupt archive: the member header at byte {tf.offset} is damaged "
                f"({len(tf.getmembers())} members could be read before it)"
            )


def _escapes(p: PurePosixPath) -> bool:
    depth = 0
    for part in p.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def safe_extract(path: Path, target: Path) -> Path:
    """Extract an archive into ``target``, refusing members and links that leave it."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    _safe_name(path, info.filename)
                zf.extractall(target)
        else:
            with tarfile.open(path, "r:*") as tf:
                members = tf.getmembers()
                _check_complete(tf, path)  # before writing anything
                tf.extractall(target, members=members, filter="data")
    except tarfile.FilterError as e:
        raise DeepresError(f"{path}: refusing to extract: {e}") from None
    except DeepresError:
        raise
    except OSError as e:
        if e.errno in WRITE_ERRNOS:
            raise  # the target refused the files: the caller says where and why
        raise DeepresError(f"{path}: truncated or corrupt archive ({type(e).__name__}: {_first_line(e)})") from None
    except CORRUPT_ERRORS as e:
        raise DeepresError(f"{path}: truncated or corrupt archive ({type(e).__name__}: {_first_line(e)})") from None
    return target


def _first_line(e: Exception) -> str:
    # tarfile's ReadError lists every compression it tried, one per line.
    return str(e).strip().splitlines()[0].rstrip(":") if str(e).strip() else "no detail"
