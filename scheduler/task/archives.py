"""Unpacking archives added with sc.addArchive / --archives, safely.

An archive comes from the user (or, on an executor, from the driver), and a
hostile one must not write outside the directory it unpacks to: members with
absolute names or `..` parts, links that point outside, members written
through a link extracted earlier, devices and FIFOs are refused with
`UnsafeArchiveError`, naming the member, and nothing of the archive is left.
Unpacking goes to a temporary directory beside the destination, renamed into
place once complete, so a reader sees the whole tree or none of it.

Formats are Spark's (`Utils.unpack`): .zip and .jar (zip), .tar, .tar.gz / .tgz.
This module only reads archives and writes files; it knows nothing of tasks.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib

__all__ = ["ARCHIVE_SUFFIXES", "UnsafeArchiveError", "archive_kind", "unpack_archive"]

#: What addArchive accepts, as Spark's Utils.unpack does.
ARCHIVE_SUFFIXES = (".zip", ".jar", ".tar", ".tar.gz", ".tgz")

#: Permission bits kept from an archive: never setuid, setgid or sticky.
_MODE_BITS = 0o777


class UnsafeArchiveError(ValueError):
    """An archive member would land outside its destination, or is not a file, dir or link."""


def archive_kind(name: str) -> str:
    """ "zip" or "tar" for a supported archive name.

    Raises:
        ValueError: an extension addArchive cannot unpack.
    """
    lower = name.lower()
    if lower.endswith((".zip", ".jar")):
        return "zip"
    if lower.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    raise ValueError(
        f"cannot unpack {name!r}: archives must end with {', '.join(ARCHIVE_SUFFIXES)}"
    )


def unpack_archive(source: str, dest: str, name: str | None = None) -> None:
    """Unpack the archive at `source` into the new directory `dest`.

    `name` (default: the base name of `source`) decides the format. An existing
    `dest` is replaced only once the new tree is complete.

    Raises:
        UnsafeArchiveError: a member that would escape `dest` or is of a refused kind.
        ValueError: an unsupported extension, or a corrupt archive.
        OSError: the archive cannot be read or the tree written.
    """
    kind = archive_kind(name or os.path.basename(source))
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(dest)}.unpack-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.mkdir(staging)
    try:
        try:
            if kind == "zip":
                _unzip(source, staging)
            else:
                _untar(source, staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise ValueError(f"{source} is corrupt: {type(exc).__name__}: {exc}") from None
        _check_links_resolve_inside(staging)
        if os.path.lexists(dest):
            shutil.rmtree(dest)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _safe_parts(member: str) -> list[str]:
    """The path parts of a member name, refusing any that could leave the destination."""
    if "\x00" in member or member.startswith(("/", "\\")) or (len(member) > 1 and member[1] == ":"):
        raise UnsafeArchiveError(f"archive member {member!r} has an absolute path")
    parts = [p for p in member.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {member!r} points outside the archive (..)")
    return parts


def _target(root: str, member: str) -> str | None:
    """Where `member` goes under `root` (None for the root itself), checked against links."""
    parts = _safe_parts(member)
    if not parts:
        return None
    target = os.path.join(root, *parts)
    # A link extracted earlier must not carry a later member outside the root.
    real_parent = os.path.realpath(os.path.dirname(target))
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_parent, real_root]) != real_root:
        raise UnsafeArchiveError(f"archive member {member!r} would be written through a link")
    if os.path.islink(target) or (os.path.exists(target) and not os.path.isdir(target)):
        raise UnsafeArchiveError(f"archive member {member!r} appears twice or replaces a link")
    return target


def _check_link(root: str, member: str, link: str) -> None:
    """Refuse a symbolic link whose target is absolute or resolves outside `root`."""
    if not link or os.path.isabs(link) or link.startswith("\\"):
        raise UnsafeArchiveError(f"archive link {member!r} -> {link!r} is absolute")
    parts = _safe_parts(member)
    resolved = os.path.normpath(os.path.join(root, *parts[:-1], link))
    real_root = os.path.normpath(root)
    if os.path.commonpath([resolved, real_root]) != real_root:
        raise UnsafeArchiveError(f"archive link {member!r} -> {link!r} points outside the archive")


def _check_links_resolve_inside(root: str) -> None:
    """Refuse the tree if any link, followed through the others, leads outside `root`.

    Each link was checked on its own as it was extracted; a chain of them (a link to
    '.' and another through it to '..') can still lead out, which only resolving finds.
    """
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([real, real_root]) != real_root:
                member = os.path.relpath(path, root)
                raise UnsafeArchiveError(f"archive link {member!r} leads outside the archive")


def _mode(bits: int, default: int) -> int:
    mode = (bits & _MODE_BITS) or default
    return mode | stat.S_IRUSR | stat.S_IWUSR  # we must be able to read it and clean it up


def _unzip(source: str, root: str) -> None:
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{source} is not a readable zip archive: {exc}") from None
    with archive:
        directories: list[tuple[str, int]] = []
        for info in archive.infolist():
            unix = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(unix):
                link = archive.read(info).decode("utf-8", "surrogateescape")
                _check_link(root, info.filename, link)
                target = _target(root, info.filename)
                if target is not None:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.symlink(link, target)
                continue
            if stat.S_IFMT(unix) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type given
                raise UnsafeArchiveError(f"archive member {info.filename!r} is not a regular file")
            target = _target(root, info.filename)
            if target is None:
                continue
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                directories.append((target, _mode(unix, 0o755)))
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                with archive.open(info) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except zipfile.BadZipFile as exc:
                raise ValueError(f"{source}: member {info.filename!r} is corrupt: {exc}") from None
            os.chmod(target, _mode(unix, 0o644))
        for path, mode in reversed(directories):
            os.chmod(path, mode | stat.S_IXUSR)


def _untar(source: str, root: str) -> None:
    try:
        archive = tarfile.open(source)  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise ValueError(f"{source} is not a readable tar archive: {exc}") from None
    with archive:
        directories: list[tuple[str, int]] = []
        for member in archive:
            if member.issym():
                _check_link(root, member.name, member.linkname)
                target = _target(root, member.name)
                if target is not None:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.symlink(member.linkname, target)
                continue
            if member.islnk():
                # A hard link names another member: copied from where that one landed.
                linked = _target_of_existing(root, member.linkname, member.name)
                target = _target(root, member.name)
                if target is not None:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(linked, target)
                continue
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"archive member {member.name!r} is not a regular file, directory or link"
                )
            target = _target(root, member.name)
            if target is None:
                continue
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                directories.append((target, _mode(member.mode, 0o755)))
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = archive.extractfile(member)
            if src is None:
                raise ValueError(f"{source}: member {member.name!r} cannot be read")
            with src, open(target, "xb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(target, _mode(member.mode, 0o644))
        for path, mode in reversed(directories):
            os.chmod(path, mode | stat.S_IXUSR)


def _target_of_existing(root: str, linkname: str, member: str) -> str:
    parts = _safe_parts(linkname)
    path = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not parts or os.path.commonpath([real, real_root]) != real_root or not os.path.isfile(real):
        raise UnsafeArchiveError(
            f"archive hard link {member!r} -> {linkname!r} names no file extracted before it"
        )
    return real
