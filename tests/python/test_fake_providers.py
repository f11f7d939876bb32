"""The fakes refuse what the real APIs refuse, and answer in shapes the official SDKs accept."""

import json
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

from fake_providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders


@pytest.fixture(scope="module")
def fakes():
    server = FakeProviders()
    yield server
    server.close()


def post(url, body, headers):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def anthropic_post(fakes, body):
    return post(
        fakes.url("anthropic") + "/v1/messages",
        body,
        {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    )


def openai_post(fakes, body):
    return post(fakes.url("openai") + "/v1/chat/completions", body, {"authorization": f"Bearer {OPENAI_KEY}"})


USER = {"role": "user", "content": "hi"}


def test_anthropic_without_max_tokens_is_refused(fakes):
    status, body = anthropic_post(fakes, {"model": "claude", "messages": [USER]})
    assert status == 400 and body["type"] == "error"
    assert "max_tokens" in body["error"]["message"]


def test_anthropic_tool_result_without_tool_use_id_is_refused(fakes):
    status, body = anthropic_post(fakes, {
        "model": "claude",
        "max_tokens": 10,
        "messages": [
            USER,
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "x"}]},
        ],
    })
    assert status == 400 and "tool_use_id" in body["error"]["message"]


def test_anthropic_system_role_in_messages_is_refused(fakes):
    status, _ = anthropic_post(fakes, {
        "model": "claude",
        "max_tokens": 10,
        "messages": [{"role": "system", "content": "be nice"}, USER],
    })
    assert status == 400


def test_anthropic_wrong_key_is_refused(fakes):
    status, body = post(fakes.url("anthropic") + "/v1/messages", {}, {"x-api-key": "nope", "anthropic-version": "2023-06-01"})
    assert status == 401 and body["error"]["type"] == "authentication_error"


def test_openai_tool_message_without_tool_call_id_is_refused(fakes):
    status, body = openai_post(fakes, {
        "model": "gpt",
        "messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "tool", "content": "x"},
        ],
    })
    assert status == 400 and "tool_call_id" in body["error"]["message"]


def test_openai_unknown_role_is_refused(fakes):
    status, body = openai_post(fakes, {"model": "gpt", "messages": [{"role": "robot", "content": "x"}]})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


def test_openai_unanswered_tool_call_is_refused(fakes):
    status, _ = openai_post(fakes, {
        "model": "gpt",
        "messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            USER,
        ],
    })
    assert status == 400


def test_the_official_openai_client_reads_the_fake(fakes):
    client = openai.OpenAI(base_url=fakes.url("openai") + "/v1", api_key=OPENAI_KEY, max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert completion.choices[0].message.content.startswith("[fake-openai]")


def test_the_official_anthropic_client_reads_the_fake(fakes):
    client = anthropic.Anthropic(base_url=fakes.url("anthropic"), api_key=ANTHROPIC_KEY, max_retries=0)
    tools = [{"name": "get_customer_info", "description": "", "input_schema": {"type": "object", "properties": {}}}]
    message = client.messages.create(
        model="claude-test",
        max_tokens=100,
        tools=tools,
        messages=[{"role": "user", "content": "Please look up customer C001."}],
    )
    assert message.stop_reason == "tool_use"
    assert message.content[-1].type == "tool_use" and message.content[-1].input == {"customer_id": "C001"}
