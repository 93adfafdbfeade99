"""Drives llm-router with the official OpenAI, Anthropic and google-genai Python SDKs (run by tests/sdk.rs).

    python driver.py SCENARIO BASE_URL EXPECTED_JSON

BASE_URL is the router (no path). EXPECTED_JSON is what the mock upstream was scripted to answer, in one
neutral shape both routes share:

    {"thinking": str, "signature": str, "text": str,
     "tools": [{"id": <id as the client must see it>, "name": str, "input": {...}}],
     "input_tokens": <uncached prompt tokens>, "cached": <cache-read tokens>, "output_tokens": int}

Every check uses the SDK's own objects (its models, its stream accumulators, its exception classes).
Exit status 0 and a last line "ok: SCENARIO" on success; 1 and "FAIL [SCENARIO]: ..." on failure.
"""

import base64
import json
import sys
import traceback

# Imported by main() for the scenario's side only: importing both SDKs costs seconds per run.
anthropic = openai = ChatCompletionStreamState = genai = gtypes = genai_errors = None

TIMEOUT = 30.0

# A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

WEATHER_ANT = {
    "name": "weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_OAI = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Failure(Exception):
    pass


def check(condition, message, *details):
    if not condition:
        lines = [message] + [f"  {d!r}" if not isinstance(d, str) else f"  {d}" for d in details]
        raise Failure("\n".join(lines))


def equal(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def expect_raises(cls, call, what):
    try:
        call()
    except cls as error:
        return error
    except Exception as error:  # the wrong class: say which
        want = f"{cls.__module__}.{cls.__name__}"
        raise Failure(f"{what}: expected {want}, got {type(error).__name__}: {error}") from error
    raise Failure(f"{what}: expected {cls.__module__}.{cls.__name__}, but the call succeeded")


# ---------------------------------------------------------------------------------------------------------
# Anthropic SDK -> router -> OpenAI-protocol upstream (Route B)


def anthropic_client(base):
    return anthropic.Anthropic(
        base_url=base,
        api_key="sk-ant-client",
        max_retries=0,
        timeout=TIMEOUT,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),
    )


def block_dict(block):
    """A content block as plain data, without the accumulator-only `parsed_output` and unset optionals."""
    data = block.model_dump(exclude_none=True)
    data.pop("parsed_output", None)
    return data


def check_ant_message(message, exp, what, streamed=False):
    """`message` (an SDK Message) carries exactly the scripted answer."""
    check(isinstance(message, anthropic.types.Message), f"{what}: not an anthropic Message: {type(message)}")
    equal(message.type, "message", f"{what} type")
    equal(message.role, "assistant", f"{what} role")
    equal(message.model, "sonnet", f"{what} model (the client's name is echoed)")
    check(message.id.startswith("msg_"), f"{what}: id {message.id!r} does not start with msg_")
    if not streamed:
        # §2.2: "msg_" + the upstream id without characters outside [A-Za-z0-9].
        equal(message.id, "msg_" + "".join(c for c in exp["id"] if c.isascii() and c.isalnum()), f"{what} id")
    kinds = [b.type for b in message.content]
    want_kinds = (
        (["thinking"] if exp["thinking"] else []) + (["text"] if exp["text"] else []) + ["tool_use"] * len(exp["tools"])
    )
    equal(kinds, want_kinds, f"{what} content block types")
    blocks = iter(message.content)
    if exp["thinking"]:
        thinking = next(blocks)
        equal(thinking.thinking, exp["thinking"], f"{what} thinking text")
        check(
            thinking.signature.startswith("llmr1."),
            f"{what}: thinking block has no router-minted signature: {thinking.signature!r}",
        )
    if exp["text"]:
        equal(next(blocks).text, exp["text"], f"{what} text")
    for tool in exp["tools"]:
        block = next(blocks)
        equal(block.id, tool["id"], f"{what} tool_use id")
        equal(block.name, tool["name"], f"{what} tool_use name")
        equal(block.input, tool["input"], f"{what} tool_use input")
    equal(message.stop_reason, "tool_use" if exp["tools"] else "end_turn", f"{what} stop_reason")
    equal(message.stop_sequence, None, f"{what} stop_sequence")
    equal(message.usage.output_tokens, exp["output_tokens"], f"{what} usage.output_tokens")
    equal(message.usage.input_tokens, exp["input_tokens"], f"{what} usage.input_tokens")
    equal(message.usage.cache_read_input_tokens or 0, exp["cached"], f"{what} usage.cache_read_input_tokens")


def stream_ant(client, **params):
    """Runs `messages.stream(...)`; returns (event list, final message) from the SDK's own accumulator."""
    events = []
    with client.messages.stream(**params) as stream:
        for event in stream:
            events.append(event)
        final = stream.get_final_message()
    return events, final


def check_ant_event_grammar(events, what):
    """§3.1: one message_start first, dense block indexes, one open block at a time, message_stop last."""
    raw = [
        e
        for e in events
        if e.type
        in (
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        )
    ]
    check(raw, f"{what}: no events")
    equal(raw[0].type, "message_start", f"{what} first event")
    equal(raw[-1].type, "message_stop", f"{what} last event")
    equal(sum(1 for e in raw if e.type == "message_start"), 1, f"{what} message_start count")
    open_index = None
    next_index = 0
    for e in raw[1:-1]:
        if e.type == "content_block_start":
            check(open_index is None, f"{what}: block {e.index} started while {open_index} is open")
            equal(e.index, next_index, f"{what} content_block_start index")
            open_index = e.index
            next_index += 1
        elif e.type == "content_block_delta":
            equal(e.index, open_index, f"{what} content_block_delta index")
        elif e.type == "content_block_stop":
            equal(e.index, open_index, f"{what} content_block_stop index")
            open_index = None
        elif e.type == "message_delta":
            check(open_index is None, f"{what}: message_delta while block {open_index} is open")
    check(any(e.type == "message_delta" for e in raw), f"{what}: no message_delta")


def same_ant_message(streamed, created, what):
    """The stream accumulator rebuilt the non-streaming answer."""
    equal([block_dict(b) for b in streamed.content], [block_dict(b) for b in created.content], f"{what} content")
    equal(streamed.stop_reason, created.stop_reason, f"{what} stop_reason")
    equal(streamed.stop_sequence, created.stop_sequence, f"{what} stop_sequence")
    equal(streamed.model, created.model, f"{what} model")
    equal(streamed.usage.output_tokens, created.usage.output_tokens, f"{what} usage.output_tokens")
    equal(streamed.usage.input_tokens, created.usage.input_tokens, f"{what} usage.input_tokens")
    equal(streamed.usage.model_dump(exclude_none=True), created.usage.model_dump(exclude_none=True), f"{what} usage")


def ant_params(**extra):
    params = dict(
        model="sonnet",
        max_tokens=4096,
        system="You are a weather assistant.",
        tools=[WEATHER_ANT],
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
    )
    params.update(extra)
    return params


def anthropic_tools(base, exp):
    """messages.create and messages.stream on the same scripted tool_use answer agree."""
    client = anthropic_client(base)
    created = client.messages.create(**ant_params())
    check_ant_message(created, exp, "messages.create")

    events, streamed = stream_ant(client, **ant_params())
    check_ant_event_grammar(events, "messages.stream")
    check_ant_message(streamed, exp, "messages.stream final message", streamed=True)
    same_ant_message(streamed, created, "stream vs create")
    text = "".join(e.text for e in events if e.type == "text")
    equal(text, exp["text"], "text events")
    start = next(e for e in events if e.type == "message_start")
    check(start.message.usage.input_tokens > 0, "message_start.usage.input_tokens is 0 (§3.4: estimate it)")


def anthropic_thinking(base, exp):
    """Thinking + text + parallel tool calls in a stream, then the next turn of the tool loop."""
    client = anthropic_client(base)
    params = ant_params(thinking={"type": "enabled", "budget_tokens": 2048})
    events, streamed = stream_ant(client, **params)
    check_ant_event_grammar(events, "messages.stream")
    check_ant_message(streamed, exp, "messages.stream final message", streamed=True)
    equal("".join(e.thinking for e in events if e.type == "thinking"), exp["thinking"], "thinking events")
    signatures = [e.signature for e in events if e.type == "signature"]
    equal(len(signatures), 1, "signature events")
    equal(streamed.content[0].signature, signatures[0], "accumulated signature")
    inputs = [e.snapshot for e in events if e.type == "input_json"]
    check(inputs, "no input_json events")

    created = client.messages.create(**params)
    check_ant_message(created, exp, "messages.create")
    same_ant_message(streamed, created, "stream vs create")

    # Next turn, as an agent would send it: the assistant content replayed as the SDK returned it, then
    # one tool_result per tool_use.
    results = [
        {"type": "tool_result", "tool_use_id": b.id, "content": f"{b.input['city']}: 18C"}
        for b in streamed.content
        if b.type == "tool_use"
    ]
    follow = client.messages.create(
        **ant_params(
            thinking={"type": "enabled", "budget_tokens": 2048},
            messages=[
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": streamed.content},
                {"role": "user", "content": results},
            ],
        )
    )
    check_ant_message(follow, exp, "tool-loop follow-up")


def anthropic_tool_result_image(base, exp):
    """A tool_result whose content holds text and an image (a screenshot tool)."""
    client = anthropic_client(base)
    message = client.messages.create(
        **ant_params(
            messages=[
                {"role": "user", "content": "Take a screenshot"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_shot", "name": "weather", "input": {"city": "Oslo"}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_shot",
                            "content": [
                                {"type": "text", "text": "Screenshot taken"},
                                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                            ],
                        },
                        {"type": "text", "text": "What do you see?"},
                    ],
                },
            ]
        )
    )
    check_ant_message(message, exp, "messages.create")


def anthropic_count_tokens(base, exp):
    """messages.count_tokens answers a positive estimate that grows with the tools."""
    client = anthropic_client(base)
    raw = client.messages.with_raw_response.count_tokens(
        model="sonnet",
        system="You are a weather assistant.",
        tools=[WEATHER_ANT],
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
    )
    equal(raw.headers.get("x-llm-router-token-count"), "estimated", "x-llm-router-token-count header")
    counted = raw.parse()
    check(isinstance(counted, anthropic.types.MessageTokensCount), f"not a MessageTokensCount: {type(counted)}")
    check(counted.input_tokens > 0, f"input_tokens is {counted.input_tokens}")
    bare = client.messages.count_tokens(
        model="sonnet", messages=[{"role": "user", "content": "Weather in Paris and Rome?"}]
    )
    check(bare.input_tokens > 0, f"input_tokens without tools is {bare.input_tokens}")
    check(
        counted.input_tokens > bare.input_tokens,
        f"system and tools are not counted: {counted.input_tokens} with them, {bare.input_tokens} without",
    )


def anthropic_long_tool_name(base, exp):
    """An MCP tool name over OpenAI's 64 characters: shortened upstream, the original back in the answer."""
    client = anthropic_client(base)
    name = exp["tools"][0]["name"]
    check(len(name) > 64, f"the scripted tool name is only {len(name)} characters")
    tool = {
        "name": name,
        "description": "Open a page in the browser",
        "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
    }
    params = ant_params(tools=[WEATHER_ANT, tool], tool_choice={"type": "tool", "name": name})
    created = client.messages.create(**params)
    check_ant_message(created, exp, "messages.create")
    events, streamed = stream_ant(client, **params)
    check_ant_message(streamed, exp, "messages.stream final message", streamed=True)
    same_ant_message(streamed, created, "stream vs create")
    starts = [
        e.content_block.name
        for e in events
        if e.type == "content_block_start" and e.content_block.type == "tool_use"
    ]
    equal(starts, [name], "content_block_start tool_use names")


def anthropic_stream_error(base, exp):
    """An upstream error after the stream started arrives in-band and the SDK raises; no fake message_stop."""
    client = anthropic_client(base)
    events = []

    def run():
        with client.messages.stream(**ant_params()) as stream:
            for event in stream:
                events.append(event)

    error = expect_raises(anthropic.APIStatusError, run, "messages.stream")
    check(isinstance(error.body, dict), f"error body is not an object: {error.body!r}")
    equal(error.body.get("type"), "error", "error event type")
    equal(error.body["error"]["type"], "overloaded_error", "error event error.type (§3.5.2)")
    check("overloaded" in error.body["error"]["message"], f"upstream message lost: {error.body!r}")
    equal("".join(e.text for e in events if e.type == "text"), exp["text"], "text received before the error")
    types = [e.type for e in events]
    check("message_start" in types, f"no message_start before the error: {types}")
    check(
        "message_stop" not in types and "message_delta" not in types,
        f"the broken stream was ended normally: {types}",
    )


def ant_error(base, cls, status, error_type, message):
    client = anthropic_client(base)
    error = expect_raises(cls, lambda: client.messages.create(**ant_params()), "messages.create")
    equal(error.status_code, status, "messages.create status")
    check(isinstance(error.body, dict), f"error body is not an object: {error.body!r}")
    equal(error.body.get("type"), "error", "error body type")
    equal(error.body["error"]["type"], error_type, "error.type")
    check(message in error.body["error"]["message"], f"upstream message lost: {error.body!r}")

    def stream():
        with client.messages.stream(**ant_params()) as s:
            s.get_final_message()

    error = expect_raises(cls, stream, "messages.stream")
    equal(error.status_code, status, "messages.stream status")
    equal(error.body["error"]["type"], error_type, "stream error.type")
    return error


def anthropic_rate_limit(base, exp):
    error = ant_error(base, anthropic.RateLimitError, 429, "rate_limit_error", "Rate limit reached")
    equal(error.response.headers.get("retry-after"), "7", "retry-after passed through (§4.5)")
    equal(error.body.get("request_id"), exp["request_id"], "error body request_id (§4.5)")


def anthropic_request_id(base, exp):
    """§4.5: the upstream's request id reaches the SDK's `_request_id` / `request_id` (the `request-id` header)."""
    client = anthropic_client(base)
    message = client.messages.create(**ant_params())
    equal(message._request_id, exp["request_id"], "Message._request_id")
    failing = ant_params(messages=[{"role": "user", "content": "fail please"}])
    error = expect_raises(anthropic.RateLimitError, lambda: client.messages.create(**failing), "messages.create")
    equal(error.body.get("request_id"), exp["request_id"], "error body request_id")
    equal(error.request_id, exp["request_id"], "RateLimitError.request_id")


def anthropic_server_error(base, exp):
    ant_error(base, anthropic.InternalServerError, 500, "api_error", "The server had an error")


# ---------------------------------------------------------------------------------------------------------
# OpenAI SDK -> router -> Anthropic-protocol upstream (Route A)


def openai_client(base):
    return openai.OpenAI(
        base_url=base + "/v1",
        api_key="sk-oai-client",
        max_retries=0,
        timeout=TIMEOUT,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )


def oai_params(**extra):
    params = dict(
        model="gpt",
        max_completion_tokens=1000,
        tools=[WEATHER_OAI],
        messages=[
            {"role": "system", "content": "You are a weather assistant."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
                ],
            },
        ],
    )
    params.update(extra)
    return params


def tool_calls_of(message):
    return [
        (call.id, call.type, call.function.name, json.loads(call.function.arguments))
        for call in message.tool_calls or []
    ]


def check_oai_completion(completion, exp, what, streamed=False):
    equal(completion.object, "chat.completion", f"{what} object")
    if streamed:
        check(completion.id.startswith("chatcmpl-"), f"{what}: id {completion.id!r}")
    else:
        equal(completion.id, "chatcmpl-" + exp["id"], f"{what} id (§2.1)")
    equal(completion.model, "gpt", f"{what} model (the client's name is echoed)")
    equal(len(completion.choices), 1, f"{what} choices")
    choice = completion.choices[0]
    message = choice.message
    equal(message.role, "assistant", f"{what} role")
    if exp["text"]:
        equal(message.content, exp["text"], f"{what} content")
    else:
        check(not message.content, f"{what}: content {message.content!r} but the upstream sent no text")
    equal(message.refusal, None, f"{what} refusal")
    equal(
        tool_calls_of(message),
        [(t["id"], "function", t["name"], t["input"]) for t in exp["tools"]],
        f"{what} tool_calls",
    )
    if exp["thinking"]:
        equal(getattr(message, "reasoning_content", None), exp["thinking"], f"{what} message.reasoning_content")
    equal(choice.finish_reason, "tool_calls" if exp["tools"] else "stop", f"{what} finish_reason")
    usage = completion.usage
    check(usage is not None, f"{what}: no usage")
    equal(usage.prompt_tokens, exp["input_tokens"] + exp["cached"], f"{what} usage.prompt_tokens")
    equal(usage.completion_tokens, exp["output_tokens"], f"{what} usage.completion_tokens")
    equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, f"{what} usage.total_tokens")
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    equal(cached or 0, exp["cached"], f"{what} usage.prompt_tokens_details.cached_tokens")


def same_oai_completion(streamed, created, what):
    a, b = streamed.choices[0], created.choices[0]
    equal(a.message.content, b.message.content, f"{what} content")
    equal(tool_calls_of(a.message), tool_calls_of(b.message), f"{what} tool_calls")
    # Same argument strings, not just the same JSON: clients may compare or hash them.
    equal(
        [c.function.arguments for c in a.message.tool_calls or []],
        [c.function.arguments for c in b.message.tool_calls or []],
        f"{what} tool_calls[].function.arguments",
    )
    equal(
        getattr(a.message, "reasoning_content", None),
        getattr(b.message, "reasoning_content", None),
        f"{what} reasoning_content",
    )
    equal(a.finish_reason, b.finish_reason, f"{what} finish_reason")
    equal(streamed.usage.model_dump(exclude_none=True), created.usage.model_dump(exclude_none=True), f"{what} usage")
    equal(streamed.model, created.model, f"{what} model")


def raw_chunks(client, **params):
    """`create(stream=True)` fed through the SDK's ChatCompletionStreamState; also checks §3.2 chunk rules."""
    chunks = list(client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    check(chunks, "no chunks")
    state = ChatCompletionStreamState(input_tools=params.get("tools", []))
    for chunk in chunks:
        state.handle_chunk(chunk)
        equal(chunk.object, "chat.completion.chunk", "chunk object")
        equal(chunk.id, chunks[0].id, "chunk id (the same on every chunk)")
        equal(chunk.model, "gpt", "chunk model")
    roles = [c for c in chunks if c.choices and c.choices[0].delta.role is not None]
    equal(len(roles), 1, "chunks carrying delta.role")
    last = chunks[-1]
    equal(last.choices, [], "usage chunk choices")
    check(last.usage is not None, "the last chunk carries no usage")
    check(all(c.usage is None for c in chunks[:-1]), "usage on a chunk other than the last")
    ids = [tc.id for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or [] if tc.id]
    check(len(ids) == len(set(ids)), f"a tool call id is repeated across chunks (the SDK would concatenate it): {ids}")
    return chunks, state.get_final_completion()


def openai_tools(base, exp):
    """chat.completions.create, .stream() and create(stream=True) on the same scripted answer agree."""
    client = openai_client(base)
    created = client.chat.completions.create(**oai_params())
    check(isinstance(created, openai.types.chat.ChatCompletion), f"not a ChatCompletion: {type(created)}")
    check_oai_completion(created, exp, "create")

    with client.chat.completions.stream(**oai_params(), stream_options={"include_usage": True}) as stream:
        events = list(stream)
        streamed = stream.get_final_completion()
    check_oai_completion(streamed, exp, ".stream() final completion", streamed=True)
    same_oai_completion(streamed, created, ".stream() vs create")
    done = [(e.name, json.loads(e.arguments)) for e in events if e.type == "tool_calls.function.arguments.done"]
    equal(done, [(t["name"], t["input"]) for t in exp["tools"]], "tool_calls.function.arguments.done events")
    content = "".join(e.delta for e in events if e.type == "content.delta")
    equal(content, exp["text"], "content.delta events")

    _, accumulated = raw_chunks(client, **oai_params())
    check_oai_completion(accumulated, exp, "ChatCompletionStreamState final completion", streamed=True)
    same_oai_completion(accumulated, created, "ChatCompletionStreamState vs create")


def openai_thinking(base, exp):
    """Anthropic thinking blocks surface as reasoning_content (§2.1, §3.3), streamed and not."""
    client = openai_client(base)
    params = oai_params(reasoning_effort="medium", tools=[WEATHER_OAI])
    created = client.chat.completions.create(**params)
    check_oai_completion(created, exp, "create")
    equal(getattr(created.choices[0].message, "reasoning_signature", None), exp["signature"], "reasoning_signature")

    chunks, accumulated = raw_chunks(client, **params)
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    equal(reasoning, exp["thinking"], "streamed delta.reasoning_content")
    check_oai_completion(accumulated, exp, "ChatCompletionStreamState final completion", streamed=True)
    same_oai_completion(accumulated, created, "ChatCompletionStreamState vs create")

    with client.chat.completions.stream(**params, stream_options={"include_usage": True}) as stream:
        streamed = stream.get_final_completion()
    same_oai_completion(streamed, created, ".stream() vs create")


def openai_tool_loop(base, exp):
    """The tool loop's next turn: the assistant message replayed as the SDK returned it, then one tool
    message per call (the upstream may require what rides in the ids, e.g. Gemini's thought signatures)."""
    client = openai_client(base)
    created = client.chat.completions.create(**oai_params())
    check_oai_completion(created, exp, "create")
    message = created.choices[0].message
    results = [
        {"role": "tool", "tool_call_id": call.id, "content": f"{json.loads(call.function.arguments)['city']}: 18C"}
        for call in message.tool_calls
    ]
    follow = client.chat.completions.create(
        **oai_params(messages=oai_params()["messages"] + [message.model_dump(exclude_none=True)] + results)
    )
    check_oai_completion(follow, exp, "tool-loop follow-up")


def openai_stream_error(base, exp):
    """An Anthropic error event after the stream started: the SDK raises APIError mid-stream, no [DONE]."""
    client = openai_client(base)
    chunks = []

    def run():
        for chunk in client.chat.completions.create(
            **oai_params(), stream=True, stream_options={"include_usage": True}
        ):
            chunks.append(chunk)

    error = expect_raises(openai.APIError, run, "create(stream=True)")
    check(not isinstance(error, openai.APIStatusError), f"raised {type(error).__name__}, want the in-band APIError")
    equal(error.message, "Overloaded", "error.message")
    equal(error.type, "service_unavailable_error", "error.type (§4.3)")
    equal(error.code, "server_is_overloaded", "error.code (§4.3)")
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    equal(content, exp["text"], "content received before the error")
    check(all(c.choices and c.choices[0].finish_reason is None for c in chunks), "a finish_reason before the error")

    def helper():
        with client.chat.completions.stream(**oai_params()) as stream:
            stream.get_final_completion()

    expect_raises(openai.APIError, helper, ".stream()")


def oai_error(base, cls, status, error_type, code, message):
    client = openai_client(base)
    params = oai_params()
    error = expect_raises(cls, lambda: client.chat.completions.create(**params), "create")
    equal(error.status_code, status, "create status")
    equal(error.type, error_type, "error.type")
    equal(error.code, code, "error.code")
    check(message in error.message, f"upstream message lost: {error.message!r}")

    error = expect_raises(cls, lambda: client.chat.completions.create(**params, stream=True), "create(stream=True)")
    equal(error.status_code, status, "create(stream=True) status")
    equal(error.code, code, "create(stream=True) error.code")
    return error


def openai_request_id(base, exp):
    """§4.5: the upstream's request id reaches the SDK's `_request_id` / `request_id` (the `x-request-id` header)."""
    client = openai_client(base)
    completion = client.chat.completions.create(**oai_params())
    equal(completion._request_id, exp["request_id"], "ChatCompletion._request_id")
    failing = oai_params(messages=[{"role": "user", "content": "fail please"}])
    error = expect_raises(openai.RateLimitError, lambda: client.chat.completions.create(**failing), "create")
    equal(error.request_id, exp["request_id"], "RateLimitError.request_id")


def openai_overloaded(base, exp):
    error = oai_error(
        base, openai.InternalServerError, 503, "service_unavailable_error", "server_is_overloaded", "Overloaded"
    )
    check(isinstance(error, openai.APIStatusError), "not an APIStatusError")


def openai_rate_limit(base, exp):
    oai_error(base, openai.RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded", "Number of request tokens")


WEATHER_RSP = {
    "type": "function",
    "name": "weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def rsp_params(**extra):
    params = dict(
        model="sonnet",
        instructions="You are a weather assistant.",
        max_output_tokens=1000,
        tools=[WEATHER_RSP, {"type": "web_search"}],
        reasoning={"effort": "medium", "summary": "auto"},
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather where this photo was taken?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"},
                ],
            }
        ],
    )
    params.update(extra)
    return params


def calls_of(response):
    return [
        (item.call_id, item.name, json.loads(item.arguments)) for item in response.output if item.type == "function_call"
    ]


def check_rsp_response(response, exp, what):
    check(isinstance(response, openai.types.responses.Response), f"{what}: not a Response: {type(response)}")
    check(response.id.startswith("resp_"), f"{what}: id {response.id!r}")
    equal(response.status, "completed", f"{what} status")
    equal(response.model, "sonnet", f"{what} model (the client's name is echoed)")
    equal(response.output_text, exp["text"], f"{what} output_text")
    equal(calls_of(response), [(t["id"], t["name"], t["input"]) for t in exp["tools"]], f"{what} function calls")
    reasoning = ["".join(s.text for s in item.summary) for item in response.output if item.type == "reasoning"]
    equal(reasoning, [exp["thinking"]] if exp["thinking"] else [], f"{what} reasoning summaries")
    usage = response.usage
    equal(usage.input_tokens, exp["input_tokens"] + exp["cached"], f"{what} usage.input_tokens")
    equal(usage.input_tokens_details.cached_tokens, exp["cached"], f"{what} usage cached_tokens")
    equal(usage.output_tokens, exp["output_tokens"], f"{what} usage.output_tokens")
    equal(usage.total_tokens, usage.input_tokens + usage.output_tokens, f"{what} usage.total_tokens")


def responses_tools(base, exp):
    """responses.create, responses.stream() and create(stream=True) agree on a Chat Completions upstream."""
    client = openai_client(base)
    created = client.responses.create(**rsp_params())
    check_rsp_response(created, exp, "create")

    with client.responses.stream(**rsp_params()) as stream:
        events = list(stream)
        final = stream.get_final_response()
    check_rsp_response(final, exp, ".stream() get_final_response()")
    equal([item.type for item in final.output], [item.type for item in created.output], ".stream() vs create items")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    equal(text, exp["text"], "response.output_text.delta events")
    done = [(e.name, json.loads(e.arguments)) for e in events if e.type == "response.function_call_arguments.done"]
    equal(done, [(t["name"], t["input"]) for t in exp["tools"]], "function_call_arguments.done events")

    raw = list(client.responses.create(**rsp_params(), stream=True))
    equal(raw[0].type, "response.created", "first raw event")
    equal(raw[-1].type, "response.completed", "last raw event")
    equal([e.sequence_number for e in raw], list(range(len(raw))), "sequence numbers")
    items = [e.item for e in raw if e.type == "response.output_item.done"]
    equal(len(items), len(raw[-1].response.output), "response.completed carries every item")


def responses_tool_loop(base, exp):
    """The tool loop's next turn, stateless: the output items replayed as the SDK returned them, then one
    function_call_output per call."""
    client = openai_client(base)
    created = client.responses.create(**rsp_params())
    check_rsp_response(created, exp, "create")
    replay = [item.model_dump(exclude_none=True) for item in created.output]
    outputs = [
        {"type": "function_call_output", "call_id": item.call_id, "output": f"{json.loads(item.arguments)['city']}: 18C"}
        for item in created.output
        if item.type == "function_call"
    ]
    check(outputs, "no function_call items to answer")
    follow = client.responses.create(**rsp_params(input=rsp_params()["input"] + replay + outputs))
    check_rsp_response(follow, exp, "tool-loop follow-up")


def responses_stream_error(base, exp):
    """A Chat upstream that breaks mid-stream: the stream ends in response.failed, never in completed."""
    client = openai_client(base)
    events = list(client.responses.create(**rsp_params(), stream=True))
    equal(events[-1].type, "response.failed", "last event")
    check(all(e.type != "response.completed" for e in events), "a completed event after a failure")
    check(events[-1].response.error is not None, "response.failed carries its error")
    with client.responses.stream(**rsp_params()) as stream:
        seen = [e.type for e in stream]
    equal(seen[-1], "response.failed", "the stream helper sees response.failed last")


def responses_rate_limit(base, exp):
    """An upstream 429 is a RateLimitError for the Responses client too, with the upstream's message."""
    client = openai_client(base)
    try:
        client.responses.create(**rsp_params())
    except openai.RateLimitError as error:
        equal(error.status_code, 429, "status")
        check("slow down" in str(error), f"message: {error}")
    else:
        raise Failure("no RateLimitError raised")



# ---------------------------------------------------------------------------------------------------------
# google-genai SDK -> router (Gemini routes) -> any upstream
#
# EXPECTED_JSON for these adds "model_version" (the `modelVersion` the client must see) to the neutral shape;
# tool ids are the upstream's own (a Gemini client sees calls as the upstream named them).

GEM_MODEL = "gem"
GEM_VERSIONS = ("v1", "v1beta")  # the SDK's default, and the one the Gemini CLI uses
GEM_PROMPT = "Weather in Paris and Rome?"
# The 1x1 PNG with bytes after IEND whose base64 has both '+' and '/': the SDK writes it URL-safe, which
# the router must turn back into standard base64 for data URLs and Anthropic (keep in sync with sdk.rs).
GEM_IMAGE_TAIL = bytes([0xFB, 0xEF, 0xBE, 0xFF, 0xFE, 0x3F])


def gemini_client(base, version, key="gm-client-key"):
    return genai.Client(
        api_key=key,
        http_options=gtypes.HttpOptions(
            base_url=base,
            api_version=version,
            timeout=int(TIMEOUT * 1000),
            retry_options=gtypes.HttpRetryOptions(attempts=1),
            client_args={"trust_env": False},
        ),
    )


def gem_weather():
    return gtypes.FunctionDeclaration(
        name="weather",
        description="Current weather for a city",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )


def gem_config(tools=True, **extra):
    params = dict(system_instruction="You are a weather assistant.", max_output_tokens=1000)
    if tools:
        params["tools"] = [gtypes.Tool(function_declarations=[gem_weather()])]
    params.update(extra)
    return gtypes.GenerateContentConfig(**params)


def gem_parts(response):
    if not response.candidates or response.candidates[0].content is None:
        return []
    return response.candidates[0].content.parts or []


def gem_summary(parts):
    """(thought text, answer text, [(id, name, args)]) of a list of SDK Parts, in order."""
    thoughts = "".join(p.text for p in parts if p.text is not None and p.thought)
    text = "".join(p.text for p in parts if p.text is not None and not p.thought)
    calls = [(p.function_call.id, p.function_call.name, p.function_call.args) for p in parts if p.function_call]
    return thoughts, text, calls


def gem_want(exp, thoughts_shown):
    calls = [(t["id"], t["name"], t["input"]) for t in exp["tools"]]
    return (exp["thinking"] if thoughts_shown else "", exp["text"], calls)


def check_gem_usage(usage, exp, what):
    check(usage is not None, f"{what}: no usage_metadata")
    prompt = exp["input_tokens"] + exp["cached"]
    equal(usage.prompt_token_count, prompt, f"{what} prompt_token_count")
    equal(usage.cached_content_token_count or 0, exp["cached"], f"{what} cached_content_token_count")
    output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    equal(output, exp["output_tokens"], f"{what} candidates + thoughts token counts")
    equal(usage.total_token_count, prompt + exp["output_tokens"], f"{what} total_token_count")


def check_gem_response(response, exp, what, thoughts_shown=False):
    """`response` (an SDK GenerateContentResponse) carries exactly the scripted answer."""
    check(isinstance(response, gtypes.GenerateContentResponse), f"{what}: not a GenerateContentResponse")
    equal(len(response.candidates or []), 1, f"{what} candidates")
    candidate = response.candidates[0]
    equal(candidate.content.role, "model", f"{what} role")
    got, want = gem_summary(gem_parts(response)), gem_want(exp, thoughts_shown)
    check(got == want, f"{what} (thoughts, text, calls): got {got!r}, want {want!r}", response.model_dump(exclude_none=True))
    equal(candidate.finish_reason, gtypes.FinishReason.STOP, f"{what} finish_reason")
    equal(response.model_version, exp["model_version"], f"{what} model_version")
    equal(response.response_id, exp["id"], f"{what} response_id")
    if exp["text"] and not exp["tools"]:
        equal(response.text, exp["text"], f"{what} .text")
    check_gem_usage(response.usage_metadata, exp, what)


def stream_gem(client, exp, what, thoughts_shown=False, **params):
    """generate_content_stream: every chunk an SDK response, parts as deltas, one finish_reason at the end."""
    chunks = list(client.models.generate_content_stream(model=GEM_MODEL, **params))
    check(chunks, f"{what}: no chunks")
    for chunk in chunks:
        check(isinstance(chunk, gtypes.GenerateContentResponse), f"{what}: a chunk is {type(chunk)}")
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates and c.candidates[0].finish_reason]
    equal(finishes, [gtypes.FinishReason.STOP], f"{what} finish reasons")
    equal(chunks[-1].candidates[0].finish_reason, gtypes.FinishReason.STOP, f"{what} last chunk finish_reason")
    parts = [p for c in chunks for p in gem_parts(c)]
    summary = gem_summary(parts)
    equal(summary, gem_want(exp, thoughts_shown), f"{what} joined (thoughts, text, calls)")
    if thoughts_shown and exp["thinking"]:
        kinds = [bool(p.thought) for p in parts if p.text]
        check(kinds == sorted(kinds, reverse=True), f"{what}: a thought part after the answer text: {kinds}")
    check(all(c.model_version == exp["model_version"] for c in chunks), f"{what}: model_version varies")
    usages = [c.usage_metadata for c in chunks if c.usage_metadata is not None]
    check(usages, f"{what}: no chunk carries usage_metadata")
    check_gem_usage(usages[-1], exp, f"{what} last usage_metadata")
    return chunks, parts


def gemini_generate(base, exp):
    """generate_content and generate_content_stream agree, on v1 and v1beta."""
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        created = client.models.generate_content(model=GEM_MODEL, contents=GEM_PROMPT, config=gem_config(tools=False))
        check_gem_response(created, exp, f"{version} generate_content")
        _, parts = stream_gem(client, exp, f"{version} stream", contents=GEM_PROMPT, config=gem_config(tools=False))
        equal("".join(p.text for p in parts if p.text), created.text, f"{version} streamed text vs generate_content")


def gemini_tools(base, exp):
    """Function calling with the SDK's FunctionDeclaration, streamed and not, then the tool round trip."""
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        config = gem_config()
        created = client.models.generate_content(model=GEM_MODEL, contents=GEM_PROMPT, config=config)
        check_gem_response(created, exp, f"{version} generate_content")
        check(created.function_calls, f"{version}: no function_calls")
        _, parts = stream_gem(client, exp, f"{version} stream", contents=GEM_PROMPT, config=config)
        equal(
            [p.function_call.model_dump(exclude_none=True) for p in parts if p.function_call],
            [c.model_dump(exclude_none=True) for c in created.function_calls],
            f"{version} streamed vs generate_content function calls",
        )
        # The next turn, as an agent sends it: the model's content as the SDK returned it (signatures and
        # all), then one function_response per call, paired by id.
        responses = [
            gtypes.Part(
                function_response=gtypes.FunctionResponse(
                    id=call.id, name=call.name, response={"output": f"{call.args['city']}: 18C"}
                )
            )
            for call in created.function_calls
        ]
        contents = [
            gtypes.Content(role="user", parts=[gtypes.Part.from_text(text=GEM_PROMPT)]),
            created.candidates[0].content,
            gtypes.Content(role="user", parts=responses),
        ]
        follow = client.models.generate_content(model=GEM_MODEL, contents=contents, config=config)
        check_gem_response(follow, exp, f"{version} tool round trip")


def gemini_image(base, exp):
    """An image as inline data next to the question."""
    image = base64.b64decode(PNG) + GEM_IMAGE_TAIL
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        contents = [gtypes.Part.from_bytes(data=image, mime_type="image/png"), "What is in this image?"]
        created = client.models.generate_content(model=GEM_MODEL, contents=contents, config=gem_config(tools=False))
        check_gem_response(created, exp, f"{version} generate_content")
        stream_gem(client, exp, f"{version} stream", contents=contents, config=gem_config(tools=False))


def gemini_thinking(base, exp):
    """thinking_config(include_thoughts=True): the reasoning comes back as thought parts, streamed and not;
    without include_thoughts it stays hidden."""
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        thinking = gtypes.ThinkingConfig(include_thoughts=True, thinking_budget=4096)
        config = gem_config(thinking_config=thinking)
        created = client.models.generate_content(model=GEM_MODEL, contents=GEM_PROMPT, config=config)
        check_gem_response(created, exp, f"{version} generate_content", thoughts_shown=True)
        thought = [p for p in gem_parts(created) if p.thought]
        check(thought and all(p.text for p in thought), f"{version}: no visible thought parts")
        stream_gem(client, exp, f"{version} stream", thoughts_shown=True, contents=GEM_PROMPT, config=config)
        hidden = client.models.generate_content(model=GEM_MODEL, contents=GEM_PROMPT, config=gem_config())
        check_gem_response(hidden, exp, f"{version} without include_thoughts")


def gemini_models(base, exp):
    """models.list names the router's groups as models/<group>; models.get finds one, 404s an unknown one."""
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        models = list(client.models.list())
        check(all(isinstance(m, gtypes.Model) for m in models), f"{version}: not SDK Models: {models!r}")
        equal([m.name for m in models], exp["models"], f"{version} models.list names")
        for m in models:
            check("generateContent" in (m.supported_actions or []), f"{version}: {m.name} cannot generateContent")
        one = client.models.get(model=GEM_MODEL)
        equal(one.name, f"models/{GEM_MODEL}", f"{version} models.get name")
        error = expect_raises(genai_errors.ClientError, lambda: client.models.get(model="nope"), "models.get")
        equal((error.code, error.status), (404, "NOT_FOUND"), f"{version} models.get unknown")


def gem_error(call, cls, code, status, what):
    error = expect_raises(cls, call, what)
    equal(error.code, code, f"{what} code")
    equal(error.status, status, f"{what} status")
    check(isinstance(error.details, dict) and "error" in error.details, f"{what}: details {error.details!r}")
    return error


def gem_both(client, model, cls, code, status, what):
    """generate_content and generate_content_stream both raise `cls` with `code` and `status`."""
    create = gem_error(
        lambda: client.models.generate_content(model=model, contents=GEM_PROMPT), cls, code, status, f"{what} generate_content"
    )
    stream = gem_error(
        lambda: list(client.models.generate_content_stream(model=model, contents=GEM_PROMPT)),
        cls,
        code,
        status,
        f"{what} generate_content_stream",
    )
    return create, stream


def gemini_rate_limit(base, exp):
    """An upstream 429 is a ClientError 429 RESOURCE_EXHAUSTED carrying RetryInfo and the upstream message."""
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        for error in gem_both(client, GEM_MODEL, genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED", version):
            check(exp["message"] in (error.message or ""), f"{version}: upstream message lost: {error.message!r}")
            details = error.details["error"].get("details") or []
            delays = [d.get("retryDelay") for d in details if d.get("@type", "").endswith("google.rpc.RetryInfo")]
            if exp["retry_delay"] is not None:
                equal(delays, [exp["retry_delay"]], f"{version} RetryInfo.retryDelay")
            if exp["retry_after"] is not None:
                equal(error.response.headers.get("retry-after"), exp["retry_after"], f"{version} retry-after header")


def gemini_auth(base, exp):
    """A wrong key is a ClientError 401 UNAUTHENTICATED (listing too); the right one goes through."""
    for version in GEM_VERSIONS:
        wrong = gemini_client(base, version, key="not-the-router-token")
        gem_both(wrong, GEM_MODEL, genai_errors.ClientError, 401, "UNAUTHENTICATED", f"{version} wrong key")
        gem_error(lambda: list(wrong.models.list()), genai_errors.ClientError, 401, "UNAUTHENTICATED", "models.list")
        right = gemini_client(base, version, key=exp["token"])
        created = right.models.generate_content(model=GEM_MODEL, contents=GEM_PROMPT, config=gem_config(tools=False))
        check_gem_response(created, exp, f"{version} with the router token")


def gemini_unknown_model(base, exp):
    """A model the router does not know is a ClientError 404 NOT_FOUND naming it."""
    for version in GEM_VERSIONS:
        client = gemini_client(base, version)
        for error in gem_both(client, "no-such-model", genai_errors.ClientError, 404, "NOT_FOUND", version):
            check("no-such-model" in (error.message or ""), f"{version}: the model is not named: {error.message!r}")


def gemini_stream_error(base, exp):
    """An upstream failure after the stream started: the SDK raises an APIError mid-stream, after the text
    that came before it, and no chunk ever said the answer finished."""
    client = gemini_client(base, "v1beta")
    chunks = []

    def run():
        for chunk in client.models.generate_content_stream(model=GEM_MODEL, contents=GEM_PROMPT, config=gem_config()):
            chunks.append(chunk)

    error = expect_raises(genai_errors.APIError, run, "generate_content_stream")
    equal(error.code, exp["error_code"], "error.code")
    equal(error.status, exp["error_status"], "error.status")
    equal(gem_summary([p for c in chunks for p in gem_parts(c)])[1], exp["text"], "text received before the error")
    check(
        all(not (c.candidates and c.candidates[0].finish_reason) for c in chunks),
        "a finish_reason before the error",
    )


# ---------------------------------------------------------------------------------------------------------
# Every SDK -> router -> the built-in mock upstream (`api_type: mock`), which answers in the client's protocol


def mock_usage_ok(input_tokens, output_tokens, exp, what):
    check(input_tokens and input_tokens > 0, f"{what}: input tokens {input_tokens!r}")
    equal(output_tokens, exp["output_tokens"], f"{what} output tokens")


def anthropic_mock(base, exp):
    """messages.create and messages.stream get the mock's text and usage."""
    client = anthropic_client(base)
    params = dict(model=exp["model"], max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    created = client.messages.create(**params)
    equal([b.type for b in created.content], ["text"], "create blocks")
    equal(created.content[0].text, exp["text"], "create text")
    equal(created.stop_reason, "end_turn", "create stop_reason")
    mock_usage_ok(created.usage.input_tokens, created.usage.output_tokens, exp, "create")
    with client.messages.stream(**params) as stream:
        deltas = [e.delta.text for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    check(len(deltas) > 1, f"the stream came in pieces: {deltas!r}")
    equal("".join(deltas), exp["text"], "streamed deltas")
    equal(final.content[0].text, exp["text"], "stream final text")
    mock_usage_ok(final.usage.input_tokens, final.usage.output_tokens, exp, "stream")


def openai_mock(base, exp):
    """Chat Completions and the Responses API, created and streamed, get the mock's text and usage."""
    client = openai_client(base)
    messages = [{"role": "user", "content": "Hi"}]
    created = client.chat.completions.create(model=exp["model"], messages=messages)
    equal(created.choices[0].message.content, exp["text"], "chat create text")
    equal(created.choices[0].finish_reason, "stop", "chat finish_reason")
    mock_usage_ok(created.usage.prompt_tokens, created.usage.completion_tokens, exp, "chat create")
    chunks = list(
        client.chat.completions.create(
            model=exp["model"], messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    equal(text, exp["text"], "chat streamed text")
    usage = [c.usage for c in chunks if c.usage]
    check(len(usage) == 1, f"one usage chunk: {usage!r}")
    mock_usage_ok(usage[0].prompt_tokens, usage[0].completion_tokens, exp, "chat stream")

    response = client.responses.create(model=exp["model"], input="Hi")
    equal(response.status, "completed", "responses status")
    equal(response.output_text, exp["text"], "responses create text")
    mock_usage_ok(response.usage.input_tokens, response.usage.output_tokens, exp, "responses create")
    with client.responses.stream(model=exp["model"], input="Hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    check(len(deltas) > 1, f"the stream came in pieces: {deltas!r}")
    equal("".join(deltas), exp["text"], "responses streamed deltas")
    equal(final.output_text, exp["text"], "responses stream final text")
    mock_usage_ok(final.usage.input_tokens, final.usage.output_tokens, exp, "responses stream")


def gemini_mock(base, exp):
    """generate_content and generate_content_stream get the mock's text and usage."""
    client = gemini_client(base, "v1beta")
    created = client.models.generate_content(model=exp["model"], contents="Hi")
    equal(created.text, exp["text"], "generate_content text")
    usage = created.usage_metadata
    mock_usage_ok(usage.prompt_token_count, usage.candidates_token_count, exp, "generate_content")
    pieces = list(client.models.generate_content_stream(model=exp["model"], contents="Hi"))
    check(len(pieces) > 1, f"the stream came in pieces: {len(pieces)}")
    equal("".join(p.text or "" for p in pieces), exp["text"], "streamed text")
    last = pieces[-1].usage_metadata
    mock_usage_ok(last.prompt_token_count, last.candidates_token_count, exp, "stream")


SCENARIOS = {f.__name__: f for f in [
    anthropic_tools,
    anthropic_thinking,
    anthropic_tool_result_image,
    anthropic_count_tokens,
    anthropic_long_tool_name,
    anthropic_stream_error,
    anthropic_rate_limit,
    anthropic_request_id,
    anthropic_server_error,
    openai_tools,
    openai_thinking,
    openai_stream_error,
    openai_overloaded,
    openai_rate_limit,
    openai_request_id,
    openai_tool_loop,
    responses_tools,
    responses_stream_error,
    responses_rate_limit,
    responses_tool_loop,
    gemini_generate,
    gemini_tools,
    gemini_image,
    gemini_thinking,
    gemini_models,
    gemini_rate_limit,
    gemini_auth,
    gemini_unknown_model,
    gemini_stream_error,
    anthropic_mock,
    openai_mock,
    gemini_mock,
]}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in SCENARIOS:
        print(f"usage: driver.py {{{'|'.join(SCENARIOS)}}} BASE_URL EXPECTED_JSON", file=sys.stderr)
        return 2
    scenario, base, expected = sys.argv[1], sys.argv[2].rstrip("/"), json.loads(sys.argv[3])
    global anthropic, openai, ChatCompletionStreamState, genai, gtypes, genai_errors
    if scenario.startswith("anthropic_"):
        import anthropic

        sdk = anthropic
    elif scenario.startswith("gemini_"):
        from google import genai
        from google.genai import errors as genai_errors
        from google.genai import types as gtypes

        sdk = genai
    else:
        import openai
        from openai.lib.streaming.chat import ChatCompletionStreamState

        sdk = openai
    print(f"{sdk.__name__} {sdk.__version__}, python {sys.version.split()[0]}")
    try:
        SCENARIOS[scenario](base, expected)
    except Failure as failure:
        print(f"FAIL [{scenario}]: {failure}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"FAIL [{scenario}]: unexpected exception (traceback above)", file=sys.stderr)
        return 1
    print(f"ok: {scenario}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
