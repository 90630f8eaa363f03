"""The `evidence` command: setup, submission, ingest, inspection and custody checks, with clear errors."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.helpers import photo
from verification.cli.main import main
from verification.ledger.models import make_engine
from verification.pipeline import FAULT_ENV

ROOT = Path(__file__).resolve().parents[2]

KYIV = (50.4501, 30.5234, 179.0)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVIDENCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVIDENCE_WORKERS", "1")
    return tmp_path / "home"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_creates_database_store_and_key(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`init` makes the embedded setup and is safe to run twice."""
    assert run(capsys, "init")[0] == 0
    code, out, _ = run(capsys, "init")
    assert code == 0
    assert (home / "evidence.db").exists()
    assert (home / "keys" / "installation.pem").exists()
    assert "file://" in out


def test_submit_ingest_show_and_verify(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file goes in with claims, comes out processed, and its custody chain verifies."""
    run(capsys, "init")
    path = tmp_path / "street.jpg"
    path.write_bytes(photo(1, taken="2024:03:14 11:20:05", offset="+02:00", gps=KYIV))
    code, out, _ = run(
        capsys,
        "submit",
        str(path),
        "--case",
        "case-1",
        "--submitter",
        "w1",
        "--claimed-location",
        "50.45,30.52",
        "--claimed-time",
        "2024-03-14T11:30:00+02:00",
    )
    assert code == 0
    assert "incoming/case-1/street.jpg" in out
    code, out, _ = run(capsys, "ingest", "--no-progress")
    assert code == 0
    assert "consistent" in out
    code, out, _ = run(capsys, "list", "--json")
    sha = json.loads(out)[0]["sha256"]
    code, out, _ = run(capsys, "show", sha[:10])
    assert code == 0
    assert "Fairphone FP4" in out
    assert "chain verified" in out
    code, out, _ = run(capsys, "show", sha[:10], "--json")
    assert json.loads(out)["record"]["hashes"]["sha256"] == sha
    code, out, _ = run(capsys, "custody", "log", sha[:10])
    assert "ingestion" in out
    assert run(capsys, "custody", "verify")[0] == 0
    assert run(capsys, "ingest", "--no-progress")[1] == "nothing new under incoming/\n"


def test_tampered_ledger_fails_verify_naming_the_event(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`custody verify` exits 1 and names the edited event."""
    run(capsys, "init")
    path = tmp_path / "a.jpg"
    path.write_bytes(photo(2))
    run(capsys, "submit", str(path), "--case", "c")
    run(capsys, "ingest", "--no-progress")
    engine = make_engine(f"sqlite:///{home / 'evidence.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE custody_events SET outcome='failure' WHERE seq=2"))
    code, _, err = run(capsys, "custody", "verify")
    assert code == 1
    assert "event #2" in err
    assert "content changed" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "missing.jpg", "--case", "c"], "no such file"),
        (["submit", "{file}", "--case", "../etc"], "case id"),
        (["submit", "{file}", "--case", "c", "--claimed-location", "91,0"], "out of range"),
        (["submit", "{file}", "--case", "c", "--claimed-location", "somewhere"], "LAT,LON"),
        (["submit", "{file}", "--case", "c", "--claimed-time", "yesterday"], "ISO 8601"),
        (["show", "xyz"], "hex prefix"),
        (["show", "abcdef123"], "no item matches"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Usage mistakes give one readable line on stderr and exit code 2."""
    run(capsys, "init")
    file = tmp_path / "f.jpg"
    file.write_bytes(b"x")
    code, _, err = run(capsys, *[a.replace("{file}", str(file)) for a in argv])
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_commands_before_init_explain_what_to_do(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Using the pipeline before `init` points at `evidence init`."""
    code, _, err = run(capsys, "ingest")
    assert code == 2
    assert "evidence init" in err


def test_unreachable_store_is_a_clear_error(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An S3 endpoint that does not answer gives exit 2 and names the endpoint."""
    from tests.conftest import free_port

    run(capsys, "init")
    monkeypatch.setenv("EVIDENCE_STORE", "s3")
    monkeypatch.setenv("EVIDENCE_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    path = tmp_path / "a.jpg"
    path.write_bytes(b"data")
    code, _, err = run(capsys, "submit", str(path), "--case", "c")
    assert code in (1, 2)
    assert "127.0.0.1" in err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` names each sub-command."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("init", "submit", "ingest", "list", "show", "custody", "demo"):
        assert command in out


# --- configuration errors (issue 12 item 5) -------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EVIDENCE_HOME", "{file}", "EVIDENCE_HOME is '{file}': exists and is not a directory"),
        (
            "EVIDENCE_WORKERS",
            "many",
            "EVIDENCE_WORKERS is 'many': input should be a valid integer, unable to parse "
            "string as an integer",
        ),
        (
            "EVIDENCE_DATABASE_URL",
            "mysql://ops:hunter2@db/evidence",
            "EVIDENCE_DATABASE_URL: scheme 'mysql' is not supported; use sqlite or postgresql",
        ),
        ("EVIDENCE_STORE", "ftp", "EVIDENCE_STORE is 'ftp': input should be 'local' or 's3'"),
        (
            "EVIDENCE_TSA_URLS",
            "https://tsa.example",
            "EVIDENCE_TSA_URLS cannot be parsed (a JSON list)",
        ),
        (
            "EVIDENCE_TSA_URLS",
            '["tsa.example"]',
            "EVIDENCE_TSA_URLS is \"['tsa.example']\": 'tsa.example' is not an http(s) URL "
            "with a host",
        ),
    ],
    ids=["home-is-a-file", "workers", "database-scheme", "store", "tsa-not-json", "tsa-not-url"],
)
def test_bad_setting_is_one_line_naming_the_variable_and_exit_2(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    """Each bad EVIDENCE_* value stops every command before any work: exit 2, one line on
    stderr naming the variable and what is wrong, no traceback, no password echoed."""
    file = tmp_path / "not-a-directory"
    file.write_text("x")
    monkeypatch.setenv(variable, value.replace("{file}", str(file)))
    code, out, err = run(capsys, "list")
    assert code == 2
    assert out == ""
    assert err == f"evidence: error: {message.replace('{file}', str(file))}\n"
    assert "hunter2" not in err


# --- orphan workers (issue 12 item 4) -------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_killed_ingest_leaves_no_analysis_worker_running(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL of `evidence ingest` (no cleanup runs) takes its analysis workers with it within
    a few seconds, even while one of them is busy on a file."""
    run(capsys, "init")
    for name in ("a.jpg", "stuck.jpg", "b.jpg"):
        path = tmp_path / name
        path.write_bytes(photo(80 + len(name) + ord(name[0])))
        run(capsys, "submit", str(path), "--case", "c")
    env = {**os.environ, FAULT_ENV: "hang:stuck", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "verification.cli", "ingest", "--workers", "2", "--no-progress"]
    ingest = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while len(workers) < 2 and time.monotonic() < deadline and ingest.poll() is None:
            time.sleep(0.2)
            workers = [p for p in _children(ingest.pid) if _running(p)]
        assert len(workers) == 2, "the ingest never started its two workers"
        ingest.send_signal(signal.SIGKILL)
        ingest.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_running(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in workers if _running(p)] == []
    finally:
        if ingest.poll() is None:
            ingest.kill()
        for pid in workers:  # only the workers this test saw started
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


# --- untrusted text on the terminal (issue 12 item 6) and rejected keys (item 7) ------------


def test_exif_key_and_agent_strings_are_printed_escaped(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ESC sequence, a newline and a bidi override in EXIF strings, in an object key and in
    the operator's name reach the screen and the log escaped, in every command that shows them."""
    from verification.core.config import load_settings
    from verification.media.samples import exif_bytes, jpeg, scene
    from verification.storage import open_store

    caplog.set_level(logging.DEBUG, logger="verification")
    monkeypatch.setenv("EVIDENCE_ANALYST", "ops\x1b]0;owned\x07")
    run(capsys, "init")
    exif = exif_bytes(
        make="Evil\x1b[2J\nCam", software="x\u202egpj.exe", taken="2024:03:14 11:20:05"
    )
    data = jpeg(scene(90, size=(320, 240)), exif)
    key = "incoming/case-1/\u202egnp.jpg"  # a valid key: format characters are allowed
    with io.BytesIO(data) as body:
        open_store(load_settings()).put(key, body)
    shown: list[str] = []
    for argv in (("ingest", "--no-progress"), ("list",), ("list", "--json")):
        code, out, err = run(capsys, *argv)
        assert code == 0
        shown += [out, err]
    assert "\\u202egnp.jpg" in shown[0]
    sha = hashlib.sha256(data).hexdigest()
    for argv in (("show", sha[:12]), ("custody", "log", sha[:12])):
        code, out, err = run(capsys, *argv)
        assert code == 0
        shown += [out, err]
    assert "camera    Evil\\x1b[2J\\x0aCam FP4" in shown[-4]
    assert "submission #1 incoming/case-1/\\u202egnp.jpg" in shown[-4]
    assert "ops\\x1b]0;owned\\x07" in shown[-2]
    records = [r.getMessage() for r in caplog.records if r.name.startswith("verification")]
    for seen in shown + records:
        assert not any(c in seen for c in ("\x1b", "\u202e", "\x07"))
        assert "\nCam" not in seen


def test_rejected_key_is_a_recorded_result_and_exits_0(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingest` lists an object with a refused key as rejected with the reason, escaped, exits 0,
    and the next ingest has nothing new."""
    run(capsys, "init")
    hostile = home / "store" / "objects" / "incoming" / "case-1" / "\x1b[2J\nERROR x.jpg"
    hostile.parent.mkdir(parents=True)
    hostile.write_bytes(b"\xff\xd8\xff")
    code, out, err = run(capsys, "ingest", "--no-progress")
    assert code == 0, err
    (row,) = [line for line in out.splitlines() if "rejected" in line and "\\x1b" in line]
    assert "\\x1b[2J\\x0aERROR x.jpg" in row
    assert "object key contains a control character" in row
    assert "1 object(s) rejected" in out
    assert not any(line.startswith("ERROR x.jpg") for line in (out + err).splitlines())
    assert "\x1b" not in out + err
    assert run(capsys, "ingest", "--no-progress")[:2] == (0, "nothing new under incoming/\n")
    assert hostile.read_bytes() == b"\xff\xd8\xff"


def test_custody_log_names_the_airflow_task_that_acted(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events written by a DAG task show DAG, run, task, map index and try, not a `?`."""
    from tests.helpers import init_context
    from verification import pipeline
    from verification.core.claims import Claims
    from verification.core.config import load_settings
    from verification.pipeline.submission import submit_file

    task = {
        "type": "execution",
        "dag_id": "evidence_intake",
        "run_id": "manual__2026-12-02T10:00:00",
        "task_id": "process_batch",
        "try_number": 2,
        "map_index": 1,
    }
    ctx = init_context(load_settings(), agents=[task])
    path = tmp_path / "a.jpg"
    path.write_bytes(photo(5))
    sha = submit_file(ctx.store, path, Claims("case-1")).sha256
    pipeline.ingest(ctx)
    code, out, _ = run(capsys, "custody", "log", sha[:12])
    assert code == 0
    expected = "airflow evidence_intake run manual__2026-12-02T10:00:00 task process_batch[1] try 2"
    assert out.count(expected) >= 5
    assert "?" not in out
