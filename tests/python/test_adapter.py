"""End to end: the official `openai` client calls `scopegate adapter`, which routes to the fake
providers, which ask for tools, which run through scopegate (`scopegate demo --serve`: dev issuer,
proxy on TLS, rmcp sample server) under the shipped customer-service policy."""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import urllib.request
import openai
import pytest
from openai.types.chat import ChatCompletion

from fake_providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders

ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SCOPEGATE_BIN", str(ROOT / "target" / "debug" / "scopegate"))
API_KEY = "adapter-test-key"
DEADLINE = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def stop(process):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    endpoints_file = tmp_path_factory.mktemp("demo") / "endpoints.json"
    process = subprocess.Popen(
        [BINARY, "demo", "--serve", "--endpoints-file", str(endpoints_file)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        wait_for(lambda: endpoints_file.exists() and endpoints_file.stat().st_size > 0, "demo endpoints")
        yield json.loads(endpoints_file.read_text())
    finally:
        stop(process)


@pytest.fixture(scope="session")
def fakes():
    server = FakeProviders()
    yield server
    server.close()


class Adapter:
    def __init__(self, base_url, admin_url, log):
        self.base_url = base_url
        self.admin_url = admin_url
        self.log = log
        self.client = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    def metrics(self):
        with urllib.request.urlopen(f"{self.admin_url}/metrics") as response:
            return response.read().decode()

    def metric(self, name, **labels):
        """One series' value from /metrics, whatever order its labels are written in; None when
        the series is absent."""
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{"):
                continue
            series, value = line.rsplit(" ", 1)
            pairs = dict(re.findall(r'(\w+)="([^"]*)"', series[len(name):]))
            if pairs == labels:
                return float(value)
        return None

    def audit_lines(self):
        lines = [json.loads(l) for l in self.log.read_text().splitlines() if l.startswith("{")]
        return [l for l in lines if l.get("target") == "audit"]


def start_adapter(tmp, demo, fakes, client_id):
    api, admin = free_port(), free_port()
    config = tmp / f"{client_id}.toml"
    config.write_text(f"""
[listen]
address = "127.0.0.1:{api}"
api_key_env = "ADAPTER_API_KEY"

[mcp]
url = "{demo['mcp_url']}"
ca_file = "{demo['ca_file']}"
max_tool_rounds = 3

[oauth]
token_url = "{demo['token_url']}"
client_id = "{client_id}"
client_secret_env = "OAUTH_CLIENT_SECRET"
resource = "{demo['resource']}"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{fakes.url('openai')}/v1"
api_key_env = "OPENAI_API_KEY"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{fakes.url('anthropic')}"
api_key_env = "ANTHROPIC_API_KEY"

[[providers]]
name = "local"
kind = "openai-compatible"
base_url = "{fakes.url('compat')}/v1"

[[providers]]
name = "badkey"
kind = "openai"
base_url = "{fakes.url('openai')}/v1"
api_key_env = "WRONG_OPENAI_KEY"

[[providers]]
name = "cut"
kind = "openai-compatible"
base_url = "{fakes.url('cut')}/v1"

[[providers]]
name = "flaky"
kind = "openai-compatible"
base_url = "{fakes.url('down')}/v1"

[models.support]
targets = ["flaky/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]

[models.keyed]
targets = ["badkey/gpt-4o-mini", "local/llama-3.1-8b"]

[routing]
max_retries = 1
backoff = "20ms"

[admin]
address = "127.0.0.1:{admin}"
""")
    log = tmp / f"{client_id}.log"
    env = {
        **os.environ,
        "ADAPTER_API_KEY": API_KEY,
        "OAUTH_CLIENT_SECRET": demo["client_secret"],
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "WRONG_OPENAI_KEY": "sk-revoked",
        "RUST_LOG": "info",
    }
    process = subprocess.Popen([BINARY, "adapter", "--config", str(config)], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)

    def healthy():
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz") as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(healthy, "adapter health")
    return process, Adapter(f"http://127.0.0.1:{api}/v1", f"http://127.0.0.1:{admin}", log)


@pytest.fixture(scope="session")
def support(tmp_path_factory, demo, fakes):
    process, adapter = start_adapter(tmp_path_factory.mktemp("support"), demo, fakes, "support-agent")
    yield adapter
    stop(process)


@pytest.fixture(scope="session")
def readonly(tmp_path_factory, demo, fakes):
    process, adapter = start_adapter(tmp_path_factory.mktemp("readonly"), demo, fakes, "readonly-agent")
    yield adapter
    stop(process)


def ask(adapter, model, text):
    raw = adapter.client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "You answer customer-support questions."},
            {"role": "user", "content": text},
        ],
    )
    completion = raw.parse()
    # Strict: the adapter's body must be a valid ChatCompletion by the SDK's own model.
    ChatCompletion.model_validate_json(raw.http_response.text)
    return completion, raw.headers


PROVIDERS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "local/llama-3.1-8b"]


@pytest.mark.parametrize("model", PROVIDERS)
def test_customer_lookup_runs_the_tool_through_scopegate(support, model):
    completion, headers = ask(support, model, "Please look up customer C001.")
    answer = completion.choices[0].message.content
    assert "get_customer_info returned" in answer, answer
    assert "Alice Martin" in answer and "gold" in answer
    assert headers["x-scopegate-target"] == model
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0


@pytest.mark.parametrize("model", PROVIDERS)
def test_account_value_is_calculated_for_the_support_client(support, model):
    completion, _ = ask(support, model, "What is the account value of customer C001?")
    answer = completion.choices[0].message.content
    assert "calculate_account_value returned" in answer, answer
    assert "520.49" in answer


@pytest.mark.parametrize("model", PROVIDERS)
def test_ticket_creation_is_refused_for_the_read_only_client(readonly, model):
    completion, _ = ask(readonly, model, "Open a ticket for customer C002: refund request.")
    answer = completion.choices[0].message.content
    assert "could not do that" in answer, answer
    assert "insufficient_scope" in answer and "ticket:create" in answer
    denied = [l for l in readonly.audit_lines() if l.get("tool") == "create_support_ticket"]
    assert denied and all(l["decision"] == "deny" for l in denied)
    assert denied[-1]["caller"] == "readonly-agent"
    # Only the scope the token lacks is named, not the ones it holds.
    assert "customer:read" not in answer, answer
    # The proxy filtered the tool out of the read-only client's listing, so the adapter counts
    # the model's call to it under the bounded "_other" label.
    assert readonly.metric("scopegate_adapter_tool_calls_total", tool="_other", decision="deny") >= 1


def test_a_plain_question_needs_no_tool(readonly):
    completion, headers = ask(readonly, "local/llama-3.1-8b", "Hi there")
    assert completion.choices[0].message.content.startswith("[fake-compat] Hello!")
    assert headers["x-scopegate-fallbacks"] == "0"


def test_a_provider_failing_with_503_falls_back_to_the_next_target(support, fakes):
    before = fakes.hits("down")
    completion, headers = ask(support, "support", "Please look up customer C003.")
    assert "Carla Diaz" in completion.choices[0].message.content
    assert headers["x-scopegate-target"] == "anthropic/claude-sonnet-4-5"
    assert headers["x-scopegate-fallbacks"] == "1"
    # One try and one retry on the failing target, then the fallback.
    assert fakes.hits("down") - before == 2
    fallbacks = dict(provider="flaky", model="gpt-4o-mini", reason="server_error")
    assert support.metric("scopegate_adapter_fallbacks_total", **fallbacks) >= 1
    answered = dict(provider="anthropic", model="claude-sonnet-4-5", outcome="ok")
    assert support.metric("scopegate_adapter_requests_total", **answered) >= 1


def test_a_provider_refusing_the_adapters_key_is_a_502_naming_that_provider(support, fakes):
    before = fakes.hits("openai")
    with pytest.raises(openai.InternalServerError) as error:
        support.client.chat.completions.create(
            model="badkey/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    # Not a 401: the caller's own key was fine, and its client must not think otherwise.
    assert error.value.status_code == 502
    assert error.value.body["code"] == "provider_auth_failed"
    assert '"badkey"' in error.value.body["message"], error.value.body
    assert "Incorrect API key provided" in error.value.body["message"]
    assert fakes.hits("openai") - before == 1, "an auth failure is not retried"


def test_a_provider_auth_failure_falls_back_to_the_next_target(support, fakes):
    before = fakes.hits("openai")
    completion, headers = ask(support, "keyed", "Hi there")
    assert completion.choices[0].message.content.startswith("[fake-compat] Hello!")
    assert headers["x-scopegate-target"] == "local/llama-3.1-8b"
    assert headers["x-scopegate-fallbacks"] == "1"
    assert fakes.hits("openai") - before == 1
    labels = dict(provider="badkey", model="gpt-4o-mini", reason="auth_failed")
    assert support.metric("scopegate_adapter_fallbacks_total", **labels) >= 1


def test_metrics_show_every_known_series_at_zero_from_the_start(readonly):
    labels = dict(provider="flaky", model="gpt-4o-mini", reason="auth_failed")
    assert readonly.metric("scopegate_adapter_fallbacks_total", **labels) == 0
    assert readonly.metric("scopegate_adapter_tool_calls_total", tool="_other", decision="error") == 0


def test_streaming_answers_as_chat_completion_chunks(support):
    stream = support.client.chat.completions.create(
        model="anthropic/claude-sonnet-4-5",
        messages=[{"role": "user", "content": "Please look up customer C002."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Bob Chen" in text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens > 0


def test_streamed_text_reaches_the_client_while_the_provider_is_still_answering(support, fakes):
    # The fake provider writes the first piece of its answer, then holds the rest until this
    # test has seen that piece: an adapter that waited for the whole answer would never pass it on.
    release = threading.Event()
    seen_while_held = []
    fakes.hold = release
    try:
        stream = support.client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Please look up customer C001."}],
            stream=True,
        )
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content and not release.is_set():
                seen_while_held.append(fakes.holding.is_set())
                release.set()
    finally:
        fakes.hold = None
        release.set()
    assert seen_while_held == [True]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # The tool round ran inside the one stream: the answer quotes the tool's result.
    assert "get_customer_info returned" in text and "Alice Martin" in text, text
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Both rounds were asked of the provider with streaming on.
    bodies = [body for path, body, _ in fakes.requests if path.startswith("/openai/")][-2:]
    assert [b["stream"] for b in bodies] == [True, True]
    assert bodies[-1]["messages"][-1]["role"] == "tool"


def test_a_stream_no_provider_accepts_is_a_plain_502(support):
    with pytest.raises(openai.InternalServerError) as error:
        support.client.chat.completions.create(
            model="badkey/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert error.value.status_code == 502
    assert error.value.body["code"] == "provider_auth_failed"


def test_a_stream_the_provider_breaks_off_ends_in_an_error_event_not_done(support):
    stream = support.client.chat.completions.create(
        model="cut/llama", messages=[{"role": "user", "content": "Hi there"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError) as error:
        for chunk in stream:
            seen.append(chunk)
    # The text that came before the break was passed on as it came; the end says what failed.
    assert any(c.choices and c.choices[0].delta.content for c in seen)
    assert not any(c.choices and c.choices[0].finish_reason for c in seen)
    assert '"cut"' in error.value.message and "ended before the answer did" in error.value.message


def test_a_streamed_call_to_the_callers_own_tool_is_handed_back_in_the_stream(support):
    own_tool = {"type": "function", "function": {
        "name": "create_support_ticket", "description": "the caller's own ticket tool",
        "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}}}}}
    stream = support.client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "Open a ticket for customer C002."}],
        tools=[own_tool],
        stream=True,
    )
    chunks = list(stream)
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert [c.function.name for c in calls] == ["create_support_ticket"]
    assert json.loads(calls[0].function.arguments)["customer_id"] == "C002"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # Not run through scopegate: the caller runs its own tools.
    assert not [l for l in support.audit_lines() if l.get("tool") == "create_support_ticket"]


def test_models_lists_aliases_and_targets(support):
    ids = {m.id for m in support.client.models.list()}
    assert {"support", "flaky/gpt-4o-mini", "anthropic/claude-sonnet-4-5"} <= ids


def test_a_wrong_api_key_is_refused(support):
    client = openai.OpenAI(base_url=support.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_the_anthropic_request_carries_its_key_version_and_max_tokens(support, fakes):
    ask(support, "anthropic/claude-sonnet-4-5", "Please look up customer C001.")
    path, body, headers = [r for r in fakes.requests if r[0].startswith("/anthropic/")][-1]
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["x-api-key"] == ANTHROPIC_KEY and headers["anthropic-version"] == "2023-06-01"
    assert body["max_tokens"] == 4096 and body["system"] == "You answer customer-support questions."
    assert all("input_schema" in t for t in body["tools"])
    assert body["messages"][-1]["content"][0]["type"] == "tool_result"


def test_an_unknown_model_is_a_404_in_openai_shape(support):
    with pytest.raises(openai.NotFoundError) as error:
        support.client.chat.completions.create(model="nope/x", messages=[{"role": "user", "content": "hi"}])
    assert error.value.body["code"] == "model_not_found"
