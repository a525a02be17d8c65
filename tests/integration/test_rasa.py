"""The real Rasa project: data validation, then round trips through a running server."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialogue.rasa_client import RasaRestClient
from dialogue.rasa_service import RasaService
from voicebot.ports import ConfigError, DialogueContext, DialogueError, DialogueReply

pytestmark = pytest.mark.rasa
# The client fixture lives on the session loop (see tests/conftest.py).
on_session_loop = pytest.mark.asyncio(loop_scope="session")


def new_call(language: str | None = "en", caller: str | None = "+15550100") -> DialogueContext:
    return DialogueContext(
        call_id=f"test-{uuid.uuid4().hex[:12]}", language=language, language_probability=0.9, caller=caller
    )


def spoken(reply: DialogueReply) -> str:
    return " ".join(reply.texts).lower()


def test_rasa_data_validates_without_errors(rasa_project: RasaService) -> None:
    lines: list[str] = []
    exit_code = rasa_project.validate(lines.append)
    assert exit_code == 0, "\n".join(lines[-20:])
    assert any("No story structure conflicts found" in line for line in lines)


def test_trained_model_is_fresh_until_the_training_data_changes(rasa_service: RasaService, tmp_path: Path) -> None:
    assert rasa_service.model_is_fresh()
    copy = tmp_path / "rasa"
    shutil.copytree(rasa_service.project_dir, copy, ignore=shutil.ignore_patterns(".rasa", "*.tar.gz"))
    shutil.copy(rasa_service.lock_file, tmp_path / rasa_service.lock_file.name)
    (copy / "models" / "voicebot.tar.gz").write_bytes(b"stands in for the model")
    copied = RasaService(copy, rasa_service.venv_dir)
    assert copied.fingerprint() == rasa_service.fingerprint()
    assert copied.model_is_fresh()
    with (copy / "data" / "nlu.yml").open("a") as nlu:
        nlu.write("      - what time do you open on sunday\n")
    assert copied.fingerprint() != rasa_service.fingerprint()
    assert not copied.model_is_fresh()


def test_fresh_model_is_not_retrained(rasa_service: RasaService) -> None:
    lines: list[str] = []
    assert rasa_service.train(lines.append) == rasa_service.model_path
    assert lines == [f"Rasa model {rasa_service.model_path} is up to date (training data unchanged), not retraining"]


def test_missing_rasa_venv_is_a_config_error_pointing_to_make_setup(rasa_project: RasaService, tmp_path: Path) -> None:
    service = RasaService(rasa_project.project_dir, tmp_path / "no-venv")
    with pytest.raises(ConfigError, match="make setup"):
        service.train(lambda line: None, force=True)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port where something accepts connections but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_port_taken_by_something_else_is_refused_before_starting(
    rasa_project: RasaService, silent_listener: int
) -> None:
    service = RasaService(rasa_project.project_dir, rasa_project.venv_dir, port=silent_listener)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"127.0.0.1:{silent_listener}"):
        service.ensure_running()
    assert not service.started_here
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("greeting", ["hello", "Hi there, is this city hall?", "Bonjour."])
@on_session_loop
async def test_greeting_is_answered_with_the_greeting(rasa_client: RasaRestClient, greeting: str) -> None:
    reply = await rasa_client.send(greeting, new_call())
    assert reply.intent == "greet"
    assert reply.confidence is not None and reply.confidence > 0.5
    assert "city hall" in spoken(reply) and "help" in spoken(reply)
    assert reply.handoff is None and reply.hangup is False


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("what are your opening hours", "en"),
        ("When are you open on Saturday?", "en"),
        ("quels sont vos horaires d'ouverture", "fr"),
        ("À quelle heure vous fermez le vendredi ?", "fr"),
    ],
)
@on_session_loop
async def test_opening_hours_question_gets_the_hours(rasa_client: RasaRestClient, question: str, language: str) -> None:
    reply = await rasa_client.send(question, new_call(language))
    assert reply.intent == "ask_opening_hours"
    assert "monday to friday" in spoken(reply)
    assert "8:30" in spoken(reply) and "17:00" in spoken(reply) and "saturday" in spoken(reply)


@pytest.mark.parametrize("request_text", ["I want to talk to a person", "je voudrais parler à quelqu'un"])
@on_session_loop
async def test_asking_for_a_person_hands_off_to_the_general_queue(
    rasa_client: RasaRestClient, request_text: str
) -> None:
    call = new_call("fr")
    reply = await rasa_client.send(request_text, call)
    assert reply.intent == "request_human"
    assert reply.handoff is not None
    assert reply.handoff.queue == "general"
    assert reply.handoff.reason == "caller_request"
    assert reply.handoff.language == "fr"
    assert reply.texts, "the caller should hear something before the transfer"
    assert reply.hangup is False


@pytest.mark.parametrize("farewell", ["goodbye", "merci au revoir"])
@on_session_loop
async def test_goodbye_hangs_up(rasa_client: RasaRestClient, farewell: str) -> None:
    reply = await rasa_client.send(farewell, new_call())
    assert reply.intent == "goodbye"
    assert reply.hangup is True
    assert "goodbye" in spoken(reply)
    assert reply.handoff is None


@on_session_loop
async def test_out_of_scope_request_offers_a_person_without_handing_off(rasa_client: RasaRestClient) -> None:
    reply = await rasa_client.send("I want to change the address on my driving licence", new_call())
    assert reply.intent in {"out_of_scope", "nlu_fallback"}
    assert "did not understand" in spoken(reply) and "person" in spoken(reply)
    assert reply.handoff is None and reply.hangup is False


@on_session_loop
async def test_a_conversation_keeps_its_turns_apart_from_other_calls(rasa_client: RasaRestClient) -> None:
    call, other = new_call(), new_call()
    assert (await rasa_client.send("hello", call)).intent == "greet"
    assert (await rasa_client.send("what time do you close", other)).intent == "ask_opening_hours"
    assert (await rasa_client.send("what time do you close", call)).intent == "ask_opening_hours"
    events = (await rasa_client.tracker(call.call_id, include_events="ALL"))["events"]
    user_texts = [event["text"] for event in events if event["event"] == "user"]
    assert user_texts == ["hello", "what time do you close"]


@on_session_loop
async def test_call_metadata_reaches_rasa(rasa_client: RasaRestClient) -> None:
    call = DialogueContext(
        call_id=f"meta-{uuid.uuid4().hex[:12]}", language="fr", language_probability=0.77, caller="+33100000000"
    )
    await rasa_client.send("bonjour", call)
    # parse_data (latest_message) carries no metadata in Rasa 3.6: it is on the `user` event.
    events = (await rasa_client.tracker(call.call_id, include_events="ALL"))["events"]
    metadata = [event["metadata"] for event in events if event["event"] == "user"][-1]
    assert metadata["call_id"] == call.call_id
    assert metadata["language"] == "fr"
    assert metadata["language_probability"] == pytest.approx(0.77)
    assert metadata["caller"] == "+33100000000"


@on_session_loop
async def test_wrong_token_is_a_dialogue_error_about_the_token(rasa_service: RasaService) -> None:
    async with RasaRestClient(rasa_service.url, "not-the-token") as client:
        with pytest.raises(DialogueError, match="auth token"):
            await client.send("hello", new_call())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@on_session_loop
async def test_server_that_is_down_fails_fast_with_the_fix() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    async with RasaRestClient(url, "token", timeout_s=5.0) as client:
        started = time.monotonic()
        with pytest.raises(DialogueError) as raised:
            await client.send("hello", new_call())
    assert time.monotonic() - started < 1.0
    assert f"not reachable at {url}" in str(raised.value)
    assert "make setup" in str(raised.value)
