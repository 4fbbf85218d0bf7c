"""Tenancy through the official OpenAI SDK: two keys, A and B, and an admin key, against one
gateway (or a façade in front of a worker). `tests/tenancy.rs` starts the gateway and sets
OPENAI_BASE_URL, TENANT_A_KEY, TENANT_B_KEY and TENANT_ADMIN_KEY. B cannot list, read, clear,
delete or continue A's session, and gets the very answer a missing session gets; the admin sees
both tenants' sessions. Custom routes are called with the SDK's own `client.get/post/delete`."""

import os
import uuid

import openai
import pytest
from openai import OpenAI


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set (tests/tenancy.rs sets it)")
    return value


def _client(key_var: str) -> OpenAI:
    return OpenAI(
        base_url=_env("OPENAI_BASE_URL"),
        api_key=_env(key_var),
        max_retries=0,
        timeout=60,
    )


@pytest.fixture
def alice():
    with _client("TENANT_A_KEY") as c:
        yield c


@pytest.fixture
def bob():
    with _client("TENANT_B_KEY") as c:
        yield c


@pytest.fixture
def admin():
    with _client("TENANT_ADMIN_KEY") as c:
        yield c


def _create(client: OpenAI, **body) -> dict:
    return client.post("/sessions", body=body, cast_to=object)


def _ids(client: OpenAI) -> set:
    page = client.get("/sessions", cast_to=object, options={"params": {"limit": 1000}})
    return {s["id"] for s in page["data"]}


def _turn(client: OpenAI, session_id: str, text: str):
    return client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": text}],
        extra_body={"session_id": session_id},
    )


def _not_found(call) -> openai.NotFoundError:
    with pytest.raises(openai.NotFoundError) as caught:
        call()
    assert caught.value.status_code == 404
    assert caught.value.code == "session_not_found", caught.value.body
    return caught.value


def test_another_key_cannot_see_or_use_a_session(alice: OpenAI, bob: OpenAI) -> None:
    mine = _create(alice, system_prompt="Be brief.")["id"]
    _turn(alice, mine, "My name is Ada.")
    assert mine in _ids(alice)
    assert mine not in _ids(bob)

    missing = f"sess_{uuid.uuid4().hex}"
    for call in (
        lambda id: bob.get(f"/sessions/{id}", cast_to=object),
        lambda id: bob.post(f"/sessions/{id}/clear", cast_to=object),
        lambda id: bob.delete(f"/sessions/{id}", cast_to=object),
        lambda id: _turn(bob, id, "What is my name?"),
    ):
        theirs = _not_found(lambda: call(mine))
        absent = _not_found(lambda: call(missing))
        # The same answer as a session that never existed, but for the id.
        assert theirs.message.replace(mine, "ID") == absent.message.replace(missing, "ID")

    # A paging cursor naming another tenant's session is no cursor.
    with pytest.raises(openai.BadRequestError):
        bob.get("/sessions", cast_to=object, options={"params": {"after": mine}})

    # Nothing B tried changed A's session.
    session = alice.get(f"/sessions/{mine}", cast_to=object)
    assert session["message_count"] == 2
    assert "Ada" in str(session["messages"][0])


def test_an_id_taken_by_another_tenant_is_refused_like_ones_own(
    alice: OpenAI, bob: OpenAI
) -> None:
    wanted = f"shared-{uuid.uuid4().hex[:8]}"
    _create(alice, id=wanted)
    for client in (alice, bob):
        with pytest.raises(openai.BadRequestError) as caught:
            _create(client, id=wanted)
        assert caught.value.code == "session_exists"
    assert wanted not in _ids(bob)


def test_an_admin_key_sees_every_tenant(alice: OpenAI, bob: OpenAI, admin: OpenAI) -> None:
    a = _create(alice)["id"]
    b = _create(bob)["id"]
    seen = _ids(admin)
    assert {a, b} <= seen
    assert admin.get(f"/sessions/{a}", cast_to=object)["id"] == a
    admin.delete(f"/sessions/{b}", cast_to=object)
    _not_found(lambda: bob.get(f"/sessions/{b}", cast_to=object))
    # The owner still deletes its own.
    alice.delete(f"/sessions/{a}", cast_to=object)
    _not_found(lambda: admin.get(f"/sessions/{a}", cast_to=object))


def test_another_key_cannot_see_or_continue_a_stored_response(
    alice: OpenAI, bob: OpenAI, admin: OpenAI
) -> None:
    mine = alice.responses.create(model="gpt-4o", input="My name is Ada.")
    assert alice.responses.retrieve(mine.id).id == mine.id
    for call in (
        lambda: bob.responses.retrieve(mine.id),
        lambda: bob.responses.input_items.list(mine.id),
        lambda: bob.responses.delete(mine.id),
        lambda: bob.responses.create(model="gpt-4o", input="Who?", previous_response_id=mine.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "response_not_found", caught.value.body
    # Nothing of that touched it; the admin reaches it too.
    assert alice.responses.retrieve(mine.id).output_text == mine.output_text
    assert admin.responses.retrieve(mine.id).id == mine.id
    later = alice.responses.create(model="gpt-4o", input="Again.", previous_response_id=mine.id)
    assert later.previous_response_id == mine.id
