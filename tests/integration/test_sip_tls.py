"""SIP over TLS: the worker accepts TLS 1.2 only (pjsua2's bundled OpenSSL 1.0.2 would also offer 1.0/1.1)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sip_harness import Worker, start_worker, write_config

TLS_PORT, UDP_PORT = 5561, 5560


@pytest.fixture(scope="module")
def tls_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
               "-days", "2", "-subj", "/CN=127.0.0.1"]  # fmt: skip
    subprocess.run(openssl, check=True, capture_output=True)
    sip = {"tls_port": TLS_PORT, "tls_cert": str(cert), "tls_key": str(key), "rtp_port": 47000}
    config = write_config(folder / "voicebot.yaml", {"sip": sip, "dialogue": {"rasa_url": "http://127.0.0.1:9"}})
    worker = start_worker(config, UDP_PORT, folder, name="tls")
    yield worker
    assert worker.stop() == 0, worker.log()[-2000:]


def _handshake(version: ssl.TLSVersion) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client even try the old versions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", TLS_PORT), timeout=5) as raw, context.wrap_socket(raw) as tls:
        return str(tls.version())


def test_tls_1_2_is_accepted(tls_worker: Worker) -> None:
    assert _handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_older_tls_versions_are_refused(tls_worker: Worker, version: ssl.TLSVersion) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(version)


def test_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.yaml", {"sip": {"tls_port": 5562, "tls_cert": str(tmp_path / "none.pem")}})
    with pytest.raises(RuntimeError, match=r"sip\.tls_cert and sip\.tls_key must name files"):
        start_worker(config, 5563, tmp_path, name="badtls", timeout_s=60)
