"""Local stand-ins for model providers, speaking each one's wire format.

One HTTP server, one provider per path prefix:

  /openai/v1/chat/completions     OpenAI Chat Completions, key required
  /compat/v1/chat/completions     an OpenAI-compatible server (vLLM, Ollama), no key
  /anthropic/v1/messages          Anthropic Messages API, x-api-key + anthropic-version required
  /down/v1/chat/completions       always 503, counted
  /cut/v1/chat/completions        OpenAI-compatible, but a stream breaks off after its first text

Requests are checked the way the real APIs check them (the SDKs' own request types first, then
the rules those types cannot express: tool results that answer a call, roles, max_tokens), and a
request the real API would refuse gets that API's 400 error. Every response body is built through
the official SDK's pydantic models (openai.types.chat.ChatCompletion, anthropic.types.Message),
so the fakes cannot drift from what the SDKs accept.

The "model" is a script: it calls the tool the user's words ask for, then answers from the tool
results, quoting them, and names its provider so tests can see who answered.
"""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydantic
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)

OPENAI_KEY = "sk-test-openai"
# The longest a held stream waits for its release.
DEADLINE = 30
ANTHROPIC_KEY = "sk-ant-test"

_OPENAI_PARAMS = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
_OPENAI_STREAM_PARAMS = pydantic.TypeAdapter(CompletionCreateParamsStreaming)
_ANTHROPIC_PARAMS = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
_ANTHROPIC_STREAM_PARAMS = pydantic.TypeAdapter(MessageCreateParamsStreaming)
_ANTHROPIC_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


class Rejected(Exception):
    """A request the real API would refuse with a 400."""


# ---- the scripted model ----------------------------------------------------------------------


def decide(provider, user_text, results, offered):
    """Returns ("tools", [(name, args)]) or ("answer", text).

    `results` are the (tool name, result text) pairs of the latest round, if any.
    """
    if results:
        denied = [r for _, r in results if "insufficient_scope" in r]
        if denied:
            return "answer", f"[{provider}] I could not do that: {denied[0]}"
        quoted = "; ".join(f"{name} returned {text}" for name, text in results)
        return "answer", f"[{provider}] Here is what I found: {quoted}"
    customer = re.search(r"C\d{3}", user_text)
    customer_id = customer.group(0) if customer else "C001"
    text = user_text.lower()
    if "ticket" in text:
        # Asked for even when the tool is not on offer: a model that knows the tool from
        # elsewhere. scopegate, not the tool list, must stop it.
        return "tools", [(
            "create_support_ticket",
            {"customer_id": customer_id, "subject": "Refund", "description": user_text},
        )]
    wanted = []
    if "account value" in text:
        wanted.append(("calculate_account_value", {"customer_id": customer_id}))
    if "look up" in text:
        wanted.append(("get_customer_info", {"customer_id": customer_id}))
    calls = [(n, a) for n, a in wanted if n in offered]
    if calls:
        return "tools", calls
    return "answer", f"[{provider}] Hello! Tools on offer: {', '.join(sorted(offered)) or 'none'}."


# ---- OpenAI Chat Completions ----------------------------------------------------------------


def check_openai(body):
    params = _OPENAI_STREAM_PARAMS if body.get("stream") else _OPENAI_PARAMS
    try:
        params.validate_python(body)
    except pydantic.ValidationError as e:
        raise Rejected(str(e).splitlines()[0]) from None
    if "stream_options" in body and not body.get("stream"):
        raise Rejected("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    messages = body["messages"]
    if not messages:
        raise Rejected("'messages' must not be empty")
    pending = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise Rejected(f"Invalid value for 'messages[{i}].role': {role!r}")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not call_id:
                raise Rejected(f"Missing required parameter: 'messages[{i}].tool_call_id'.")
            if call_id not in pending:
                raise Rejected(
                    f"Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceeding message with 'tool_calls' ({call_id!r})."
                )
            pending.discard(call_id)
            continue
        if pending:
            raise Rejected(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(pending)}"
            )
        if role == "assistant":
            for call in m.get("tool_calls") or []:
                json.loads(call["function"]["arguments"])
                pending.add(call["id"])
    if pending:
        raise Rejected(f"tool calls without results: {sorted(pending)}")
    for tool in body.get("tools") or []:
        if tool.get("type") != "function" or "name" not in tool.get("function", {}):
            raise Rejected("each tool needs type 'function' and function.name")


def openai_turn(provider, body):
    messages = body["messages"]
    offered = {t["function"]["name"] for t in body.get("tools") or []}
    user_text = next(m for m in reversed(messages) if m["role"] == "user")["content"]
    if isinstance(user_text, list):
        user_text = " ".join(p.get("text", "") for p in user_text)
    results = []
    names = {}
    for m in messages:
        for call in m.get("tool_calls") or []:
            names[call["id"]] = call["function"]["name"]
    for m in reversed(messages):
        if m["role"] != "tool":
            break
        results.insert(0, (names[m["tool_call_id"]], m["content"]))
    kind, what = decide(provider, user_text, results, offered)
    message = {"role": "assistant", "content": None}
    if kind == "answer":
        message["content"] = what
        finish = "stop"
    else:
        message["tool_calls"] = [
            {
                "id": f"call_{abs(hash((name, len(messages), i))) % 10**10}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(what)
        ]
        finish = "tool_calls"
    completion = ChatCompletion.model_validate({
        "id": f"chatcmpl-fake{len(messages)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 10 * len(messages), "completion_tokens": 7, "total_tokens": 10 * len(messages) + 7},
    })
    if body.get("stream"):
        usage = (body.get("stream_options") or {}).get("include_usage")
        return openai_chunks(completion, usage)
    return completion.model_dump_json(exclude_unset=True)


def pieces(text, size=12):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def openai_chunks(completion, include_usage):
    """The completion as OpenAI streams it: role, text in pieces, each tool call's id and name
    before its arguments in pieces, the finish reason, the usage if asked, then [DONE]. Each
    chunk is built through the SDK's ChatCompletionChunk."""
    choice = completion.choices[0]
    message = choice.message

    def chunk(delta, finish=None, usage=None, choices=True):
        data = {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if choices else [],
        }
        if usage is not None:
            data["usage"] = usage
        return "data: " + ChatCompletionChunk.model_validate(data).model_dump_json(exclude_unset=True) + "\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    for piece in pieces(message.content or "") if message.content else []:
        events.append(chunk({"content": piece}))
    for index, call in enumerate(message.tool_calls or []):
        events.append(chunk({"tool_calls": [{
            "index": index, "id": call.id, "type": "function",
            "function": {"name": call.function.name, "arguments": ""},
        }]}))
        for piece in pieces(call.function.arguments):
            events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    events.append(chunk({}, finish=choice.finish_reason))
    if include_usage:
        events.append(chunk(None, usage=completion.usage.model_dump(), choices=False))
    events.append("data: [DONE]\n\n")
    return Stream(events)


class Stream:
    """SSE events to write one by one; `text_index` is the first event carrying answer text,
    where a held stream pauses."""

    def __init__(self, events, text_index=None):
        self.events = events
        self.text_index = text_index
        if text_index is None:
            self.text_index = next((i for i, e in enumerate(events) if '"content":"' in e and '"content":""' not in e), None)


def openai_error(message):
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})


# ---- Anthropic Messages ---------------------------------------------------------------------


def check_anthropic(body):
    params = _ANTHROPIC_STREAM_PARAMS if body.get("stream") else _ANTHROPIC_PARAMS
    try:
        params.validate_python(body)
    except pydantic.ValidationError as e:
        raise Rejected(str(e).splitlines()[0] + ": " + str(e).splitlines()[1].strip()) from None
    messages = body["messages"]
    if not messages or messages[0]["role"] != "user":
        raise Rejected("messages: first message must use the \"user\" role")
    previous_tool_uses = set()
    for i, m in enumerate(messages):
        if m["role"] not in ("user", "assistant"):
            raise Rejected(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i > 0 and messages[i - 1]["role"] == m["role"]:
            raise Rejected("messages: roles must alternate between \"user\" and \"assistant\"")
        blocks = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        if m["role"] == "user":
            answered = set()
            for j, block in enumerate(blocks):
                if block.get("type") == "tool_result":
                    if not block.get("tool_use_id"):
                        raise Rejected(f"messages.{i}.content.{j}.tool_result.tool_use_id: Field required")
                    if block["tool_use_id"] not in previous_tool_uses:
                        raise Rejected(
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks"
                        )
                    answered.add(block["tool_use_id"])
            if previous_tool_uses - answered:
                raise Rejected(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after"
                )
            previous_tool_uses = set()
        else:
            previous_tool_uses = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    if previous_tool_uses:
        raise Rejected("the last message holds tool_use blocks without results")
    for tool in body.get("tools") or []:
        if "input_schema" not in tool:
            raise Rejected("tools.0.custom.input_schema: Field required")


def anthropic_turn(body):
    messages = body["messages"]
    offered = {t["name"] for t in body.get("tools") or []}
    names = {}
    for m in messages:
        if m["role"] == "assistant" and isinstance(m["content"], list):
            for b in m["content"]:
                if b.get("type") == "tool_use":
                    names[b["id"]] = b["name"]
    last = messages[-1]
    blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
    results = [
        (names[b["tool_use_id"]], b["content"] if isinstance(b["content"], str) else json.dumps(b["content"]))
        for b in blocks
        if b.get("type") == "tool_result"
    ]
    user_text = ""
    for m in messages:
        if m["role"] == "user":
            content = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
            texts = [b["text"] for b in content if b.get("type") == "text"]
            if texts:
                user_text = " ".join(texts)
    kind, what = decide("fake-anthropic", user_text, results, offered)
    if kind == "answer":
        content = [{"type": "text", "text": what}]
        stop = "end_turn"
    else:
        content = [{"type": "text", "text": "Let me check."}] + [
            {"type": "tool_use", "id": f"toolu_{len(messages)}{i}", "name": name, "input": args}
            for i, (name, args) in enumerate(what)
        ]
        stop = "tool_use"
    message = Message.model_validate({
        "id": f"msg_fake{len(messages)}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 12 * len(messages), "output_tokens": 9},
    })
    if body.get("stream"):
        return anthropic_events(message)
    return message.model_dump_json(exclude_unset=True)


def anthropic_events(message):
    """The message as the Messages API streams it: message_start, each content block's start,
    deltas (text_delta, input_json_delta) and stop, message_delta with the stop reason and
    usage, message_stop. Each event is built through the SDK's RawMessageStreamEvent."""

    def event(data):
        parsed = _ANTHROPIC_EVENT.validate_python(data)
        return f"event: {data['type']}\ndata: {parsed.model_dump_json(exclude_unset=True)}\n\n"

    start = message.model_dump()
    start.update(content=[], stop_reason=None, usage={"input_tokens": message.usage.input_tokens, "output_tokens": 1})
    # ping is not in the SDK's event union (clients skip it), so it is written by hand.
    ping = 'event: ping\ndata: {"type": "ping"}\n\n'
    events = [event({"type": "message_start", "message": start}), ping]
    text_index = None
    for index, block in enumerate(message.content):
        if block.type == "text":
            events.append(event({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}))
            for piece in pieces(block.text):
                if text_index is None:
                    text_index = len(events)
                events.append(event({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}))
        else:
            events.append(event({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block.id, "name": block.name, "input": {}}}))
            for piece in pieces(json.dumps(block.input)):
                events.append(event({"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": piece}}))
        events.append(event({"type": "content_block_stop", "index": index}))
    events.append(event({"type": "message_delta", "delta": {"stop_reason": message.stop_reason, "stop_sequence": None},
                         "usage": {"output_tokens": message.usage.output_tokens}}))
    events.append(event({"type": "message_stop"}))
    return Stream(events, text_index)


def anthropic_error(status_type, message):
    return json.dumps({"type": "error", "error": {"type": status_type, "message": message}})


# ---- the server -----------------------------------------------------------------------------


class FakeProviders:
    """Starts the server on 127.0.0.1:0 in a thread; `requests` records (path, body) per call."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        # When set, a stream's answer text pauses after its first piece until `release` is set:
        # a test can see that text reaches its client while the provider is still answering.
        self.hold = None
        self.holding = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with owner.lock:
                    owner.requests.append((self.path, body, dict(self.headers)))
                status, text = owner.route(self.path, self.headers, body)
                if isinstance(text, Stream):
                    self.send_stream(text)
                    return
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def send_stream(self, stream):
                # HTTP/1.0 without a length: the body ends when the connection closes.
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                for i, event in enumerate(stream.events):
                    self.wfile.write(event.encode())
                    self.wfile.flush()
                    release = owner.hold
                    if release is not None and i == stream.text_index:
                        owner.holding.set()
                        released = release.wait(DEADLINE)
                        owner.holding.clear()
                        if not released:
                            return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, prefix):
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def hits(self, prefix):
        with self.lock:
            return sum(1 for path, _, _ in self.requests if path.startswith(f"/{prefix}/"))

    def close(self):
        self.server.shutdown()

    def route(self, path, headers, body):
        if path == "/down/v1/chat/completions":
            return 503, openai_error("The server is overloaded. Please retry.")
        if path == "/cut/v1/chat/completions":
            # An OpenAI-compatible server whose streams break off after the first piece of text.
            try:
                check_openai(body)
            except (Rejected, KeyError, ValueError) as e:
                return 400, openai_error(str(e))
            answer = openai_turn("fake-cut", body)
            if isinstance(answer, Stream) and answer.text_index is not None:
                answer.events = answer.events[: answer.text_index + 1]
            return 200, answer
        if path in ("/openai/v1/chat/completions", "/compat/v1/chat/completions"):
            provider = "fake-openai" if path.startswith("/openai") else "fake-compat"
            if provider == "fake-openai" and headers.get("authorization") != f"Bearer {OPENAI_KEY}":
                return 401, openai_error("Incorrect API key provided.")
            if not isinstance(body, dict):
                return 400, openai_error("We could not parse the JSON body of your request.")
            try:
                check_openai(body)
            except (Rejected, KeyError, ValueError) as e:
                return 400, openai_error(str(e))
            return 200, openai_turn(provider, body)
        if path == "/anthropic/v1/messages":
            # The Messages API takes the key as x-api-key; newer SDKs send it as a bearer token.
            if ANTHROPIC_KEY not in (headers.get("x-api-key"), (headers.get("authorization") or "")[7:]):
                return 401, anthropic_error("authentication_error", "invalid x-api-key")
            if not headers.get("anthropic-version"):
                return 400, anthropic_error("invalid_request_error", "anthropic-version: header is required")
            if not isinstance(body, dict):
                return 400, anthropic_error("invalid_request_error", "invalid JSON")
            try:
                check_anthropic(body)
            except (Rejected, KeyError) as e:
                return 400, anthropic_error("invalid_request_error", str(e))
            return 200, anthropic_turn(body)
        return 404, openai_error(f"no route {path}")
