"""Case status: SQLite backend on the shipped CSV, HTTP backend against a real local server, spoken status."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dialogue.cases import (
    STATUSES,
    CaseBackendError,
    CaseStatus,
    HttpCaseBackend,
    SqliteCaseBackend,
    case_backend_from_env,
    read_cases_csv,
    status_sentence,
)
from dialogue.state import DATA_DIR

SLOW_ANSWER_S = 1.0
KNOWN_CASE: dict[str, Any] = {
    "reference": "PA-12345", "kind": "passport", "status": "ready_for_pickup", "updated": "2026-03-03",
    "details": {"pickup_until": "2026-06-03"},
}  # fmt: skip


@pytest.fixture
def backend(tmp_path: Path) -> SqliteCaseBackend:
    return SqliteCaseBackend(tmp_path / "cases.sqlite")


def test_shipped_cases_are_valid_and_cover_every_status() -> None:
    cases = read_cases_csv(DATA_DIR / "cases.csv")
    assert len(cases) >= 30
    assert {case.status for case in cases} == set(STATUSES)
    assert len({case.reference for case in cases}) == len(cases)
    assert len({case.reference[3:] for case in cases}) == len(cases), "digits must be unique for keypad lookups"
    assert all(case.updated.startswith("2026-") for case in cases)


def test_lookup_by_reference_and_by_keypad_digits(backend: SqliteCaseBackend) -> None:
    case = backend.lookup("PA-12345")
    assert case == CaseStatus(**KNOWN_CASE)
    assert backend.lookup("pa-12345 ") == case
    assert backend.lookup("12345") == case
    assert backend.lookup("PA-99999") is None
    assert backend.lookup("99999") is None
    assert backend.lookup("not a reference") is None


def test_keypad_digits_shared_by_two_cases_are_not_guessed(tmp_path: Path) -> None:
    csv_path = tmp_path / "cases.csv"
    csv_path.write_text(
        "reference,kind,status,updated,details\n"
        "PA-11111,passport,received,2026-03-01,\n"
        "ID-11111,id_card,incomplete,2026-03-02,missing=photo; note=second visit\n",
        encoding="utf-8",
    )
    backend = SqliteCaseBackend(tmp_path / "cases.sqlite", seed_csv=csv_path)
    assert backend.lookup("11111") is None
    found = backend.lookup("ID-11111")
    assert found is not None and found.details == {"missing": "photo", "note": "second visit"}


def test_seed_happens_once_and_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "cases.sqlite"
    SqliteCaseBackend(db)
    other_csv = tmp_path / "other.csv"
    other_csv.write_text("reference,kind,status,updated,details\nZZ-00001,permit,received,2026-01-01,\n", "utf-8")
    reopened = SqliteCaseBackend(db, seed_csv=other_csv)
    assert reopened.lookup("PA-12345") is not None
    assert reopened.lookup("ZZ-00001") is None


@pytest.mark.parametrize(
    ("row", "message"),
    [("PA-1234,passport,received,2026-03-01,", r"line 2: field 'reference'"),
     ("PA-12345,passport,lost,2026-03-01,", r"line 2: field 'status' 'lost'"),
     ("PA-12345,passport,received,03/01/2026,", r"line 2: field 'updated'"),
     ("PA-12345,passport,received,2026-03-01,photo", r"line 2: field 'details'")],
)  # fmt: skip
def test_bad_seed_file_names_the_line_and_field(tmp_path: Path, row: str, message: str) -> None:
    csv_path = tmp_path / "cases.csv"
    csv_path.write_text(f"reference,kind,status,updated,details\n{row}\n", encoding="utf-8")
    with pytest.raises(CaseBackendError, match=message):
        SqliteCaseBackend(tmp_path / "cases.sqlite", seed_csv=csv_path)


# --- HTTP backend against a real server on 127.0.0.1 -------------------------------------------


class CaseServiceHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer secret":
            return self._send(401, b"{}")
        routes = {
            "/cases/PA-12345": (200, json.dumps(KNOWN_CASE).encode()),
            "/cases/12345": (200, json.dumps(KNOWN_CASE).encode()),
            "/cases/EC-50000": (500, b"internal error"),
            "/cases/ID-11111": (200, b"<html>maintenance</html>"),
            "/cases/ID-22222": (200, json.dumps({**KNOWN_CASE, "status": "teleported"}).encode()),
        }
        if self.path == "/cases/PE-99999":
            time.sleep(SLOW_ANSWER_S)
        status, body = routes.get(self.path, (404, b'{"error": "not found"}'))
        self._send(status, body)

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def case_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CaseServiceHandler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_lookup_found_and_unknown(case_service: str) -> None:
    backend = HttpCaseBackend(case_service + "/", timeout_s=2.0, token="secret")
    assert backend.lookup("PA-12345") == CaseStatus(**KNOWN_CASE)
    assert backend.lookup("12345") == CaseStatus(**KNOWN_CASE)
    assert backend.lookup("XX-00000") is None


@pytest.mark.parametrize(
    ("reference", "message"),
    [("EC-50000", "answered HTTP 500"), ("ID-11111", "not JSON"), ("ID-22222", "field 'status' 'teleported'")],
)
def test_http_bad_answers_raise(case_service: str, reference: str, message: str) -> None:
    with pytest.raises(CaseBackendError, match=message):
        HttpCaseBackend(case_service, token="secret").lookup(reference)


def test_http_wrong_token_raises(case_service: str) -> None:
    with pytest.raises(CaseBackendError, match="HTTP 401"):
        HttpCaseBackend(case_service, token="wrong").lookup("PA-12345")


def test_http_slow_service_times_out(case_service: str) -> None:
    backend = HttpCaseBackend(case_service, timeout_s=0.2, token="secret")
    started = time.monotonic()
    with pytest.raises(CaseBackendError, match=r"did not answer within 0.2 s"):
        backend.lookup("PE-99999")
    assert time.monotonic() - started < SLOW_ANSWER_S


def test_http_unreachable_service_raises() -> None:
    with pytest.raises(CaseBackendError, match="unreachable"):
        HttpCaseBackend("http://127.0.0.1:9", timeout_s=1.0).lookup("PA-12345")


def test_backend_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case_service: str) -> None:
    monkeypatch.setenv("VOICEBOT_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("VOICEBOT_CASE_BACKEND", raising=False)
    default = case_backend_from_env()
    assert isinstance(default, SqliteCaseBackend) and default.db_path == tmp_path / "cases.sqlite"
    monkeypatch.setenv("VOICEBOT_CASE_BACKEND", "http")
    monkeypatch.setenv("VOICEBOT_CASE_URL", case_service)
    monkeypatch.setenv("VOICEBOT_CASE_TIMEOUT_S", "0.5")
    monkeypatch.setenv("VOICEBOT_CASE_TOKEN", "secret")
    http = case_backend_from_env()
    assert isinstance(http, HttpCaseBackend) and http.timeout_s == 0.5
    assert http.lookup("PA-12345") == CaseStatus(**KNOWN_CASE)
    monkeypatch.setenv("VOICEBOT_CASE_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="VOICEBOT_CASE_TIMEOUT_S"):
        case_backend_from_env()
    monkeypatch.setenv("VOICEBOT_CASE_BACKEND", "ldap")
    with pytest.raises(ValueError, match="VOICEBOT_CASE_BACKEND"):
        case_backend_from_env()


# --- spoken status -----------------------------------------------------------------------------

STATUS_DETAILS = {"incomplete": {"missing": "photo"}, "appointment_scheduled": {"appointment": "2026-03-12 10:30"},
                  "rejected": {"reason": "photo_not_compliant"}}  # fmt: skip
EXPECTED_WORDS = {
    "en": {"received": "received on 3 March", "in_review": "under review since 3 March",
           "incomplete": "missing a compliant photo", "appointment_scheduled": "appointment on 12 March at 10:30",
           "ready_for_pickup": "ready for pickup since 3 March", "completed": "completed on 3 March",
           "rejected": "rejected on 3 March, because the photo"},
    "fr": {"received": "reçue le 3 mars", "in_review": "en cours de traitement depuis le 3 mars",
           "incomplete": "il manque une photo conforme", "appointment_scheduled": "12 mars à 10 heures 30",
           "ready_for_pickup": "prête à être retirée depuis le 3 mars", "completed": "finalisée le 3 mars",
           "rejected": "refusée le 3 mars, car la photo"},
}  # fmt: skip


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("status", STATUSES)
def test_status_sentence_for_every_status(status: str, language: str) -> None:
    case = CaseStatus("PA-12345", "passport", status, "2026-03-03", STATUS_DETAILS.get(status, {}))
    sentence = status_sentence(case, language)
    assert EXPECTED_WORDS[language][status] in sentence
    assert "P, A, 1, 2, 3, 4, 5" in sentence
    assert ("passport" if language == "en" else "passeport") in sentence
    assert "{" not in sentence and "_" not in sentence


def test_status_sentence_survives_odd_details_and_kinds() -> None:
    case = CaseStatus("ZZ-00001", "boat_licence", "appointment_scheduled", "2026-01-01", {"appointment": "soon"})
    assert status_sentence(case, "fr") == (
        "Pour votre demande Z, Z, 0, 0, 0, 0, 1, le rendez-vous est fixé au 1er janvier, "
        "au guichet des services à la population."
    )
    odd = CaseStatus("ZZ-00002", "passport", "archived", "2026-02-01", {})
    assert status_sentence(odd, "en") == "Your passport application Z, Z, 0, 0, 0, 0, 2 was last updated on 1 February."
