//! Encoding hub stream events as a Gemini `alt=sse` stream for a Gemini client (reference §5.1, §5.4–§5.6).
//!
//! Every frame is one `data: <single-line JSON>` line and a blank line: the Gemini CLI's parser fails on an
//! SSE comment, an `event:` line or a `data:` without its space. Each chunk carries only new parts; a
//! function call is sent whole, in one chunk, once its arguments are complete (the next call starts, or the
//! answer stops). The finish reason and usage wait for the end and go together in one terminal chunk.
//! A failure after the 200 is a final `data: {"error":{…}}` chunk and never a clean `STOP`: the Python SDK
//! raises on it, and the CLI, finding no finish reason, retries the turn, which is what it should do.

use super::response::{finish_reason, push_call_part, push_ids, push_text_part, push_usage};
use super::thought::seal_reasoning;
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::{Event, Opaque, Reasoning, StopReason, StreamEncoder, ToolCall, ToolKind, Usage};

/// The keep-alive: a chunk with one empty text part, which both SDKs read as nothing (reference §5.1).
pub const KEEP_ALIVE: &[u8] =
    b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"index\":0}]}\n\n";

pub struct GeminiStreamEncoder {
    response_id: String,
    model: String,
    include_thoughts: bool,
    /// The call whose arguments are still arriving, and its hub index.
    call: Option<(usize, ToolCall)>,
    /// The answer's reasoning so far, to seal into the first call's `thoughtSignature` (or the last chunk's)
    /// for the client to send back (see `thought::seal_reasoning`); `None` once sent.
    reasoning: Option<Vec<Reasoning>>,
    started: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

impl GeminiStreamEncoder {
    pub fn new(answer: &super::response::GeminiAnswer<'_>) -> Self {
        Self {
            response_id: answer.id_hex.to_owned(),
            model: answer.model.to_owned(),
            include_thoughts: answer.include_thoughts,
            call: None,
            reasoning: Some(Vec::new()),
            started: false,
            stop: None,
            usage: None,
            finished: false,
        }
    }

    /// `data: {"candidates":[{"content":{"role":"model","parts":[<part>]},"index":0}],…}`.
    fn chunk(&mut self, out: &mut Vec<u8>, part: impl FnOnce(&mut Vec<u8>)) {
        self.started = true;
        out.extend_from_slice(br#"data: {"candidates":[{"content":{"role":"model","parts":["#);
        part(out);
        out.extend_from_slice(br#"]},"index":0}],"#);
        push_ids(out, &self.model, &self.response_id);
        out.extend_from_slice(b"}\n\n");
    }

    /// Sends the call being assembled, if any: the first one carries the sealed reasoning.
    fn flush_call(&mut self, out: &mut Vec<u8>) {
        if let Some((_, call)) = self.call.take() {
            let signature = self.seal();
            self.chunk(out, |out| push_call_part(out, &call, signature.as_deref()));
        }
    }

    /// The envelope of the reasoning so far, once.
    fn seal(&mut self) -> Option<String> {
        seal_reasoning(&self.reasoning.take()?)
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.flush_call(out);
        let stop = self.stop.unwrap_or(StopReason::End);
        out.extend_from_slice(br#"data: {"candidates":[{"content":{"role":"model","parts":["#);
        // An answer without calls: its reasoning rides on an empty text part, as Gemini's own streams
        // end on a signature.
        if let Some(signature) = self.seal() {
            push_text_part(out, "", false, Some(&signature));
        }
        out.extend_from_slice(br#"]},"finishReason":""#);
        out.extend_from_slice(finish_reason(stop).as_bytes());
        out.extend_from_slice(br#"","index":0}],"#);
        push_usage(out, &self.usage.unwrap_or_default());
        out.push(b',');
        push_ids(out, &self.model, &self.response_id);
        out.extend_from_slice(b"}\n\n");
        self.finished = true;
    }

    fn write_error(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        // A call already whole is worth delivering before the error.
        self.flush_call(out);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&super::error_body(status, message));
        out.extend_from_slice(b"\n\n");
        self.finished = true;
    }
}

impl StreamEncoder for GeminiStreamEncoder {
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished {
            return StreamStatus::Finished;
        }
        match event {
            Event::MessageId(id) if !self.started => self.response_id = id,
            // Gemini has no field for it: `finishReason` says enough.
            Event::MessageId(_) | Event::StopSequence(_) => {}
            Event::ReasoningSeal(opaque) => {
                if let Some(reasoning) = &mut self.reasoning {
                    seal_last(reasoning, opaque);
                }
            }
            Event::ReasoningDelta(d) => {
                if let Some(reasoning) = &mut self.reasoning {
                    match reasoning.last_mut() {
                        Some(last) if last.opaque.is_none() => last.text.push_str(&d),
                        _ => reasoning.push(Reasoning {
                            text: d.clone(),
                            opaque: None,
                        }),
                    }
                }
                if self.include_thoughts && !d.is_empty() {
                    self.flush_call(out);
                    self.chunk(out, |out| push_text_part(out, &d, true, None));
                }
            }
            Event::TextDelta(d) | Event::RefusalDelta(d) => {
                if !d.is_empty() {
                    self.flush_call(out);
                    self.chunk(out, |out| push_text_part(out, &d, false, None));
                }
            }
            Event::ToolCallStart { index, id, name } => {
                self.flush_call(out);
                let id = id.unwrap_or_else(|| format!("call_{}_{index}", self.response_id));
                let call = ToolCall {
                    id,
                    name,
                    namespace: None,
                    kind: ToolKind::Function,
                    arguments: String::new(),
                };
                self.call = Some((index, call));
            }
            Event::ToolCallDelta { index, arguments } => match &mut self.call {
                Some((i, call)) if *i == index => call.arguments.push_str(&arguments),
                // A late fragment of a call already sent (upstreams send calls one after the other), or of
                // none: nothing can be done with it.
                _ => {}
            },
            Event::Stop(stop) => {
                self.flush_call(out);
                self.stop = Some(stop);
            }
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Done => {
                self.complete(out);
                return StreamStatus::Finished;
            }
            Event::Error { message, code } => {
                let status = super::status_for_hub_code(code.as_deref().unwrap_or("server_error"));
                self.write_error(status, &message, out);
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
        let status = match failure {
            StreamFailure::Timeout => 504,
            StreamFailure::Upstream => 502,
        };
        self.write_error(status, message, out);
    }

    fn keep_alive(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(KEEP_ALIVE);
    }
}

/// The reasoning just streamed is complete: its artefact goes with it. A block with no streamed text
/// (Anthropic's `redacted_thinking`) stands alone.
fn seal_last(reasoning: &mut Vec<Reasoning>, opaque: Opaque) {
    match reasoning.last_mut() {
        Some(last) if last.opaque.is_none() => last.opaque = Some(opaque),
        _ => reasoning.push(Reasoning {
            text: String::new(),
            opaque: Some(opaque),
        }),
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
