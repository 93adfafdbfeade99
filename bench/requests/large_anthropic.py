#!/usr/bin/env python3
"""Writes a large Anthropic Messages body shaped like a Claude Code turn deep into a session, for
`BODY=... bench/codecs.sh ant-oai-request`: a long system prompt, 25 tools with schemas, and 40 rounds
of a question, a signed thinking block, a tool call and a 3 KB tool result of source code. The same
bytes every time (no randomness), about 180 KB.

    python3 bench/requests/large_anthropic.py > /tmp/large-anthropic.json
"""

import json


def source_lines(start, count):
    lines = []
    for n in range(start, start + count):
        lines.append(f'    /// Step {n}: reads the "chunk" and returns where the event ends.')
        lines.append(f"    fn step_{n}(&mut self, chunk: &[u8]) -> Option<usize> {{")
        lines.append(f"        let end = memchr::memchr(b'\\n', &chunk[{n % 7}..])?;")
        lines.append(f"        self.seen += end; // {n * 31 % 97} bytes so far\\t(ok)")
        lines.append("        Some(end)")
        lines.append("    }")
    return "\n".join(lines)


tools = [
    {
        "name": f"tool_{i}",
        "description": "Reads a file from the workspace and returns its content with line numbers. " * 4,
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "The absolute path"},
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
            },
            "required": ["path"],
        },
    }
    for i in range(25)
]
messages = []
for turn in range(40):
    call_id = f"toolu_{turn:024d}"
    messages.append(
        {"role": "user", "content": [{"type": "text", "text": f"Please look at part {turn} of the relay and explain it."}]}
    )
    messages.append(
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "The user wants me to read the file. " * 5, "signature": "EqQBCkYIBxgCKkB" + "a" * 200},
                {"type": "text", "text": "Let me read it."},
                {"type": "tool_use", "id": call_id, "name": "tool_1", "input": {"path": "/src/relay/processor.rs", "offset": turn * 50, "limit": 50}},
            ],
        }
    )
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": source_lines(turn * 11, 11)}]}
    )
messages.append({"role": "user", "content": "Summarize."})
body = {
    "model": "ant-group",
    "max_tokens": 8192,
    "stream": True,
    "system": [{"type": "text", "text": "You are Claude Code. " * 200}],
    "tools": tools,
    "messages": messages,
    "thinking": {"type": "enabled", "budget_tokens": 4000},
}
print(json.dumps(body))
