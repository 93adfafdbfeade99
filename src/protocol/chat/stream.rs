//! Encoding hub stream events as Chat Completions chunks for a Chat client: a role chunk first, then
//! content, reasoning and tool-call deltas (tool calls numbered densely from 0 in the order they start), the
//! finish reason, a usage chunk when the client asked for one, and `[DONE]`. A failure ends the stream with
//! a `data: {"error":…}` line and no `[DONE]`.

use serde::Serialize;
use serde_json::{Value, json};

use super::response::{ChatAnswer, ChatUsageOut, finish_reason};
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::{Event, StopReason, StreamEncoder, Usage};
use crate::protocol::json::{push_str, push_u64};
use crate::protocol::sse::write_data_event;

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    #[serde(serialize_with = "one_or_none")]
    choices: Option<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<ChatUsageOut>>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// The frequent deltas are typed; the rare ones (a tool call's start, the empty last delta) are trees.
#[derive(Serialize)]
#[serde(untagged)]
enum Delta<'a> {
    Role { role: &'static str, content: &'static str },
    Content { content: &'a str },
    Reasoning { reasoning_content: &'a str },
    Refusal { refusal: &'a str },
    Arguments { tool_calls: [ToolArgumentsOut<'a>; 1] },
    Other(Value),
}

#[derive(Serialize)]
struct ToolArgumentsOut<'a> {
    index: usize,
    function: ArgumentsOut<'a>,
}

#[derive(Serialize)]
struct ArgumentsOut<'a> {
    arguments: &'a str,
}

/// `choices` is a list of one choice, or empty on the usage chunk.
fn one_or_none<S: serde::Serializer>(choice: &Option<ChoiceOut<'_>>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(choice.iter())
}

pub struct ChatStreamEncoder {
    /// Every chunk's bytes up to its delta (`data: {"id":…,"choices":[{"index":0,"delta":`), written once:
    /// text deltas, most of a stream, are written by hand after it (see [`Self::chunk`]).
    prefix: Vec<u8>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    /// Upstream tool index → the client's tool index.
    tools: Vec<usize>,
    /// Text pieces are joined as whole answers join them: a blank line where a call or reasoning came between.
    texts: super::response::Joiner,
    text_open: bool,
    /// Reasoning blocks are joined with a newline, as whole answers join them.
    reasonings: super::response::Joiner,
    reasoning_open: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

impl ChatStreamEncoder {
    pub fn new(answer: &ChatAnswer<'_>) -> Self {
        let mut encoder = Self {
            prefix: Vec::new(),
            id: format!("chatcmpl-{}", answer.id_hex),
            created: answer.created,
            model: answer.model.to_owned(),
            include_usage: answer.include_usage,
            started: false,
            tools: Vec::new(),
            texts: super::response::Joiner::text(),
            text_open: false,
            reasonings: super::response::Joiner::reasoning(),
            reasoning_open: false,
            stop: None,
            usage: None,
            finished: false,
        };
        encoder.write_prefix();
        encoder
    }

    /// The bytes before every chunk's delta, again whenever the id changes.
    fn write_prefix(&mut self) {
        let prefix = &mut self.prefix;
        prefix.clear();
        prefix.extend_from_slice(b"data: {\"id\":");
        push_str(prefix, &self.id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        push_u64(prefix, self.created);
        prefix.extend_from_slice(b",\"model\":");
        push_str(prefix, &self.model);
        prefix.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
    }

    /// One chunk: a choice with `delta` (none for the usage chunk). `usage` is on every chunk (null until
    /// the last) only when the client asked for usage, as OpenAI does.
    fn chunk(&self, delta: Option<Delta<'_>>, finish: Option<&'static str>, usage: Option<&Usage>, out: &mut Vec<u8>) {
        // A text delta, by hand: the same bytes serde writes below, for a fraction of the work.
        let text = match (&delta, finish, usage) {
            (Some(Delta::Content { content }), None, None) => Some((&b"{\"content\":"[..], *content)),
            (Some(Delta::Reasoning { reasoning_content }), None, None) => {
                Some((&b"{\"reasoning_content\":"[..], *reasoning_content))
            }
            (Some(Delta::Refusal { refusal }), None, None) => Some((&b"{\"refusal\":"[..], *refusal)),
            _ => None,
        };
        if let Some((key, text)) = text {
            out.reserve(self.prefix.len() + text.len() + 96);
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(key);
            push_str(out, text);
            out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}]");
            if self.include_usage {
                out.extend_from_slice(b",\"usage\":null");
            }
            out.extend_from_slice(b"}\n\n");
            return;
        }
        self.chunk_tree(delta, finish, usage, out);
    }

    fn chunk_tree(
        &self,
        delta: Option<Delta<'_>>,
        finish: Option<&'static str>,
        usage: Option<&Usage>,
        out: &mut Vec<u8>,
    ) {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: delta.map(|delta| ChoiceOut {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }),
            usage: self.include_usage.then(|| usage.map(ChatUsageOut::new)),
        };
        crate::protocol::json::write_event(out, None, &chunk);
    }

    fn delta(&mut self, delta: Delta<'_>, out: &mut Vec<u8>) {
        self.start(out);
        self.chunk(Some(delta), None, None, out);
    }

    /// A block of another kind than text: the next text is a new paragraph.
    fn other_block(&mut self) {
        self.text_open = false;
        self.texts.mark_other_block();
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunk(
                Some(Delta::Role {
                    role: "assistant",
                    content: "",
                }),
                None,
                None,
                out,
            );
        }
    }

    fn tool_index(&mut self, upstream: usize) -> usize {
        match self.tools.iter().position(|&u| u == upstream) {
            Some(k) => k,
            None => {
                self.tools.push(upstream);
                self.tools.len() - 1
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        let stop = self.stop.unwrap_or(StopReason::End);
        self.chunk(Some(Delta::Other(json!({}))), Some(finish_reason(stop)), None, out);
        if self.include_usage {
            let usage = self.usage.unwrap_or_default();
            self.chunk(None, None, Some(&usage), out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.finished = true;
    }

    fn write_error(&mut self, message: &str, code: &str, out: &mut Vec<u8>) {
        self.start(out);
        let kind = crate::protocol::openai::error_type_for_code(code);
        let error = crate::protocol::openai::error_body(message, kind, None, Some(code));
        write_data_event(out, &error);
        self.finished = true;
    }
}

impl StreamEncoder for ChatStreamEncoder {
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished {
            return StreamStatus::Finished;
        }
        match event {
            Event::MessageId(id) if !self.started => {
                self.id = super::response::completion_id(Some(&id), &self.id);
                self.write_prefix();
            }
            // Chat has no field for it: `stop` says enough.
            Event::MessageId(_) | Event::StopSequence(_) => {}
            Event::ReasoningDelta(mut d) => {
                self.other_block();
                if !self.reasoning_open {
                    self.reasoning_open = true;
                    d.insert_str(0, self.reasonings.separator());
                }
                self.delta(Delta::Reasoning { reasoning_content: &d }, out)
            }
            // Chat clients cannot carry the artefact (the text was streamed); it ends a reasoning block.
            Event::ReasoningSeal(_) => self.reasoning_open = false,
            Event::TextDelta(mut d) => {
                if !self.text_open {
                    self.text_open = true;
                    d.insert_str(0, self.texts.separator());
                }
                self.delta(Delta::Content { content: &d }, out)
            }
            Event::RefusalDelta(d) => self.delta(Delta::Refusal { refusal: &d }, out),
            Event::ToolCallStart { index, id, name } => {
                self.other_block();
                let k = self.tool_index(index);
                let id = id.unwrap_or_else(|| format!("call_{}_{k}", self.id));
                self.delta(
                    Delta::Other(json!({"tool_calls": [{"index": k, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]})),
                    out,
                );
            }
            Event::ToolCallDelta { index, arguments } => {
                let k = self.tool_index(index);
                self.delta(
                    Delta::Arguments {
                        tool_calls: [ToolArgumentsOut {
                            index: k,
                            function: ArgumentsOut { arguments: &arguments },
                        }],
                    },
                    out,
                );
            }
            Event::Stop(stop) => self.stop = Some(stop),
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Done => {
                self.complete(out);
                return StreamStatus::Finished;
            }
            Event::Error { message, code } => {
                self.write_error(&message, code.as_deref().unwrap_or("server_error"), out);
                return StreamStatus::Failed;
            }
        }
        StreamStatus::Continue
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    fn fail(&mut self, failure: StreamFailure, message: &str, out: &mut Vec<u8>) {
        let code = match failure {
            StreamFailure::Timeout => "timeout",
            StreamFailure::Upstream => "stream_incomplete",
        };
        self.write_error(message, code, out);
    }

    /// An SSE comment: OpenAI decoders ignore it.
    fn keep_alive(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b": keep-alive\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written text deltas are byte for byte what serde writes, escapes included.
    #[test]
    fn text_deltas_by_hand_equal_serde() {
        for include_usage in [false, true] {
            let answer = ChatAnswer {
                id_hex: "0123abcd",
                created: 1_700_000_000,
                model: "qwen\"3\u{7}",
                include_usage,
            };
            let encoder = ChatStreamEncoder::new(&answer);
            let text = "line\nand \"quotes\", \\ tab\t \u{1} é 😀";
            for delta in [
                Delta::Content { content: text },
                Delta::Reasoning {
                    reasoning_content: text,
                },
                Delta::Refusal { refusal: text },
            ] {
                let (mut fast, mut tree) = (Vec::new(), Vec::new());
                let again = match &delta {
                    Delta::Content { content } => Delta::Content { content },
                    Delta::Reasoning { reasoning_content } => Delta::Reasoning { reasoning_content },
                    Delta::Refusal { refusal } => Delta::Refusal { refusal },
                    _ => unreachable!(),
                };
                encoder.chunk(Some(delta), None, None, &mut fast);
                encoder.chunk_tree(Some(again), None, None, &mut tree);
                assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(tree).unwrap());
            }
        }
    }
}
