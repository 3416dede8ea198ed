"""Tests of the download stage against a local HTTP server on 127.0.0.1 (never the network)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serhpo import cli
from serhpo.corpora.cremad import list_utterances as list_cremad
from serhpo.corpora.download import (
    MARKER_NAME,
    cremad_relative_paths,
    download_corpus,
    download_cremad,
    download_file_list,
    extract_archive,
    fetch_file,
    normalise_sha256,
    tree_sha256,
)
from serhpo.errors import UserError


@dataclass
class ServerState:
    """What the test server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_first_response_after: int | None = None  # bytes sent before dropping the first response
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold the server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append((self.path, range_header))
            cut, state.cut_first_response_after = state.cut_first_response_after, None
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        start = 0
        if range_header and state.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header)[1])
            if start >= len(body):
                self.send_error(416, "range not satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:] if cut is None else body[start : start + cut]
        self.wfile.write(payload)
        if cut is not None:
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    """A threaded HTTP server on a free local port; shut down after the test."""
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# A 300 kB archive, so that interrupted transfers stop in the middle of it.
CORPUS = {
    "wav/03a01Fa.wav": b"RIFF" + bytes(range(256)) * 600,
    "wav/16b10Tb.wav": b"RIFF" + bytes(reversed(range(256))) * 600,
}
ARCHIVE = _zip_bytes(CORPUS)


def _download(base: str, tmp_path: Path, **options: object) -> Path:
    defaults = {
        "url": f"{base}/download.zip",
        "dest": tmp_path / "emodb" / "raw",
        "sha256": _sha256(ARCHIVE),
        "work_dir": tmp_path / "emodb" / "download",
        "timeout_s": 5,
        "corpus": "emodb",
    }
    return download_corpus(**{**defaults, **options})


def test_right_checksum_extracts_and_a_rerun_does_nothing(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    dest = _download(base, tmp_path)
    assert (dest / "wav" / "03a01Fa.wav").read_bytes() == CORPUS["wav/03a01Fa.wav"]
    assert MARKER_NAME in _tree(dest)
    assert _tree(tmp_path / "emodb") == sorted(
        ["download", "download/download.zip", "raw", f"raw/{MARKER_NAME}", "raw/wav"]
        + [f"raw/{name}" for name in CORPUS]
    )  # no .part, no staging folder left
    (tmp_path / "emodb" / "download" / "download.zip").unlink()
    _download(base, tmp_path)
    assert len(state.requests) == 1


def test_the_corpus_folder_gets_the_umask_not_the_staging_folders_0700(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    previous = os.umask(0o022)
    try:
        dest = _download(base, tmp_path)
    finally:
        os.umask(previous)
    assert dest.stat().st_mode & 0o777 == 0o755


def test_a_private_tar_member_gets_the_umask_too(tmp_path):
    private = tarfile.TarInfo("wav/03a01Fa.wav")
    private.size, private.mode = 4, 0o600
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.addfile(private, io.BytesIO(b"RIFF"))
    (tmp_path / "a.tar.gz").write_bytes(buffer.getvalue())
    previous = os.umask(0o022)
    try:
        extract_archive(tmp_path / "a.tar.gz", tmp_path / "out")
    finally:
        os.umask(previous)
    assert (tmp_path / "out/wav/03a01Fa.wav").stat().st_mode & 0o777 == 0o644


def test_unpinned_checksum_is_logged_for_pinning(server, tmp_path, caplog):
    base, state = server
    state.files["/corpus.tar.gz"] = archive = _tar_bytes(list(CORPUS.items()))
    with caplog.at_level(logging.WARNING, logger="serhpo.corpora.download"):
        dest = _download(base, tmp_path, url=f"{base}/corpus.tar.gz", sha256=None)
    assert (dest / "wav" / "16b10Tb.wav").read_bytes() == CORPUS["wav/16b10Tb.wav"]
    assert _sha256(archive) in caplog.text and "corpora.emodb.sha256" in caplog.text


def test_wrong_checksum_refuses_and_extracts_nothing(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    with pytest.raises(UserError) as caught:
        _download(base, tmp_path, sha256="0" * 64)
    message = str(caught.value)
    assert _sha256(ARCHIVE) in message and "0" * 64 in message and "delete" in message
    assert not (tmp_path / "emodb" / "raw").exists()
    assert (tmp_path / "emodb" / "download" / "download.zip").read_bytes() == ARCHIVE


def test_interrupted_transfer_is_resumed_with_a_range_request(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    state.cut_first_response_after = 100_000
    dest = _download(base, tmp_path)
    assert (dest / "wav" / "03a01Fa.wav").read_bytes() == CORPUS["wav/03a01Fa.wav"]
    assert state.requests == [("/download.zip", None), ("/download.zip", "bytes=100000-")]


def test_server_ignoring_range_still_ends_with_the_right_file(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    state.honour_range = False
    state.cut_first_response_after = 100_000
    _download(base, tmp_path)  # the digest check inside passes only for the whole file
    assert [header for _, header in state.requests] == [None, "bytes=100000-"]


def test_every_attempt_interrupted_keeps_the_part_file(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    state.cut_first_response_after = 1000
    with pytest.raises(UserError, match="Rerun to resume"):
        fetch_file(url=f"{base}/download.zip", target=tmp_path / "a.zip", attempts=1, timeout_s=5)
    assert (tmp_path / "a.zip.part").stat().st_size == 1000
    fetch_file(url=f"{base}/download.zip", target=tmp_path / "a.zip", timeout_s=5)  # the rerun
    assert (tmp_path / "a.zip").read_bytes() == ARCHIVE
    assert state.requests[-1] == ("/download.zip", "bytes=1000-")


def test_http_error_names_the_status_and_the_config_key(server, tmp_path):
    base, _ = server
    with pytest.raises(UserError, match="HTTP 404.*corpora.emodb.url"):
        _download(base, tmp_path, url=f"{base}/missing.zip")


def test_unreachable_url_says_how_to_use_a_local_copy(tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match="could not reach.*corpora.emodb.source"):
        _download(f"http://127.0.0.1:{port}", tmp_path)
    assert not (tmp_path / "emodb" / "raw").exists()


def test_silent_server_times_out_into_a_user_error(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(UserError, match="could not reach.*timed out.*source"):
            _download(base, tmp_path, timeout_s=0.3)


def test_foreign_files_in_dest_are_never_replaced(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    own = tmp_path / "emodb" / "raw" / "my_recording.wav"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"mine")
    with pytest.raises(UserError, match="did not download"):
        _download(base, tmp_path)
    assert own.read_bytes() == b"mine" and not state.requests


def test_a_new_url_replaces_an_earlier_download(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    state.files["/v2.zip"] = v2 = _zip_bytes({"wav/03a02Wb.wav": b"RIFFv2"})
    _download(base, tmp_path)
    dest = _download(base, tmp_path, url=f"{base}/v2.zip", sha256=_sha256(v2))
    assert _tree(dest) == sorted([MARKER_NAME, "wav", "wav/03a02Wb.wav"])


def test_interrupted_extraction_leaves_no_half_corpus(server, tmp_path, monkeypatch):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    original_extract = zipfile.ZipFile.extract
    calls = []

    def extract_then_fail(self, member, path=None, pwd=None):
        calls.append(member)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C mid-way
        return original_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", extract_then_fail)
    with pytest.raises(KeyboardInterrupt):
        _download(base, tmp_path)
    assert _tree(tmp_path / "emodb") == ["download", "download/download.zip"]


@pytest.mark.parametrize(
    ("make_archive", "complaint"),
    [
        (lambda escape: _zip_bytes({"wav/ok.wav": b"x", "../evil": b"x"}), "'..'"),
        (lambda escape: _zip_bytes({"..\\evil": b"x"}), "'..'"),
        (lambda escape: _zip_bytes({str(escape): b"x"}), "absolute path"),
        (lambda escape: _tar_bytes([("wav/ok.wav", b"x"), (str(escape), b"x")]), "absolute path"),
        (lambda escape: _tar_bytes([("a/../../evil", b"x")]), "'..'"),
        (lambda escape: _tar_bytes([_link("wav/l", "../../escaped", tarfile.SYMTYPE)]), "symbolic"),
        (lambda escape: _tar_bytes([_link("wav/l", str(escape), tarfile.SYMTYPE)]), "symbolic"),
        (lambda escape: _tar_bytes([_link("hard", "../escaped", tarfile.LNKTYPE)]), "hard link"),
        (lambda escape: _tar_bytes([_link("fifo", "", tarfile.FIFOTYPE)]), "FIFO"),
    ],
    ids=[
        "zip-dotdot",
        "zip-windows-dotdot",
        "zip-absolute",
        "tar-absolute",
        "tar-dotdot",
        "tar-symlink-up",
        "tar-symlink-absolute",
        "tar-hardlink-up",
        "tar-fifo",
    ],
)
def test_malicious_archives_are_refused_with_nothing_written(tmp_path, make_archive, complaint):
    path = tmp_path / "work" / "bad.archive"
    path.parent.mkdir()
    path.write_bytes(make_archive(tmp_path / "escaped"))
    target = tmp_path / "deep" / "target"
    with pytest.raises(UserError, match=re.escape(complaint)):
        extract_archive(path, target)
    assert _tree(tmp_path) == ["deep", "deep/target", "work", "work/bad.archive"]


def test_a_link_inside_the_target_is_extracted(tmp_path):
    path = tmp_path / "ok.tar.gz"
    path.write_bytes(
        _tar_bytes([("wav/a.wav", b"x"), _link("wav/b.wav", "a.wav", tarfile.SYMTYPE)])
    )
    extract_archive(path, tmp_path / "out")
    assert (tmp_path / "out" / "wav" / "b.wav").read_bytes() == b"x"


def test_malicious_archive_from_the_server_is_refused(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = evil = _zip_bytes({"../evil": b"x"})
    with pytest.raises(UserError, match="refusing to extract"):
        _download(base, tmp_path, sha256=_sha256(evil))
    assert not (tmp_path / "emodb" / "raw").exists() and not (tmp_path / "emodb" / "evil").exists()


def test_a_web_page_instead_of_an_archive_is_explained(server, tmp_path):
    base, state = server
    state.files["/download.zip"] = page = b"<html>moved</html>"
    with pytest.raises(UserError, match="neither a zip nor a tar"):
        _download(base, tmp_path, sha256=_sha256(page))


@pytest.mark.parametrize("value", [None, "", "none", "NULL"])
def test_unpinned_sha256_spellings(value):
    assert normalise_sha256(value) is None


def test_malformed_sha256_is_a_user_error():
    with pytest.raises(UserError, match="64 hexadecimal digits"):
        normalise_sha256("abc")


# --- file_list mode (CREMA-D) -----------------------------------------------------------------

CREMAD_NAMES = ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1001_TIE_SAD_XX"]
DEMOGRAPHICS = (
    b'"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","A","B"\n1002,21,"Female","A","B"\n'
)


def _serve_cremad(state: ServerState) -> None:
    state.files["/media/SentenceFilenames.csv"] = (
        '"Stimulus_Number","Filename"\n'
        + "".join(f'{i},"{name}"\n' for i, name in enumerate(CREMAD_NAMES, 1))
    ).encode()
    state.files["/media/VideoDemographics.csv"] = DEMOGRAPHICS
    for name in CREMAD_NAMES:
        state.files[f"/media/AudioWAV/{name}.wav"] = b"RIFF" + name.encode() * 100


def test_cremad_file_list_download_is_readable_and_rerun_free(server, tmp_path):
    base, state = server
    _serve_cremad(state)
    dest = tmp_path / "cremad" / "raw"
    work = tmp_path / "cremad" / "download"
    download_cremad(dest=dest, sha256=None, work_dir=work, base_url=f"{base}/media/", timeout_s=5)
    listing = list_cremad(dest)
    assert sorted(listing.utterances["utterance_id"]) == sorted(CREMAD_NAMES)
    assert set(listing.utterances["gender"]) == {"male", "female"}
    assert (dest / "SHA256SUMS").read_text().count("\n") == len(CREMAD_NAMES) + 1
    count = len(state.requests)
    download_cremad(dest=dest, sha256=None, work_dir=work, base_url=f"{base}/media/", timeout_s=5)
    shutil.rmtree(dest)  # as Snakemake does before rerunning the rule: the work copy remains
    download_cremad(dest=dest, sha256=None, work_dir=work, base_url=f"{base}/media/", timeout_s=5)
    assert len(state.requests) == count
    assert sorted(list_cremad(dest).utterances["utterance_id"]) == sorted(CREMAD_NAMES)


def test_file_list_skips_complete_files_and_checks_the_tree_digest(server, tmp_path):
    base, state = server
    _serve_cremad(state)
    paths = ["VideoDemographics.csv", *(f"AudioWAV/{name}.wav" for name in CREMAD_NAMES)]
    work = tmp_path / "work"
    done = work / "files" / "AudioWAV" / f"{CREMAD_NAMES[0]}.wav"
    done.parent.mkdir(parents=True)
    done.write_bytes(state.files[f"/media/AudioWAV/{CREMAD_NAMES[0]}.wav"])
    options = {"base_url": f"{base}/media/", "relative_paths": paths, "dest": tmp_path / "raw"}
    with pytest.raises(UserError, match="expected " + "f" * 64):
        download_file_list(**options, sha256="f" * 64, work_dir=work, timeout_s=5)
    assert not (tmp_path / "raw").exists()
    assert f"/media/AudioWAV/{CREMAD_NAMES[0]}.wav" not in [path for path, _ in state.requests]
    digest = tree_sha256(work / "files", paths)[0]
    download_file_list(**options, sha256=digest, work_dir=work, timeout_s=5)
    assert (tmp_path / "raw" / "VideoDemographics.csv").read_bytes() == DEMOGRAPHICS


def test_lfs_pointers_instead_of_audio_are_refused(server, tmp_path):
    base, state = server
    state.files["/repo/AudioWAV/1001_DFA_ANG_XX.wav"] = (
        b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    )
    with pytest.raises(UserError, match="Git LFS pointer.*download_mode: file_list"):
        download_file_list(
            base_url=f"{base}/repo/",
            relative_paths=["AudioWAV/1001_DFA_ANG_XX.wav"],
            dest=tmp_path / "raw",
            sha256=None,
            work_dir=tmp_path / "work",
            corpus="cremad",
            timeout_s=5,
        )
    assert not (tmp_path / "raw").exists()
    assert not list((tmp_path / "work").rglob("*.wav"))  # a rerun fetches them again


@pytest.mark.parametrize("bad", ["../evil.wav", "/etc/passwd", "a/../../b", "a b.wav"])
def test_file_list_refuses_unsafe_paths(tmp_path, bad):
    with pytest.raises(UserError, match="Fix the file list"):
        download_file_list(
            base_url="http://127.0.0.1:9/",
            relative_paths=[bad],
            dest=tmp_path / "raw",
            sha256=None,
            work_dir=tmp_path / "work",
        )


def test_cremad_relative_paths_from_the_sentence_list(tmp_path):
    sentence_list = tmp_path / "SentenceFilenames.csv"
    sentence_list.write_text(
        '"Stimulus_Number","Filename"\n1,"1001_IEO_NEU_XX"\n2,"1001_IEO_HAP_LO"\n'
    )
    assert cremad_relative_paths(sentence_list) == [
        "VideoDemographics.csv",
        "AudioWAV/1001_IEO_NEU_XX.wav",
        "AudioWAV/1001_IEO_HAP_LO.wav",
    ]
    sentence_list.write_text("Number,Name\n1,x\n")
    with pytest.raises(UserError, match="Filename column"):
        cremad_relative_paths(sentence_list)


# --- CLI --------------------------------------------------------------------------------------


def test_cli_downloads_and_reports_user_errors_with_status_2(server, tmp_path, capsys):
    base, state = server
    state.files["/download.zip"] = ARCHIVE
    dest = tmp_path / "emodb" / "raw"
    argv = ["download", "--corpus", "emodb", "--url", f"{base}/download.zip", "--dest", str(dest)]
    assert cli.main([*argv, "--sha256", _sha256(ARCHIVE)]) == 0
    assert (dest / "wav" / "03a01Fa.wav").is_file()
    assert (tmp_path / "emodb" / "download" / "download.zip").is_file()  # the default work folder
    assert cli.main([*argv[:-2], "--dest", str(tmp_path / "other"), "--sha256", "1" * 64]) == 2
    assert "expected " + "1" * 64 in capsys.readouterr().err
    assert cli.main([*argv, "--sha256", "none", "--mode", "file_list", "--corpus", "x"]) == 2
