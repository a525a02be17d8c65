"""Status of a citizen's case (passport, ID card, certificate, permit, marriage) by its reference.

Two backends: a local SQLite copy seeded from `data/cases.csv` (demo and tests) and the city's case
service over HTTP. A reference is "AB-12345"; a caller on the keypad gives the 5 digits alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from dialogue.references import speakable_reference
from dialogue.state import DATA_DIR, open_database, state_dir

REFERENCE_RE = re.compile(r"^[A-Z]{2}-[0-9]{5}$")
DIGITS_RE = re.compile(r"^[0-9]{5}$")
STATUSES = ("received", "in_review", "incomplete", "appointment_scheduled", "ready_for_pickup", "completed", "rejected")
CASE_FIELDS = ("reference", "kind", "status", "updated")


class CaseBackendError(RuntimeError):
    """The case service timed out, could not be reached or gave an answer that makes no sense."""


@dataclass(frozen=True)
class CaseStatus:
    reference: str
    kind: str
    status: str  # one of STATUSES
    updated: str  # ISO date
    details: dict[str, str] = field(default_factory=dict)


class CaseBackend(Protocol):
    def lookup(self, reference: str) -> CaseStatus | None:
        """Reference "AB-12345" or its 5 digits (keypad) -> the case, or None when unknown."""
        ...


def _canonical(reference: str) -> str | None:
    candidate = reference.strip().upper()
    return candidate if REFERENCE_RE.match(candidate) or DIGITS_RE.match(candidate) else None


def case_from_mapping(data: Any, where: str) -> CaseStatus:
    """Validate one case record (CSV row or JSON answer); raises CaseBackendError naming `where`."""
    if not isinstance(data, dict):
        raise CaseBackendError(f"{where}: expected an object with {', '.join(CASE_FIELDS)}")
    for name in CASE_FIELDS:
        if not isinstance(data.get(name), str) or not data[name]:
            raise CaseBackendError(f"{where}: field '{name}' is missing or empty")
    if not REFERENCE_RE.match(data["reference"]):
        raise CaseBackendError(f"{where}: field 'reference' {data['reference']!r} is not like AB-12345")
    if data["status"] not in STATUSES:
        raise CaseBackendError(f"{where}: field 'status' {data['status']!r} is not one of {', '.join(STATUSES)}")
    try:
        dt.date.fromisoformat(data["updated"])
    except ValueError:
        raise CaseBackendError(f"{where}: field 'updated' {data['updated']!r} is not a date YYYY-MM-DD") from None
    details = data.get("details") or {}
    if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
        raise CaseBackendError(f"{where}: field 'details' must map names to texts")
    return CaseStatus(data["reference"], data["kind"], data["status"], data["updated"], dict(details))


def _parse_details(text: str, where: str) -> dict[str, str]:
    """CSV details column: "key=value; key=value"."""
    details: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CaseBackendError(f"{where}: field 'details' has {pair!r}, expected key=value")
        details[key.strip()] = value.strip()
    return details


def read_cases_csv(path: Path) -> list[CaseStatus]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise CaseBackendError(f"{path}: cannot read the cases file ({error.strerror})") from None
    cases = []
    for line, row in enumerate(rows, start=2):
        where = f"{path}, line {line}"
        record = {**row, "details": _parse_details(row.get("details") or "", where)}
        cases.append(case_from_mapping(record, where))
    return cases


class SqliteCaseBackend:
    """Cases in SQLite (sqlite-utils); a fresh database is seeded from `seed_csv`."""

    def __init__(self, db_path: Path | None = None, seed_csv: Path | None = None) -> None:
        self.db_path = db_path or state_dir() / "cases.sqlite"
        self.seed_csv = seed_csv or DATA_DIR / "cases.csv"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with open_database(self.db_path) as db:
            table = db.table("cases")
            if not table.exists() or table.count == 0:
                rows = [{**asdict(case), "details": json.dumps(case.details)} for case in read_cases_csv(self.seed_csv)]
                table.insert_all(rows, pk="reference", replace=True)
                table.create_index(["status"], if_not_exists=True)

    def lookup(self, reference: str) -> CaseStatus | None:
        key = _canonical(reference)
        if key is None:
            return None
        with open_database(self.db_path) as db:
            if DIGITS_RE.match(key):
                rows = list(db.table("cases").rows_where("substr(reference, 4) = ?", [key], limit=2))
            else:
                rows = list(db.table("cases").rows_where("reference = ?", [key]))
        if len(rows) != 1:  # unknown, or several references share these digits: never guess
            return None
        row = rows[0]
        return CaseStatus(row["reference"], row["kind"], row["status"], row["updated"], json.loads(row["details"]))


class HttpCaseBackend:
    """GET {base_url}/cases/{reference} -> 200 JSON case | 404 unknown; anything else is CaseBackendError.

    Uses urllib (stdlib): httpx is not installed in the Rasa action server's venv."""

    def __init__(self, base_url: str, timeout_s: float = 2.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def lookup(self, reference: str) -> CaseStatus | None:
        key = _canonical(reference)
        if key is None:
            return None
        url = f"{self.base_url}/cases/{quote(key)}"
        body = self._get(url)
        if body is None:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            raise CaseBackendError(f"case service {url} answered something that is not JSON") from None
        return case_from_mapping(data, f"case service {url}")

    def _get(self, url: str) -> bytes | None:
        """Body of a 200 answer; None for 404."""
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                if response.status != 200:
                    raise CaseBackendError(f"case service {url} answered HTTP {response.status}")
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise CaseBackendError(f"case service {url} answered HTTP {error.code}") from None
        except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
            raise CaseBackendError(f"case service {url} did not answer within {self.timeout_s:g} s") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                raise CaseBackendError(f"case service {url} did not answer within {self.timeout_s:g} s") from None
            raise CaseBackendError(f"case service {url} is unreachable: {reason}") from None


def case_backend_from_env() -> CaseBackend:
    """VOICEBOT_CASE_BACKEND=sqlite (default) | http, with VOICEBOT_CASE_URL, VOICEBOT_CASE_TIMEOUT_S,
    VOICEBOT_CASE_TOKEN; raises ValueError naming the variable when the setting is unusable."""
    kind = os.environ.get("VOICEBOT_CASE_BACKEND", "sqlite").strip().lower()
    if kind == "sqlite":
        return SqliteCaseBackend()
    if kind != "http":
        raise ValueError(f"VOICEBOT_CASE_BACKEND={kind!r} is not supported: use sqlite or http")
    url = os.environ.get("VOICEBOT_CASE_URL", "").strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError("VOICEBOT_CASE_URL must be set to the case service address (http://... or https://...)")
    timeout_text = os.environ.get("VOICEBOT_CASE_TIMEOUT_S", "2.0")
    try:
        timeout_s = float(timeout_text)
    except ValueError:
        raise ValueError(f"VOICEBOT_CASE_TIMEOUT_S={timeout_text!r} is not a number of seconds") from None
    if timeout_s <= 0:
        raise ValueError(f"VOICEBOT_CASE_TIMEOUT_S={timeout_text!r} must be more than 0")
    return HttpCaseBackend(url, timeout_s=timeout_s, token=os.environ.get("VOICEBOT_CASE_TOKEN") or None)


# --- spoken status ---------------------------------------------------------------------------

SUBJECTS = {
    "en": {"passport": "passport application", "id_card": "identity card application",
           "civil_status": "certificate request", "permit": "parking permit application", "marriage": "marriage file"},
    "fr": {"passport": "demande de passeport", "id_card": "demande de carte d'identité",
           "civil_status": "demande d'acte d'état civil", "permit": "demande de carte de stationnement",
           "marriage": "demande de mariage"},
}  # fmt: skip
DEFAULT_SUBJECT = {"en": "file", "fr": "demande"}
TEMPLATES = {
    "en": {
        "received": "Your {subject} {ref} was received on {date} and will be processed soon.",
        "in_review": "Your {subject} {ref} has been under review since {date}.",
        "incomplete": "Your {subject} {ref} has been on hold since {date}: we are missing {missing}. "
        "Please bring it to the citizen services desk.",
        "appointment_scheduled": "Your {subject} {ref} has an appointment on {appointment}, "
        "at the citizen services desk.",
        "ready_for_pickup": "Your {subject} {ref} has been ready for pickup since {date}.",
        "completed": "Your {subject} {ref} was completed on {date}.",
        "rejected": "Your {subject} {ref} was rejected on {date}{reason}. An agent can explain the next steps.",
        "unknown": "Your {subject} {ref} was last updated on {date}.",
    },
    "fr": {
        "received": "Votre {subject} {ref} a été reçue le {date} et sera traitée prochainement.",
        "in_review": "Votre {subject} {ref} est en cours de traitement depuis le {date}.",
        "incomplete": "Votre {subject} {ref} est en attente depuis le {date} : il manque {missing}. "
        "Merci de l'apporter au guichet des services à la population.",
        "appointment_scheduled": "Pour votre {subject} {ref}, le rendez-vous est fixé au {appointment}, "
        "au guichet des services à la population.",
        "ready_for_pickup": "Votre {subject} {ref} est prête à être retirée depuis le {date}.",
        "completed": "Votre {subject} {ref} a été finalisée le {date}.",
        "rejected": "Votre {subject} {ref} a été refusée le {date}{reason}. Un agent peut vous expliquer la suite.",
        "unknown": "Votre {subject} {ref} a été mise à jour le {date}.",
    },
}
MISSING = {
    "en": {"photo": "a compliant photo", "proof_of_address": "a proof of address",
           "birth_certificate": "a birth certificate", "signature": "your signature on the form", "": "a document"},
    "fr": {"photo": "une photo conforme", "proof_of_address": "un justificatif de domicile",
           "birth_certificate": "un acte de naissance", "signature": "votre signature sur le formulaire",
           "": "un document"},
}  # fmt: skip
REASONS = {
    "en": {"photo_not_compliant": ", because the photo does not meet the standards",
           "not_resident": ", because the address is outside the city",
           "incomplete_file": ", because the file was incomplete"},
    "fr": {"photo_not_compliant": ", car la photo n'est pas conforme",
           "not_resident": ", car l'adresse est hors de la commune",
           "incomplete_file": ", car le dossier était incomplet"},
}  # fmt: skip
MONTHS = {
    "en": str.split("January February March April May June July August September October November December"),
    "fr": str.split("janvier février mars avril mai juin juillet août septembre octobre novembre décembre"),
}


def spoken_date(iso_date: str, language: str) -> str:
    """Date "2026-03-03" -> "3 March" / "3 mars" ("1er mars" in French)."""
    day = dt.date.fromisoformat(iso_date[:10])
    number = "1er" if language == "fr" and day.day == 1 else str(day.day)
    return f"{number} {MONTHS[language][day.month - 1]}"


def spoken_appointment(value: str, language: str) -> str:
    """Appointment "2026-03-12 10:30" -> "12 March at 10:30" / "12 mars à 10 heures 30"."""
    date_part, _, time_part = value.strip().partition(" ")
    when = spoken_date(date_part, language)
    if not time_part:
        return when
    hours, _, minutes = time_part.partition(":")
    if language == "fr":
        return f"{when} à {int(hours)} heures" + (f" {minutes}" if minutes not in ("", "00") else "")
    return f"{when} at {int(hours)}:{minutes or '00'}"


def status_sentence(case: CaseStatus, language: str) -> str:
    """One or two sentences for TTS; the reference is read one character at a time."""
    if language not in TEMPLATES:
        raise ValueError(f"unsupported language {language!r}: use en or fr")
    template = TEMPLATES[language].get(case.status, TEMPLATES[language]["unknown"])
    details = case.details
    try:
        appointment = spoken_appointment(details["appointment"], language)
    except (KeyError, ValueError):  # absent or malformed: the date of the last update is still true
        appointment = spoken_date(case.updated, language)
    return template.format(
        subject=SUBJECTS[language].get(case.kind, DEFAULT_SUBJECT[language]),
        ref=speakable_reference(case.reference, language),
        date=spoken_date(case.updated, language),
        missing=MISSING[language].get(details.get("missing", ""), MISSING[language][""]),
        reason=REASONS[language].get(details.get("reason", ""), ""),
        appointment=appointment,
    )
