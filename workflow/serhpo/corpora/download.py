"""The ``download`` stage: fetch a corpus resumably, verify its SHA-256, unpack it safely.

Two modes:

- ``archive``: one zip or tar(.gz) file (EmoDB, RAVDESS) is downloaded into a work folder,
  verified, and extracted into a temporary folder beside ``dest`` that is renamed into place.
- ``file_list``: a base URL plus relative paths fetched one by one (CREMA-D, whose files live
  in a Git LFS repository); the digest covers every file (see :func:`tree_sha256`).

Partial downloads are kept as ``<name>.part`` and resumed with an HTTP Range request. A marker
file in ``dest`` records the URL and digest, so a rerun with the same inputs does nothing.

Example:
    $ serhpo download --corpus emodb --url http://emodb.bilderbar.info/download/download.zip \\
        --sha256 none --dest resources/corpora/emodb/raw
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from serhpo import __version__
from serhpo.errors import UserError
from serhpo.files import honour_umask

logger = logging.getLogger(__name__)

#: Written into ``dest`` last: its presence means the corpus there is complete.
MARKER_NAME = ".serhpo-download.json"
#: The per-file digests of a ``file_list`` download, in ``sha256sum -c`` format.
CHECKSUMS_NAME = "SHA256SUMS"
#: CREMA-D's Git LFS media host: serves the audio itself, not the LFS pointer files.
CREMAD_MEDIA_URL = (
    "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/"
)
#: The list of CREMA-D's 7442 utterances, at the top of its repository.
CREMAD_SENTENCE_LIST = "SentenceFilenames.csv"

_CHUNK_BYTES = 1 << 20
_LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
_USER_AGENT = f"serhpo/{__version__} (corpus download; Python urllib)"
_SAFE_RELATIVE_PATH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


class _Interrupted(Exception):
    """A transfer stopped before its end; the ``.part`` file can be resumed."""


def normalise_sha256(value: str | None) -> str | None:
    """Return a lower-case hex digest, or ``None`` when not pinned (``None``, ``""``, none, null).

    Raises:
        UserError: the value is neither a 64-digit hex string nor "none".

    Example:
        >>> normalise_sha256("NONE") is None, normalise_sha256("AB" * 32)[:4]
        (True, 'abab')
    """
    if value is None or value.strip().lower() in ("", "none", "null"):
        return None
    digest = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise UserError(
            f"SHA-256 {value!r} is not 64 hexadecimal digits; expected a digest such as the one "
            "`sha256sum FILE` prints, or none. Fix corpora.<name>.sha256 in config.yaml."
        )
    return digest


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks.

    Example:
        >>> file_sha256(Path("download.zip"))  # doctest: +SKIP
        '3f8a...'
    """
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: Path, relative_paths: Sequence[str]) -> tuple[str, str]:
    """Digest a set of files: the SHA-256 of their ``sha256sum``-style listing, sorted by path.

    Returns:
        The digest and the listing (one ``<sha256>  <path>`` line per file), which
        ``sha256sum -c`` verifies.

    Example:
        >>> paths = ["VideoDemographics.csv"]  # doctest: +SKIP
        >>> digest, listing = tree_sha256(Path("cremad"), paths)  # doctest: +SKIP
        >>> listing.split()[1]  # doctest: +SKIP
        'VideoDemographics.csv'
    """
    listing = "".join(f"{file_sha256(root / path)}  {path}\n" for path in sorted(relative_paths))
    return hashlib.sha256(listing.encode()).hexdigest(), listing


# --- HTTP -----------------------------------------------------------------------------------


def _unreachable(url: str, error: BaseException, corpus: str) -> UserError:
    reason = getattr(error, "reason", None) or error
    return UserError(
        f"could not reach {url} ({reason}). If this machine is offline or the server is down, "
        "fetch the corpus elsewhere and use a local copy: set "
        f"corpora.{corpus}.source in config.yaml to the folder that holds the corpus' files "
        "(e.g. a folder of EmoDB WAVs); the pipeline reads it in place."
    )


def _transfer(url: str, part: Path, *, timeout_s: float, corpus: str, progress: bool) -> None:
    """Fetch ``url`` into ``part``, resuming from its current size when the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        )
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # The partial file is not a prefix the server recognises: start over.
            part.unlink()
            raise _Interrupted("the server refused to resume (HTTP 416)") from error
        raise UserError(
            f"{url} answered HTTP {error.code} {error.reason}; expected the corpus file. "
            f"Check corpora.{corpus}.url in config.yaml (the release may have moved), or set "
            f"corpora.{corpus}.source to a local folder holding the corpus."
        ) from None
    except (OSError, http.client.HTTPException) as error:  # URLError, refused, DNS, timeout
        raise _unreachable(url, error, corpus) from None
    with response:
        content_range = response.headers.get("Content-Range", "")
        if offset and response.status == 206:
            if not content_range.startswith(f"bytes {offset}-"):
                part.unlink()
                raise _Interrupted(f"the server answered range {content_range!r} for byte {offset}")
            mode = "ab"
        else:
            if offset:
                logger.info(
                    "%s does not resume downloads (HTTP %s): starting over", url, response.status
                )
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = offset
        with (
            part.open(mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                file=sys.stderr,
                mininterval=1.0,
                disable=not progress,
            ) as bar,
        ):
            try:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:  # reset, timeout, bad chunking
                raise _Interrupted(f"{type(error).__name__}: {error}") from error
    # http.client returns a short body silently when the server closes early.
    if total is not None and received < total:
        raise _Interrupted(f"the connection closed after {received} of {total} bytes")


def fetch_file(
    *,
    url: str,
    target: Path,
    timeout_s: float = 30,
    attempts: int = 5,
    corpus: str = "<corpus>",
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``target`` through ``<target>.part``, resuming after interruptions.

    An existing ``target`` is complete (it is renamed from ``.part`` only at the end) and is
    returned without a request.

    Args:
        url: the file's URL (http or https).
        target: where the complete file goes.
        timeout_s: seconds to wait for the server to connect or send data.
        attempts: transfers tried before giving up; each resumes where the last stopped.
        corpus: the corpus' config name, for messages.
        progress: show a tqdm bar (bytes) on stderr.

    Raises:
        UserError: the server cannot be reached, answers an HTTP error, or every attempt was
            interrupted (the ``.part`` file is kept, so a rerun resumes).

    Example:
        >>> url = "https://example.org/corpus.zip"
        >>> fetch_file(url=url, target=Path("work/corpus.zip"))  # doctest: +SKIP
        PosixPath('work/corpus.zip')
    """
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    last_error: _Interrupted | None = None
    for attempt in range(1, max(1, attempts) + 1):
        try:
            _transfer(url, part, timeout_s=timeout_s, corpus=corpus, progress=progress)
        except _Interrupted as error:
            logger.warning(
                "download of %s interrupted (attempt %d of %d): %s", url, attempt, attempts, error
            )
            last_error = error
            continue
        part.replace(target)
        return target
    size = part.stat().st_size if part.exists() else 0
    raise UserError(
        f"the download of {url} was interrupted {max(1, attempts)} times ({last_error}); "
        f"{size} bytes are kept in {part}. Rerun to resume, "
        f"or set corpora.{corpus}.source to a local copy."
    )


# --- archives -------------------------------------------------------------------------------


def _refuse(archive: Path, member: str, why: str) -> UserError:
    return UserError(
        f"{archive} holds {member!r}, {why}; refusing to extract anything from it (a corpus "
        "archive holds only relative paths inside one folder). Nothing was written. Download the "
        "corpus from its official source, or check corpora.<name>.url."
    )


def _checked_member_path(archive: Path, name: str) -> PurePosixPath:
    """``name`` as a relative path inside the target, or refuse the archive."""
    normalised = name.replace("\\", "/")  # archives written on Windows
    path = PurePosixPath(normalised)
    if path.is_absolute() or re.match(r"[A-Za-z]:", normalised):
        raise _refuse(archive, name, "an absolute path")
    if ".." in path.parts:
        raise _refuse(archive, name, "a path that climbs out of the target folder with '..'")
    return path


def _link_escapes(member_dir: str, link_target: str) -> bool:
    if link_target.startswith("/") or re.match(r"[A-Za-z]:", link_target):
        return True
    resolved = posixpath.normpath(posixpath.join(member_dir, link_target))
    return resolved == ".." or resolved.startswith("../")


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        _checked_member_path(archive, info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            # zipfile would write the link as a small text file; no corpus ships links.
            raise _refuse(archive, info.filename, "a symbolic link")


def _check_tar(archive: Path, tf: tarfile.TarFile) -> None:
    for member in tf.getmembers():
        path = _checked_member_path(archive, member.name)
        if member.issym() and _link_escapes(str(path.parent), member.linkname):
            raise _refuse(
                archive, member.name, f"a symbolic link to {member.linkname!r}, outside the target"
            )
        if member.islnk() and _link_escapes("", member.linkname):
            raise _refuse(
                archive, member.name, f"a hard link to {member.linkname!r}, outside the target"
            )
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise _refuse(archive, member.name, "a device or FIFO")


def _with_progress(items: Sequence, *, desc: str) -> Iterator:
    yield from tqdm(items, desc=desc, unit="file", file=sys.stderr, mininterval=1.0)


def extract_archive(archive: Path, target: Path) -> None:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``target`` after checking every member.

    Members with absolute paths, ``..``, links that point outside ``target``, devices or
    FIFOs make the whole archive refused before anything is written; tar archives are also
    extracted with the standard library's ``filter="data"``, and their members' modes are
    replaced by the umask's (a member archived as 0600 would be hidden from the group).

    Raises:
        UserError: the file is not an archive, or holds an unsafe member.

    Example:
        >>> extract_archive(Path("work/download.zip"), Path("staging"))  # doctest: +SKIP
    """
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf)
            for info in _with_progress(zf.infolist(), desc=f"extracting {archive.name}"):
                zf.extract(info, target)
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            _check_tar(archive, tf)
            members = tf.getmembers()
            try:
                tf.extractall(
                    target,
                    members=_with_progress(members, desc=f"extracting {archive.name}"),
                    filter="data",
                )
            except tarfile.FilterError as error:  # what our own checks missed
                member = getattr(error, "tarinfo", None)
                raise _refuse(archive, member.name if member else "a member", str(error)) from None
        # tar applies each member's mode (a 0600 member stays private): the umask decides
        # instead, as for every other output (zip extraction already follows it).
        for folder, _, names in os.walk(target):
            honour_umask(Path(folder), directory=True)
            for name in names:
                if not Path(folder, name).is_symlink():
                    honour_umask(Path(folder, name))
        return
    with archive.open("rb") as stream:
        start = stream.read(16)
    raise UserError(
        f"{archive} is neither a zip nor a tar archive (it starts with {start!r}); "
        "expected the corpus archive. The URL may serve a web page: check corpora.<name>.url, "
        f"then delete {archive} and rerun."
    )


# --- installing into dest -------------------------------------------------------------------


def _read_marker(dest: Path) -> dict:
    try:
        return json.loads((dest / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _already_done(dest: Path, *, url: str, mode: str, sha256: str | None) -> bool:
    marker = _read_marker(dest)
    done = marker.get("url") == url and marker.get("mode") == mode
    if done and (sha256 is None or marker.get("sha256") == sha256):
        logger.info(
            "%s already holds %s (SHA-256 %s): nothing to do", dest, url, marker.get("sha256")
        )
        return True
    return False


def _check_dest_replaceable(dest: Path, corpus: str) -> None:
    """Refuse to replace a folder that serhpo did not fill (the user's own files)."""
    if dest.exists() and not dest.is_dir():
        raise UserError(
            f"{dest} is a file; expected a folder (or nothing) to put the corpus in. Move it away."
        )
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER_NAME).exists():
        raise UserError(
            f"{dest} already holds files that serhpo did not download (it has no {MARKER_NAME}); "
            f"refusing to replace them. Move them away, or use them in place: set "
            f"corpora.{corpus}.source: {dest} in config.yaml."
        )


def _install(ready: Path, dest: Path) -> None:
    """Move the complete folder ``ready`` to ``dest``, replacing an earlier serhpo download."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    shutil.move(ready, dest)  # a rename when both are on one file system
    shutil.rmtree(old, ignore_errors=True)


def _write_marker(folder: Path, **fields: object) -> None:
    (folder / MARKER_NAME).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")


def _find_lfs_pointers(folder: Path) -> list[Path]:
    """Files that are Git LFS pointers (small text files) rather than the content they stand for."""
    pointers = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.stat().st_size < 1024:
            with path.open("rb") as stream:
                if stream.read(len(_LFS_POINTER_PREFIX)) == _LFS_POINTER_PREFIX:
                    pointers.append(path)
    return pointers


def _refuse_lfs_pointers(folder: Path, *, url: str, corpus: str) -> None:
    pointers = _find_lfs_pointers(folder)
    if pointers:
        example = pointers[0].relative_to(folder)
        for pointer in pointers:  # so that a rerun with the right URL fetches them again
            pointer.unlink()
        raise UserError(
            f"{url} delivered {len(pointers)} Git LFS pointer files instead of the files "
            f"themselves (e.g. {example}). A GitHub archive or raw URL "
            f"does not include LFS content: set corpora.{corpus}.download_mode: file_list and "
            f"corpora.{corpus}.url to the media host, e.g. {CREMAD_MEDIA_URL}"
        )


def _verify(*, found: str, expected: str | None, what: Path, corpus: str) -> None:
    if expected is None:
        logger.warning(
            "%s has SHA-256 %s. Pin it in config.yaml (corpora.%s.sha256: %s) so that later "
            "downloads are verified.",
            what,
            found,
            corpus,
            found,
        )
        return
    if found != expected:
        raise UserError(
            f"{what} has SHA-256 {found}, expected {expected} (corpora.{corpus}.sha256); "
            "nothing was extracted or replaced. The download may be corrupt, or the server's "
            f"file changed: delete {what} and rerun to download it again, or, if you trust "
            f"the new file, set corpora.{corpus}.sha256: {found}."
        )


def _stage_and_install(dest: Path, fill: Callable[[Path], None]) -> None:
    """Run ``fill`` on a fresh folder beside ``dest``, then move it into place (all or nothing)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.incoming-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.incoming-", dir=dest.parent))
    honour_umask(staging, directory=True)  # mkdtemp's 0700 would become dest's mode
    try:
        fill(staging)
        _install(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link (no extra space; the work copy survives a deleted ``dest``), else copy."""
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not supported
        shutil.copy2(source, target)


def _file_name(url: str) -> str:
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    return name if name and name not in (".", "..") else "download"


def download_corpus(
    *,
    url: str,
    dest: Path,
    sha256: str | None,
    work_dir: Path,
    timeout_s: float = 30,
    corpus: str = "<corpus>",
    attempts: int = 5,
) -> Path:
    """Download an archive, verify its SHA-256 and extract it into ``dest``.

    The archive stays in ``work_dir`` (so that a deleted ``dest`` is rebuilt without a new
    download); ``dest`` appears only complete, with a marker recording ``url`` and the digest.

    Args:
        url: the archive's URL.
        dest: the folder to fill; an earlier serhpo download there is replaced.
        sha256: the expected digest, or ``None`` to accept any and log it for pinning.
        work_dir: where the archive (and its ``.part`` while downloading) is kept.
        timeout_s: seconds to wait for the server.
        corpus: the corpus' config name, for messages.
        attempts: transfers tried when the connection drops, each resuming the last.

    Raises:
        UserError: unreachable server, HTTP error, digest mismatch, unsafe or unknown archive,
            or a ``dest`` holding the user's own files.

    Example:
        >>> download_corpus(url="http://emodb.bilderbar.info/download/download.zip",
        ...     dest=Path("resources/corpora/emodb/raw"), sha256=None,
        ...     work_dir=Path("resources/corpora/emodb/download"), corpus="emodb")  # doctest: +SKIP
        PosixPath('resources/corpora/emodb/raw')
    """
    expected = normalise_sha256(sha256)
    if _already_done(dest, url=url, mode="archive", sha256=expected):
        return dest
    _check_dest_replaceable(dest, corpus)
    archive = fetch_file(
        url=url,
        target=work_dir / _file_name(url),
        timeout_s=timeout_s,
        attempts=attempts,
        corpus=corpus,
    )
    digest = file_sha256(archive)
    _verify(found=digest, expected=expected, what=archive, corpus=corpus)

    def fill(staging: Path) -> None:
        extract_archive(archive, staging)
        _refuse_lfs_pointers(staging, url=url, corpus=corpus)
        _write_marker(staging, url=url, mode="archive", sha256=digest)

    _stage_and_install(dest, fill)
    logger.info("extracted %s into %s", archive, dest)
    return dest


def _checked_relative_paths(relative_paths: Sequence[str], *, source: str) -> list[str]:
    for path in relative_paths:
        if not _SAFE_RELATIVE_PATH.fullmatch(path) or ".." in path.split("/"):
            raise UserError(
                f"{source} lists {path!r}; expected relative paths of letters, digits, '.', '_' "
                "and '-' without '..'. Fix the file list."
            )
    return list(dict.fromkeys(relative_paths))


def download_file_list(
    *,
    base_url: str,
    relative_paths: Sequence[str],
    dest: Path,
    sha256: str | None,
    work_dir: Path,
    timeout_s: float = 30,
    corpus: str = "<corpus>",
    workers: int = 8,
    attempts: int = 5,
) -> Path:
    """Download ``base_url + path`` for every path, verify them together, move them into ``dest``.

    Files are collected in ``work_dir/files`` (complete ones are skipped on a rerun, partial
    ones resumed); the digest is :func:`tree_sha256` of all of them, and ``dest`` receives the
    files (hard links where possible), a ``SHA256SUMS`` listing and the marker only when all
    are there.

    Args:
        base_url: the URL the relative paths are joined to (ends with ``/``).
        relative_paths: e.g. ``["VideoDemographics.csv", "AudioWAV/1001_DFA_ANG_XX.wav"]``.
        dest: the folder to fill; an earlier serhpo download there is replaced.
        sha256: the expected tree digest, or ``None`` to accept any and log it for pinning.
        work_dir: where files are collected; best on the same file system as ``dest``.
        timeout_s: seconds to wait for the server, per request.
        corpus: the corpus' config name, for messages.
        workers: files fetched at once.
        attempts: transfers tried per file when the connection drops.

    Raises:
        UserError: unreachable server, HTTP error, digest mismatch, LFS pointers instead of
            content, unsafe paths, or a ``dest`` holding the user's own files.

    Example:
        >>> download_file_list(base_url=CREMAD_MEDIA_URL, relative_paths=["VideoDemographics.csv"],
        ...     dest=Path("raw"), sha256=None, work_dir=Path("work"))  # doctest: +SKIP
        PosixPath('raw')
    """
    expected = normalise_sha256(sha256)
    if _already_done(dest, url=base_url, mode="file_list", sha256=expected):
        return dest
    _check_dest_replaceable(dest, corpus)
    paths = _checked_relative_paths(relative_paths, source=f"the file list for {base_url}")
    collected = work_dir / "files"
    todo = [path for path in paths if not (collected / path).is_file()]
    base = base_url if base_url.endswith("/") else base_url + "/"
    logger.info("%d of %d files to fetch from %s", len(todo), len(paths), base)
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(
            total=len(paths),
            initial=len(paths) - len(todo),
            unit="file",
            file=sys.stderr,
            mininterval=1.0,
        ) as bar,
    ):
        futures = [
            pool.submit(
                fetch_file,
                url=base + urllib.parse.quote(path),
                target=collected / path,
                timeout_s=timeout_s,
                attempts=attempts,
                corpus=corpus,
                progress=False,
            )
            for path in todo
        ]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the first failure stops the rest
            raise
    _refuse_lfs_pointers(collected, url=base, corpus=corpus)
    digest, checksums = tree_sha256(collected, paths)
    _verify(found=digest, expected=expected, what=collected, corpus=corpus)

    def fill(staging: Path) -> None:
        for path in paths:
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(collected / path, staging / path)
        (staging / CHECKSUMS_NAME).write_text(checksums)
        _write_marker(staging, url=base_url, mode="file_list", sha256=digest, files=len(paths))

    _stage_and_install(dest, fill)
    logger.info("%d files from %s are in %s", len(paths), base, dest)
    return dest


def cremad_relative_paths(sentence_list: Path) -> list[str]:
    """CREMA-D's files to fetch, from its ``SentenceFilenames.csv`` (Stimulus_Number, Filename).

    Raises:
        UserError: the file has no ``Filename`` column or a name that is not a plain word.

    Example:
        >>> cremad_relative_paths(Path("SentenceFilenames.csv"))[:2]  # doctest: +SKIP
        ['VideoDemographics.csv', 'AudioWAV/1001_IEO_NEU_XX.wav']
    """
    with sentence_list.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        if "Filename" not in (reader.fieldnames or []):
            raise UserError(
                f"{sentence_list} has columns {reader.fieldnames}; expected CREMA-D's "
                f"{CREMAD_SENTENCE_LIST} with a Filename column. "
                "Delete it and rerun, or check the base URL."
            )
        names = [row["Filename"].strip() for row in reader]
    bad = [name for name in names if not re.fullmatch(r"\w+", name)]
    if bad:
        raise UserError(
            f"{sentence_list} lists {bad[0]!r}, not a plain file name; "
            "expected e.g. 1001_DFA_ANG_XX."
        )
    return ["VideoDemographics.csv", *(f"AudioWAV/{name}.wav" for name in names)]


def download_cremad(
    *,
    dest: Path,
    sha256: str | None,
    work_dir: Path,
    base_url: str = CREMAD_MEDIA_URL,
    timeout_s: float = 30,
    workers: int = 8,
) -> Path:
    """Download CREMA-D's WAV files and demographics from its Git LFS media host.

    The file list is derived from ``SentenceFilenames.csv``, fetched first from ``base_url``.

    Example:
        >>> download_cremad(dest=Path("resources/corpora/cremad/raw"), sha256=None,
        ...     work_dir=Path("resources/corpora/cremad/download"))  # doctest: +SKIP
        PosixPath('resources/corpora/cremad/raw')
    """
    expected = normalise_sha256(sha256)
    if _already_done(dest, url=base_url, mode="file_list", sha256=expected):
        return dest
    base = base_url if base_url.endswith("/") else base_url + "/"
    sentence_list = fetch_file(
        url=base + CREMAD_SENTENCE_LIST,
        target=work_dir / CREMAD_SENTENCE_LIST,
        timeout_s=timeout_s,
        corpus="cremad",
        progress=False,
    )
    return download_file_list(
        base_url=base_url,
        relative_paths=cremad_relative_paths(sentence_list),
        dest=dest,
        sha256=expected,
        work_dir=work_dir,
        timeout_s=timeout_s,
        corpus="cremad",
        workers=workers,
    )


# --- CLI ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``download`` stage's options."""
    parser.add_argument("--url", required=True, help="archive URL, or base URL in file_list mode")
    parser.add_argument(
        "--sha256",
        required=True,
        metavar="HEX|none",
        help="expected SHA-256; none logs it for pinning",
    )
    parser.add_argument("--dest", required=True, type=Path, help="folder to fill with the corpus")
    parser.add_argument(
        "--mode",
        choices=["archive", "file_list"],
        default="archive",
        help="archive: one zip/tar file; file_list: files fetched one by one under --url",
    )
    parser.add_argument(
        "--corpus", default="<corpus>", help="the corpus' config name, for messages"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where the archive or the files being fetched are kept (default: DEST/../download)",
    )
    parser.add_argument(
        "--file-list",
        type=Path,
        help="file_list mode: a text file of relative paths, one a line "
        "(default for --corpus cremad: derived from SentenceFilenames.csv)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the server"
    )
    parser.add_argument(
        "--workers", type=int, default=8, help="file_list mode: files fetched at once"
    )


def run(args: argparse.Namespace) -> int:
    """Run the ``download`` stage; return 0 when ``--dest`` holds the verified corpus."""
    work_dir = args.work_dir or args.dest.parent / "download"
    if args.mode == "archive":
        download_corpus(
            url=args.url,
            dest=args.dest,
            sha256=args.sha256,
            work_dir=work_dir,
            timeout_s=args.timeout,
            corpus=args.corpus,
        )
    elif args.file_list is not None:
        download_file_list(
            base_url=args.url,
            relative_paths=[
                line.strip() for line in args.file_list.read_text().splitlines() if line.strip()
            ],
            dest=args.dest,
            sha256=args.sha256,
            work_dir=work_dir,
            timeout_s=args.timeout,
            corpus=args.corpus,
            workers=args.workers,
        )
    elif args.corpus == "cremad":
        download_cremad(
            dest=args.dest,
            sha256=args.sha256,
            work_dir=work_dir,
            base_url=args.url,
            timeout_s=args.timeout,
            workers=args.workers,
        )
    else:
        raise UserError(
            "--mode file_list needs the list of files to fetch: found "
            f"--corpus {args.corpus} and no --file-list; expected --corpus cremad or "
            "--file-list FILE (relative paths, one a line)."
        )
    return 0
