"""The `evidence` command: setup, submission, ingest, inspection and custody checks, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.helpers import photo
from verification.cli import main
from verification.db import make_engine

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
