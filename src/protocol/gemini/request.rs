//! Gemini `GenerateContentRequest`s and the hub [`Request`]: decoding a Gemini client's body (reference
//! §2.1–§2.7: camelCase and snake_case names, roles `user`/`model`, inline and file data, function calls and
//! responses with ids minted and paired, thinking), and encoding a hub request for a Gemini upstream
//! (§2.8–§2.10, §3.3: camelCase only, no `model` in the body, tool schemas as `parametersJsonSchema`,
//! signatures back on replayed calls).
//!
//! The decoder reads the body once into borrowed structs; only when that fails is the body walked again to
//! name the field at fault. The encoder serialises borrowed structs straight into one buffer; schemas and
//! arguments are copied as raw JSON text.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::thought::{SENTINEL, decode_base64, mint_call_id, open_reasoning, split_call_id, standard_base64};
use crate::protocol::convert::tool_calls::parse_tool_arguments;
use crate::protocol::convert::{ConvertError, ModelOptions, ThinkingMode};
use crate::protocol::fields::{Path, invalid_type, invalid_value, missing, unsupported_parameter, unsupported_value};
use crate::protocol::hub::{
    self, DataUrl, Message, Opaque, OutputFormat, Part, Reasoning, ReasoningRequest, Request, Role, Tool, ToolCall,
    ToolChoice, ToolKind, ToolResult,
};
use crate::protocol::json::{Reader, Seen};
use crate::protocol::responses::tools::flat_name;

/// What the answer to a Gemini client needs from its request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeminiFacts {
    /// `thinkingConfig.includeThoughts`: thought parts are shown to the client only when it asked.
    pub include_thoughts: bool,
}

/// What the upstream body does with what the request asked for.
pub struct Encoded {
    pub body: Vec<u8>,
    /// Thinking was asked of the upstream.
    pub thinking_enabled: bool,
}

// ---------------------------------------------------------------------------------------------------------
// Decoding a Gemini client's request

/// Proto3 JSON: every field under its lowerCamelCase name or its proto (snake_case) name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InBody<'a> {
    #[serde(borrow, default)]
    contents: Option<Vec<InContent<'a>>>,
    #[serde(borrow, default, alias = "system_instruction")]
    system_instruction: Option<InContent<'a>>,
    #[serde(borrow, default)]
    tools: Option<Vec<InTool<'a>>>,
    #[serde(borrow, default, alias = "tool_config")]
    tool_config: Option<InToolConfig<'a>>,
    #[serde(borrow, default, alias = "generation_config")]
    generation_config: Option<InGenerationConfig<'a>>,
    #[serde(borrow, default, alias = "cached_content")]
    cached_content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InContent<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parts: Option<Vec<InPart<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InPart<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default, alias = "thought_signature")]
    thought_signature: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "inline_data")]
    inline_data: Option<InBlob<'a>>,
    #[serde(borrow, default, alias = "file_data")]
    file_data: Option<InFileData<'a>>,
    #[serde(borrow, default, alias = "function_call")]
    function_call: Option<InFunctionCall<'a>>,
    #[serde(borrow, default, alias = "function_response")]
    function_response: Option<InFunctionResponse<'a>>,
    #[serde(borrow, default, alias = "executable_code")]
    executable_code: Option<InCode<'a>>,
    #[serde(borrow, default, alias = "code_execution_result")]
    code_execution_result: Option<InCodeResult<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InBlob<'a> {
    #[serde(borrow, default, alias = "mime_type")]
    mime_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InFileData<'a> {
    #[serde(borrow, default, alias = "mime_type")]
    mime_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "file_uri")]
    file_uri: Option<Cow<'a, str>>,
}

/// A `functionCall` part as received, from a client's request or an upstream's answer.
#[derive(Deserialize)]
pub(super) struct InFunctionCall<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InFunctionResponse<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct InCode<'a> {
    #[serde(borrow, default)]
    pub(super) language: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) code: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct InCodeResult<'a> {
    #[serde(borrow, default)]
    pub(super) output: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InTool<'a> {
    #[serde(borrow, default, alias = "function_declarations")]
    function_declarations: Option<Vec<InDeclaration<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InDeclaration<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "parameters_json_schema")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InToolConfig<'a> {
    #[serde(borrow, default, alias = "function_calling_config")]
    function_calling_config: Option<InCallingConfig<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InCallingConfig<'a> {
    #[serde(borrow, default)]
    mode: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "allowed_function_names")]
    allowed_function_names: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InGenerationConfig<'a> {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default, alias = "top_p")]
    top_p: Option<f64>,
    #[serde(default, alias = "top_k")]
    top_k: Option<f64>,
    #[serde(default, alias = "max_output_tokens")]
    max_output_tokens: Option<i64>,
    #[serde(borrow, default, alias = "stop_sequences")]
    stop_sequences: Option<Vec<Cow<'a, str>>>,
    #[serde(default, alias = "candidate_count")]
    candidate_count: Option<i64>,
    #[serde(borrow, default, alias = "response_mime_type")]
    response_mime_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "response_schema")]
    response_schema: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "response_json_schema", alias = "_responseJsonSchema")]
    response_json_schema: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "response_modalities")]
    response_modalities: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default, alias = "thinking_config")]
    thinking_config: Option<InThinking<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InThinking<'a> {
    #[serde(default, alias = "include_thoughts")]
    include_thoughts: Option<bool>,
    #[serde(default, alias = "thinking_budget")]
    thinking_budget: Option<i64>,
    #[serde(borrow, default, alias = "thinking_level")]
    thinking_level: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------------------
// The hand-written read: the same fields as the serde derives above, under both their names, each read as
// serde reads it (`null` is `None`, a field given twice under either name is refused), unknown ones skipped.
// Anything else is `None`, and serde reads the body (and names the error).

/// The body as serde reads it into [`InBody`], or `None`.
fn read_body(text: &str) -> Option<InBody<'_>> {
    let mut r = Reader::new(text);
    let mut body = InBody {
        contents: None,
        system_instruction: None,
        tools: None,
        tool_config: None,
        generation_config: None,
        cached_content: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "contents" => {
                body.contents = seen
                    .first(0)
                    .and_then(|()| r.nullable(|r| list(r, read_content_item)))?
            }
            "systemInstruction" | "system_instruction" => {
                body.system_instruction = seen.first(1).and_then(|()| r.nullable(read_content_item))?
            }
            "tools" => body.tools = seen.first(2).and_then(|()| r.nullable(|r| list(r, read_tool)))?,
            "toolConfig" | "tool_config" => {
                body.tool_config = seen.first(3).and_then(|()| r.nullable(read_tool_config))?
            }
            "generationConfig" | "generation_config" => {
                body.generation_config = seen.first(4).and_then(|()| r.nullable(read_generation_config_fast))?
            }
            "cachedContent" | "cached_content" => {
                body.cached_content = seen.first(5).and_then(|()| r.nullable(Reader::raw))?
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    r.end()?;
    Some(body)
}

/// A list of what `item` reads.
fn list<'a, T>(r: &mut Reader<'a>, mut item: impl FnMut(&mut Reader<'a>) -> Option<T>) -> Option<Vec<T>> {
    // Most lists here hold one item (a content's parts, a tool's declarations): a first allocation of one
    // part stays small, where a default of four parts is a large block the allocator serves slowly.
    let mut items = Vec::with_capacity(1);
    r.array(|r| item(r).map(|value| items.push(value)))?;
    Some(items)
}

fn read_content_item<'a>(r: &mut Reader<'a>) -> Option<InContent<'a>> {
    let mut content = InContent {
        role: None,
        parts: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "role" => content.role = seen.first(0).and_then(|()| r.nullable(Reader::str))?,
            "parts" => content.parts = seen.first(1).and_then(|()| r.nullable(|r| list(r, read_part_fast)))?,
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(content)
}

fn read_part_fast<'a>(r: &mut Reader<'a>) -> Option<InPart<'a>> {
    let mut part = InPart {
        text: None,
        thought: None,
        thought_signature: None,
        inline_data: None,
        file_data: None,
        function_call: None,
        function_response: None,
        executable_code: None,
        code_execution_result: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "text" => part.text = seen.first(0).and_then(|()| r.nullable(Reader::str))?,
            "thought" => part.thought = seen.first(1).and_then(|()| r.nullable(Reader::bool))?,
            "thoughtSignature" | "thought_signature" => {
                part.thought_signature = seen.first(2).and_then(|()| r.nullable(Reader::str))?
            }
            "inlineData" | "inline_data" => {
                part.inline_data = seen.first(3).and_then(|()| {
                    r.nullable(|r| {
                        let [mime_type, data] = strings(r, &[&["mimeType", "mime_type"], &["data"]])?;
                        Some(InBlob { mime_type, data })
                    })
                })?
            }
            "fileData" | "file_data" => {
                part.file_data = seen.first(4).and_then(|()| {
                    r.nullable(|r| {
                        let [mime_type, file_uri] =
                            strings(r, &[&["mimeType", "mime_type"], &["fileUri", "file_uri"]])?;
                        Some(InFileData { mime_type, file_uri })
                    })
                })?
            }
            "functionCall" | "function_call" => {
                part.function_call = seen.first(5).and_then(|()| {
                    r.nullable(|r| {
                        let ([id, name], args) = strings_and_raw(r, [&["id"], &["name"]], "args")?;
                        Some(InFunctionCall { id, name, args })
                    })
                })?
            }
            "functionResponse" | "function_response" => {
                part.function_response = seen.first(6).and_then(|()| {
                    r.nullable(|r| {
                        let ([id, name], response) = strings_and_raw(r, [&["id"], &["name"]], "response")?;
                        Some(InFunctionResponse { id, name, response })
                    })
                })?
            }
            "executableCode" | "executable_code" => {
                part.executable_code = seen.first(7).and_then(|()| {
                    r.nullable(|r| {
                        let [language, code] = strings(r, &[&["language"], &["code"]])?;
                        Some(InCode { language, code })
                    })
                })?
            }
            "codeExecutionResult" | "code_execution_result" => {
                part.code_execution_result = seen.first(8).and_then(|()| {
                    r.nullable(|r| {
                        let [output] = strings(r, &[&["output"]])?;
                        Some(InCodeResult { output })
                    })
                })?
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(part)
}

/// Optional string fields, in the order their names were given.
type Strings<'a, const N: usize> = [Option<Cow<'a, str>>; N];

/// An object of optional string fields, each under any of its names, others skipped.
fn strings<'a, const N: usize>(r: &mut Reader<'a>, names: &[&[&str]; N]) -> Option<Strings<'a, N>> {
    let mut values = [const { None }; N];
    let mut seen = Seen::default();
    r.object(|r, key| {
        match names.iter().position(|aliases| aliases.contains(&key)) {
            Some(i) => values[i] = seen.first(i as u32).and_then(|()| r.nullable(Reader::str))?,
            None => r.skip()?,
        }
        Some(())
    })?;
    Some(values)
}

/// An object of optional string fields and one raw value `raw`, others skipped.
fn strings_and_raw<'a, const N: usize>(
    r: &mut Reader<'a>,
    names: [&[&str]; N],
    raw: &str,
) -> Option<(Strings<'a, N>, Option<&'a RawValue>)> {
    let mut values = [const { None }; N];
    let mut raw_value = None;
    let mut seen = Seen::default();
    r.object(|r, key| {
        if key == raw {
            raw_value = seen.first(N as u32).and_then(|()| r.nullable(Reader::raw))?;
            return Some(());
        }
        match names.iter().position(|aliases| aliases.contains(&key)) {
            Some(i) => values[i] = seen.first(i as u32).and_then(|()| r.nullable(Reader::str))?,
            None => r.skip()?,
        }
        Some(())
    })?;
    Some((values, raw_value))
}

fn read_tool<'a>(r: &mut Reader<'a>) -> Option<InTool<'a>> {
    let mut tool = InTool {
        function_declarations: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "functionDeclarations" | "function_declarations" => {
                tool.function_declarations = seen
                    .first(0)
                    .and_then(|()| r.nullable(|r| list(r, read_declaration_fast)))?
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(tool)
}

fn read_declaration_fast<'a>(r: &mut Reader<'a>) -> Option<InDeclaration<'a>> {
    let mut d = InDeclaration {
        name: None,
        description: None,
        parameters: None,
        parameters_json_schema: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "name" => d.name = seen.first(0).and_then(|()| r.nullable(Reader::str))?,
            "description" => d.description = seen.first(1).and_then(|()| r.nullable(Reader::str))?,
            "parameters" => d.parameters = seen.first(2).and_then(|()| r.nullable(Reader::raw))?,
            "parametersJsonSchema" | "parameters_json_schema" => {
                d.parameters_json_schema = seen.first(3).and_then(|()| r.nullable(Reader::raw))?
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(d)
}

fn read_tool_config<'a>(r: &mut Reader<'a>) -> Option<InToolConfig<'a>> {
    let mut config = InToolConfig {
        function_calling_config: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "functionCallingConfig" | "function_calling_config" => {
                config.function_calling_config = seen.first(0).and_then(|()| {
                    r.nullable(|r| {
                        let mut calling = InCallingConfig {
                            mode: None,
                            allowed_function_names: None,
                        };
                        let mut seen = Seen::default();
                        r.object(|r, key| {
                            match key {
                                "mode" => calling.mode = seen.first(0).and_then(|()| r.nullable(Reader::str))?,
                                "allowedFunctionNames" | "allowed_function_names" => {
                                    calling.allowed_function_names =
                                        seen.first(1).and_then(|()| r.nullable(|r| list(r, Reader::str)))?
                                }
                                _ => r.skip()?,
                            }
                            Some(())
                        })?;
                        Some(calling)
                    })
                })?
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(config)
}

fn read_generation_config_fast<'a>(r: &mut Reader<'a>) -> Option<InGenerationConfig<'a>> {
    let mut c = InGenerationConfig {
        temperature: None,
        top_p: None,
        top_k: None,
        max_output_tokens: None,
        stop_sequences: None,
        candidate_count: None,
        response_mime_type: None,
        response_schema: None,
        response_json_schema: None,
        response_modalities: None,
        thinking_config: None,
    };
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "temperature" => c.temperature = seen.first(0).and_then(|()| r.nullable(Reader::f64))?,
            "topP" | "top_p" => c.top_p = seen.first(1).and_then(|()| r.nullable(Reader::f64))?,
            "topK" | "top_k" => c.top_k = seen.first(2).and_then(|()| r.nullable(Reader::f64))?,
            "maxOutputTokens" | "max_output_tokens" => {
                c.max_output_tokens = seen.first(3).and_then(|()| r.nullable(Reader::i64))?
            }
            "stopSequences" | "stop_sequences" => {
                c.stop_sequences = seen.first(4).and_then(|()| r.nullable(|r| list(r, Reader::str)))?
            }
            "candidateCount" | "candidate_count" => {
                c.candidate_count = seen.first(5).and_then(|()| r.nullable(Reader::i64))?
            }
            "responseMimeType" | "response_mime_type" => {
                c.response_mime_type = seen.first(6).and_then(|()| r.nullable(Reader::str))?
            }
            "responseSchema" | "response_schema" => {
                c.response_schema = seen.first(7).and_then(|()| r.nullable(Reader::raw))?
            }
            "responseJsonSchema" | "response_json_schema" | "_responseJsonSchema" => {
                c.response_json_schema = seen.first(8).and_then(|()| r.nullable(Reader::raw))?
            }
            "responseModalities" | "response_modalities" => {
                c.response_modalities = seen.first(9).and_then(|()| r.nullable(|r| list(r, Reader::str)))?
            }
            "thinkingConfig" | "thinking_config" => {
                c.thinking_config = seen.first(10).and_then(|()| {
                    r.nullable(|r| {
                        let mut t = InThinking {
                            include_thoughts: None,
                            thinking_budget: None,
                            thinking_level: None,
                        };
                        let mut seen = Seen::default();
                        r.object(|r, key| {
                            match key {
                                "includeThoughts" | "include_thoughts" => {
                                    t.include_thoughts = seen.first(0).and_then(|()| r.nullable(Reader::bool))?
                                }
                                "thinkingBudget" | "thinking_budget" => {
                                    t.thinking_budget = seen.first(1).and_then(|()| r.nullable(Reader::i64))?
                                }
                                "thinkingLevel" | "thinking_level" => {
                                    t.thinking_level = seen.first(2).and_then(|()| r.nullable(Reader::str))?
                                }
                                _ => r.skip()?,
                            }
                            Some(())
                        })?;
                        Some(t)
                    })
                })?
            }
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(c)
}

/// Decodes a Gemini client's `GenerateContentRequest`. The model and whether to stream are in the URL
/// path, not the body: the caller sets `stream` (`:streamGenerateContent`) on the returned request.
/// Fields whose loss would change the answer (`cachedContent`, `candidateCount` > 1, non-text output,
/// media only Gemini can fetch) are refused with an error naming the field.
pub fn decode(body: &[u8]) -> Result<(Request, GeminiFacts), ConvertError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(body_error("The request body must be a JSON object."));
    }
    let body: InBody = match std::str::from_utf8(body).ok().and_then(read_body) {
        Some(body) => body,
        None => crate::protocol::json::parse(body).map_err(|e| locate(body, &e))?,
    };
    decode_body(body)
}

/// The rest of [`decode`], once the body is read.
fn decode_body(body: InBody<'_>) -> Result<(Request, GeminiFacts), ConvertError> {
    let root = Path::Root;
    if body.cached_content.is_some_and(|c| c.get() != "null") {
        return Err(unsupported_parameter(
            &root.key("cachedContent"),
            "cachedContent is not supported with this model: the cache holds part of the prompt.",
        ));
    }
    let mut instructions = Vec::new();
    if let Some(system) = body.system_instruction {
        // Gemini ignores the role of the system instruction (the CLI sends "user"); only text counts.
        for part in system.parts.unwrap_or_default() {
            if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                instructions.push(text.into_owned());
            }
        }
    }
    let at = root.key("contents");
    let contents = body.contents.filter(|c| !c.is_empty()).ok_or_else(|| missing(&at))?;
    let mut messages = Vec::with_capacity(contents.len());
    let mut calls = TurnCalls::default();
    for (i, content) in contents.into_iter().enumerate() {
        let p = at.index(i);
        if let Some(message) = read_content(content, i, &p, &mut calls)? {
            messages.push(message);
        }
    }
    let mut tools = Vec::new();
    let tp = root.key("tools");
    for (i, tool) in body.tools.unwrap_or_default().into_iter().enumerate() {
        // Google's own tools (search, code execution, URL context …) have no counterpart elsewhere.
        let dp = tp.index(i);
        let dp = dp.key("functionDeclarations");
        for (j, declaration) in tool.function_declarations.unwrap_or_default().into_iter().enumerate() {
            tools.push(read_declaration(declaration, &dp.index(j))?);
        }
    }
    let tool_choice = match body.tool_config.and_then(|c| c.function_calling_config) {
        Some(config) => read_calling_config(config, &mut tools),
        None => None,
    };
    let mut request = Request {
        instructions,
        messages,
        tools,
        tool_choice,
        ..Request::default()
    };
    let mut facts = GeminiFacts::default();
    if let Some(config) = body.generation_config {
        read_generation_config(config, &mut request, &mut facts)?;
    }
    Ok((request, facts))
}

fn body_error(message: &str) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: None,
        code: None,
    }
}

/// The calls of the latest model turn, which the next user turn's function responses answer.
#[derive(Default)]
struct TurnCalls {
    /// (id, name, answered).
    calls: Vec<(String, String, bool)>,
}

impl TurnCalls {
    /// The id of the call a function response answers (reference §2.3): its own id if it names one of the
    /// turn's calls, else the next unanswered call of that name, else the next unanswered call.
    fn answer(&mut self, id: Option<&str>, name: Option<&str>) -> Option<String> {
        let found = id
            .and_then(|id| self.calls.iter().position(|(c, _, _)| c == id))
            .or_else(|| name.and_then(|name| self.calls.iter().position(|(_, n, answered)| !answered && n == name)))
            .or_else(|| self.calls.iter().position(|(_, _, answered)| !answered))?;
        let call = &mut self.calls[found];
        call.2 = true;
        Some(call.0.clone())
    }
}

fn read_content(
    content: InContent<'_>,
    i: usize,
    at: &Path,
    calls: &mut TurnCalls,
) -> Result<Option<Message>, ConvertError> {
    let role = match content.role.as_deref() {
        None | Some("" | "user") => Role::User,
        Some("model") => Role::Assistant,
        // The old name of the role that carried function responses.
        Some("function" | "tool") => Role::User,
        Some(other) => {
            return Err(invalid_value(
                &at.key("role"),
                format!("Please use a valid role: user, model. Got '{other}'."),
            ));
        }
    };
    if role == Role::Assistant {
        calls.calls.clear();
    }
    let pp = at.key("parts");
    let list = content.parts.unwrap_or_default();
    let mut parts = Vec::with_capacity(list.len());
    let mut sealed = Vec::new();
    for (j, part) in list.into_iter().enumerate() {
        if role == Role::Assistant
            && let Some(reasoning) = part.thought_signature.as_deref().and_then(open_reasoning)
        {
            sealed.extend(reasoning.into_iter().map(Part::Reasoning));
        }
        read_part(part, role, (i, j), &pp.index(j), calls, &mut parts)?;
    }
    // A turn whose reasoning the router sealed gets it back whole, where the upstream put it (first); the
    // thought summaries the client may also have kept are the same reasoning, shown.
    if !sealed.is_empty() {
        parts.retain(|p| !matches!(p, Part::Reasoning(_)));
        parts.splice(0..0, sealed);
    }
    Ok((!parts.is_empty()).then_some(Message { role, parts }))
}

fn read_part(
    part: InPart<'_>,
    role: Role,
    (i, j): (usize, usize),
    at: &Path,
    calls: &mut TurnCalls,
    out: &mut Vec<Part>,
) -> Result<(), ConvertError> {
    // A `thoughtSignature` from a Gemini client was made by a Gemini model, is the sentinel, or is the
    // router's own envelope, opened by `read_content`: none goes further as it is.
    if let Some(call) = part.function_call {
        let name = call
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| missing(&at.key("functionCall").key("name")))?;
        let id = match call.id.filter(|id| !id.is_empty()) {
            Some(id) => id.into_owned(),
            None => mint_call_id(&format!("{i}:{j}")),
        };
        calls.calls.push((id.clone(), name.to_string(), false));
        out.push(Part::ToolCall(ToolCall {
            id,
            name: name.into_owned(),
            namespace: None,
            kind: ToolKind::Function,
            arguments: match call.args {
                Some(args) if args.get() != "null" => args.get().to_owned(),
                _ => "{}".to_owned(),
            },
        }));
        return Ok(());
    }
    if let Some(response) = part.function_response {
        let call_id = calls
            .answer(response.id.as_deref(), response.name.as_deref())
            .or_else(|| response.id.filter(|id| !id.is_empty()).map(Cow::into_owned))
            .unwrap_or_else(|| mint_call_id(&format!("{i}:{j}")));
        let (text, is_error) = response_text(response.response);
        out.push(Part::ToolResult(ToolResult {
            call_id,
            content: vec![Part::Text(text)],
            is_error,
        }));
        return Ok(());
    }
    if let Some(blob) = part.inline_data {
        out.push(inline_part(blob, &at.key("inlineData"))?);
        return Ok(());
    }
    if let Some(file) = part.file_data {
        out.push(file_part(file, &at.key("fileData"))?);
        return Ok(());
    }
    if let Some(code) = part.executable_code {
        let language = code.language.as_deref().unwrap_or("").to_ascii_lowercase();
        let language = if language == "language_unspecified" {
            ""
        } else {
            &language
        };
        out.push(Part::Text(format!(
            "```{language}\n{}\n```",
            code.code.unwrap_or_default()
        )));
        return Ok(());
    }
    if let Some(result) = part.code_execution_result {
        out.push(Part::Text(format!("```\n{}\n```", result.output.unwrap_or_default())));
        return Ok(());
    }
    if let Some(text) = part.text.filter(|t| !t.is_empty()) {
        out.push(match (part.thought == Some(true), role) {
            (true, Role::Assistant) => Part::Reasoning(Reasoning {
                text: text.into_owned(),
                opaque: None,
            }),
            // Thoughts are the model's; a user "thought" is only text.
            _ => Part::Text(text.into_owned()),
        });
    }
    // A part with only a signature, or with metadata only (videoMetadata …), carries nothing across.
    let _ = part.thought_signature;
    Ok(())
}

/// A function response as result text (reference §2.3): `{"output": s}` is `s`, `{"error": e}` is an error
/// saying `e`, any other object its JSON text.
fn response_text(response: Option<&RawValue>) -> (String, bool) {
    #[derive(Deserialize)]
    struct Conventional<'a> {
        #[serde(borrow, default)]
        output: Option<&'a RawValue>,
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
    }
    let Some(response) = response.filter(|r| r.get() != "null") else {
        return (String::new(), false);
    };
    let text_of = |raw: &RawValue| match serde_json::from_str::<Cow<str>>(raw.get()) {
        Ok(text) => text.into_owned(),
        Err(_) => raw.get().to_owned(),
    };
    match serde_json::from_str::<Conventional>(response.get()) {
        Ok(Conventional { error: Some(error), .. }) if error.get() != "null" => (text_of(error), true),
        Ok(Conventional {
            output: Some(output), ..
        }) if output.get() != "null" => (text_of(output), false),
        _ => (response.get().to_owned(), false),
    }
}

/// `inlineData` as a hub image or file (a `data:` URL in standard base64, which Anthropic and data URLs
/// require; the Python SDK writes URL-safe) or, for plain text, as text (reference §2.2).
fn inline_part(blob: InBlob<'_>, at: &Path) -> Result<Part, ConvertError> {
    let mime = blob
        .mime_type
        .filter(|m| !m.is_empty())
        .ok_or_else(|| missing(&at.key("mimeType")))?
        .to_ascii_lowercase();
    let data = blob.data.ok_or_else(|| missing(&at.key("data")))?;
    let data = standard_base64(&data);
    if mime.starts_with("audio/") || mime.starts_with("video/") {
        return Err(unsupported_value(
            &at.key("mimeType"),
            format!("Inline data of type {mime} is not supported with this model."),
        ));
    }
    if mime == "text/plain"
        && let Some(text) = decode_base64(&data).and_then(|b| String::from_utf8(b).ok())
    {
        return Ok(Part::Text(text));
    }
    let url = format!("data:{mime};base64,{data}");
    Ok(match mime.starts_with("image/") {
        true => Part::Image { url, detail: None },
        false => Part::File {
            data_url: url,
            filename: None,
        },
    })
}

/// `fileData`: an http(s) image URL is an image; Files-API, `gs://` and YouTube URIs only Gemini can fetch.
fn file_part(file: InFileData<'_>, at: &Path) -> Result<Part, ConvertError> {
    let uri = file
        .file_uri
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing(&at.key("fileUri")))?;
    let mime = file.mime_type.as_deref().unwrap_or("").to_ascii_lowercase();
    let web = uri.starts_with("https://") || uri.starts_with("http://");
    let gemini_only =
        uri.contains("generativelanguage.googleapis.com") || uri.contains("youtube.com/") || uri.contains("youtu.be/");
    let image = mime.starts_with("image/") || (mime.is_empty() && has_image_extension(&uri));
    if web && !gemini_only && image {
        return Ok(Part::Image {
            url: uri.into_owned(),
            detail: None,
        });
    }
    Err(unsupported_value(
        &at.key("fileUri"),
        "Only http(s) image URLs can be used as fileData with this model; upload other files inline.",
    ))
}

fn has_image_extension(uri: &str) -> bool {
    image_mime_for(uri).is_some()
}

/// The image type an URL's extension names.
fn image_mime_for(uri: &str) -> Option<&'static str> {
    let path = uri.split(['?', '#']).next().unwrap_or(uri).to_ascii_lowercase();
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

fn read_declaration(declaration: InDeclaration<'_>, at: &Path) -> Result<Tool, ConvertError> {
    let name = declaration
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| missing(&at.key("name")))?;
    let (schema, field) = match (declaration.parameters_json_schema, declaration.parameters) {
        (Some(schema), _) if schema.get() != "null" => (Some(schema), "parametersJsonSchema"),
        (_, Some(schema)) if schema.get() != "null" => (Some(schema), "parameters"),
        _ => (None, ""),
    };
    let parameters = match schema {
        Some(schema) if !schema.get().starts_with('{') => return Err(invalid_type(&at.key(field), "an object")),
        Some(schema) => Some(json_schema(schema)),
        None => None,
    };
    Ok(Tool {
        name: name.into_owned(),
        namespace: None,
        description: declaration.description.map(Cow::into_owned),
        kind: ToolKind::Function,
        parameters,
        strict: None,
    })
}

/// A Gemini schema (`parameters`, an OpenAPI subset, or `parametersJsonSchema`) as JSON Schema (reference
/// §2.4): upper-case type names lowered, `nullable` folded into `type`, Gemini-only keys dropped, int64
/// limits sent as strings made numbers. Most schemas need none of it and are copied as written.
fn json_schema(schema: &RawValue) -> Box<RawValue> {
    const MARKERS: [&str; 10] = [
        "\"OBJECT\"",
        "\"STRING\"",
        "\"INTEGER\"",
        "\"NUMBER\"",
        "\"BOOLEAN\"",
        "\"ARRAY\"",
        "\"NULL\"",
        "\"nullable\"",
        "\"propertyOrdering\"",
        "\"format\":\"enum\"",
    ];
    let text = schema.get();
    let int_as_string = text.contains("Items\":\"") || text.contains("Length\":\"") || text.contains("Properties\":\"");
    if !int_as_string && !MARKERS.iter().any(|m| text.contains(m)) {
        return schema.to_owned();
    }
    let Ok(mut tree) = serde_json::from_str::<Value>(text) else {
        return schema.to_owned();
    };
    normalise_schema(&mut tree);
    serde_json::value::to_raw_value(&tree).unwrap_or_else(|_| schema.to_owned())
}

fn normalise_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(kind) = map.get_mut("type") {
                match kind {
                    Value::String(name) => *name = name.to_ascii_lowercase(),
                    Value::Array(names) => {
                        for name in names.iter_mut() {
                            if let Value::String(name) = name {
                                *name = name.to_ascii_lowercase();
                            }
                        }
                    }
                    _ => {}
                }
            }
            if map.remove("nullable") == Some(Value::Bool(true))
                && let Some(kind) = map.get_mut("type")
            {
                match kind {
                    Value::String(name) if name != "null" => *kind = Value::Array(vec![kind.clone(), "null".into()]),
                    Value::Array(names) if !names.iter().any(|n| n == "null") => names.push("null".into()),
                    _ => {}
                }
            }
            map.remove("propertyOrdering");
            map.remove("example");
            if map.get("format").and_then(Value::as_str) == Some("enum") {
                map.remove("format");
            }
            for key in [
                "minItems",
                "maxItems",
                "minLength",
                "maxLength",
                "minProperties",
                "maxProperties",
            ] {
                if let Some(Value::String(n)) = map.get(key)
                    && let Ok(n) = n.parse::<u64>()
                {
                    map.insert(key.into(), n.into());
                }
            }
            for (key, child) in map.iter_mut() {
                // `properties` maps names to schemas; `enum`, `required` and `default` hold data, not schemas.
                if !matches!(key.as_str(), "enum" | "required" | "default" | "const") {
                    normalise_schema(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise_schema),
        _ => {}
    }
}

/// `functionCallingConfig` as a tool choice (reference §2.5); several allowed names keep only those tools.
fn read_calling_config(config: InCallingConfig<'_>, tools: &mut Vec<Tool>) -> Option<ToolChoice> {
    let mode = config.mode.as_deref().unwrap_or("").to_ascii_uppercase();
    let names = config.allowed_function_names.unwrap_or_default();
    match mode.as_str() {
        "NONE" => Some(ToolChoice::None),
        "ANY" => match names.as_slice() {
            [] => Some(ToolChoice::Required),
            [name] => Some(ToolChoice::Named {
                name: name.to_string(),
                namespace: None,
            }),
            names => {
                tools.retain(|t| names.iter().any(|n| *n == t.name));
                Some(ToolChoice::Required)
            }
        },
        // VALIDATED constrains the model to a valid call or text: the others' auto is the closest.
        "AUTO" | "VALIDATED" => Some(ToolChoice::Auto),
        _ => None,
    }
}

fn read_generation_config(
    config: InGenerationConfig<'_>,
    request: &mut Request,
    facts: &mut GeminiFacts,
) -> Result<(), ConvertError> {
    let root = Path::Root;
    let at = root.key("generationConfig");
    if config.candidate_count.is_some_and(|n| n > 1) {
        return Err(unsupported_value(
            &at.key("candidateCount"),
            "Only one candidate can be generated with this model (candidateCount must be 1).",
        ));
    }
    if let Some(modality) = config
        .response_modalities
        .iter()
        .flatten()
        .find(|m| !m.eq_ignore_ascii_case("text"))
    {
        return Err(unsupported_value(
            &at.key("responseModalities"),
            format!("Response modality {modality} is not supported with this model."),
        ));
    }
    request.temperature = config.temperature;
    request.top_p = config.top_p;
    request.top_k = config.top_k.filter(|k| *k >= 1.0).map(|k| k as u64);
    if let Some(n) = config.max_output_tokens {
        request.max_output_tokens = Some(u64::try_from(n).map_err(|_| {
            invalid_value(
                &at.key("maxOutputTokens"),
                format!("maxOutputTokens must be positive, got {n}."),
            )
        })?);
    }
    request.stop = config
        .stop_sequences
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(Cow::into_owned)
        .collect();
    let json = config
        .response_mime_type
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    let schema = match (config.response_json_schema, config.response_schema) {
        (Some(schema), _) if schema.get() != "null" => Some(schema),
        (_, Some(schema)) if schema.get() != "null" => Some(schema),
        _ => None,
    };
    request.format = match (json, schema) {
        (true, Some(schema)) => Some(OutputFormat::JsonSchema {
            name: "response".into(),
            schema: json_schema(schema),
            strict: None,
            description: None,
        }),
        (true, None) => Some(OutputFormat::JsonObject),
        // `text/x.enum` has no counterpart: the answer is unconstrained text.
        (false, _) => None,
    };
    if let Some(thinking) = config.thinking_config {
        facts.include_thoughts = thinking.include_thoughts == Some(true);
        let tp = at.key("thinkingConfig");
        (request.reasoning, request.reasoning_budget) = read_thinking(&thinking, &tp)?;
    }
    Ok(())
}

/// `thinkingConfig` as an effort (reference §2.7).
fn read_thinking(thinking: &InThinking<'_>, at: &Path) -> Result<(ReasoningRequest, Option<u64>), ConvertError> {
    let effort = |e: &str| ReasoningRequest::Effort(e.to_owned());
    if let Some(level) = thinking.thinking_level.as_deref() {
        if thinking.thinking_budget.is_some() {
            // What Gemini itself answers to both.
            return Err(invalid_value(
                &at.key("thinkingLevel"),
                "thinkingBudget and thinkingLevel cannot both be set.",
            ));
        }
        return Ok((
            match level.to_ascii_uppercase().as_str() {
                "MINIMAL" => ReasoningRequest::Disabled,
                "LOW" => effort("low"),
                "MEDIUM" => effort("medium"),
                "HIGH" => effort("high"),
                "THINKING_LEVEL_UNSPECIFIED" | "" => ReasoningRequest::Unspecified,
                other => {
                    return Err(unsupported_value(
                        &at.key("thinkingLevel"),
                        format!("Invalid thinkingLevel '{other}': use MINIMAL, LOW, MEDIUM or HIGH."),
                    ));
                }
            },
            None,
        ));
    }
    Ok(match thinking.thinking_budget {
        Some(0) => (ReasoningRequest::Disabled, None),
        Some(n) if n < 0 => (ReasoningRequest::Unspecified, None),
        Some(n) => {
            let n = n as u64;
            let level = match n {
                0..2048 => "low",
                2048..8192 => "medium",
                _ => "high",
            };
            (effort(level), Some(n))
        }
        None => (ReasoningRequest::Unspecified, None),
    })
}

/// Why a body the typed pass could not read is refused, naming the field: each top-level field, content,
/// part and part field is tried by itself until the one at fault is found. Only failed requests pay for it.
fn locate(body: &[u8], error: &serde_json::Error) -> ConvertError {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return body_error(&format!("Invalid JSON payload received. {}", strip_position(error)));
    };
    let try_body = |json: &str| serde_json::from_str::<InBody>(json).err();
    let try_content = |json: &str| serde_json::from_str::<InContent>(json).err();
    let try_part = |json: &str| serde_json::from_str::<InPart>(json).err();
    let Some((key, error)) = first_bad_field(&root, &try_body) else {
        return body_error(&format!("Invalid JSON payload received. {}", strip_position(error)));
    };
    let mut path = camel_case(&key);
    let mut error = error;
    if path == "contents"
        && let Some(list) = root.get(&key).and_then(Value::as_array)
        && let Some((i, content)) = list
            .iter()
            .enumerate()
            .find(|(_, c)| try_content(&c.to_string()).is_some())
    {
        path = format!("contents[{i}]");
        if let Some((key, e)) = first_bad_field(content, &try_content) {
            error = e;
            path = format!("{path}.{}", camel_case(&key));
            if key == "parts"
                && let Some(parts) = content.get("parts").and_then(Value::as_array)
                && let Some((j, part)) = parts
                    .iter()
                    .enumerate()
                    .find(|(_, p)| try_part(&p.to_string()).is_some())
            {
                path = format!("{path}[{j}]");
                if let Some((key, e)) = first_bad_field(part, &try_part) {
                    error = e;
                    path = format!("{path}.{}", camel_case(&key));
                }
            }
        }
    }
    ConvertError {
        message: format!("Invalid value at '{path}': {}.", strip_position(&error)),
        param: Some(path),
        code: Some("invalid_type"),
    }
}

/// The first field of `object` that `parse` refuses when given alone (`{"field": value}`); a value that is
/// not an object is refused as a whole, under the empty name.
fn first_bad_field(
    object: &Value,
    parse: &dyn Fn(&str) -> Option<serde_json::Error>,
) -> Option<(String, serde_json::Error)> {
    let Value::Object(map) = object else {
        return parse(&object.to_string()).map(|e| (String::new(), e));
    };
    map.iter().find_map(|(key, value)| {
        let alone = serde_json::json!({ key.as_str(): value }).to_string();
        parse(&alone).map(|e| (key.clone(), e))
    })
}

fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match (c, upper) {
            ('_', _) if !out.is_empty() => upper = true,
            (c, true) => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

/// serde's message without its " at line 1 column 9", which points into JSON the router built.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding for a Gemini upstream

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    contents: Vec<OutContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<OutSystem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<OutToolConfig>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct OutSystem<'a> {
    parts: Vec<OutText<'a>>,
}

#[derive(Serialize)]
struct OutText<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct OutContent<'a> {
    role: &'static str,
    parts: Vec<OutPart<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OutPart<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<OutBlob<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<OutFileData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<OutCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<OutResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutBlob<'a> {
    mime_type: Cow<'a, str>,
    data: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutFileData<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct OutCall<'a> {
    id: &'a str,
    name: String,
    args: Cow<'a, RawValue>,
}

#[derive(Serialize)]
struct OutResponse<'a> {
    id: &'a str,
    name: String,
    response: OutResult,
}

/// Gemini's documented convention for function results.
#[derive(Serialize)]
struct OutResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutTool<'a> {
    function_declarations: Vec<OutDeclaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutDeclaration<'a> {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<Cow<'a, RawValue>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutToolConfig {
    function_calling_config: OutCallingConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutCallingConfig {
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.response_mime_type.is_none()
            && self.thinking_config.is_none()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
}

/// Gemini accepts at most five stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;
/// What a function response says for a call whose result never came: Gemini requires one response per call.
const NO_RESULT: &str = "(no result: the call was interrupted)";
/// A custom (free-form) tool, declared as a function taking one string.
const CUSTOM_TOOL_PARAMETERS: &str =
    r#"{"type":"object","properties":{"input":{"type":"string"}},"required":["input"]}"#;
static CUSTOM_PARAMETERS: LazyLock<Box<RawValue>> =
    LazyLock::new(|| RawValue::from_string(CUSTOM_TOOL_PARAMETERS.to_owned()).expect("constant JSON"));
static EMPTY_ARGS: LazyLock<Box<RawValue>> =
    LazyLock::new(|| RawValue::from_string("{}".to_owned()).expect("constant JSON"));

/// Encodes `request` for a Gemini upstream. The model goes in the URL the caller builds
/// (`models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` when `request.stream`).
///
/// Thinking follows `options.thinking_mode` until Gemini has its own option: `budget` (the default) sends
/// `thinkingBudget`, which Gemini 2.5 and 3 both take; `adaptive` sends Gemini 3's `thinkingLevel`; `none`
/// sends nothing (reference §2.7). `model` is the upstream's name for the model, whose thinking limits
/// differ (Pro models cannot turn thinking off).
pub fn encode(request: &Request, model: &str, options: &ModelOptions) -> Result<Encoded, ConvertError> {
    let mut system: Vec<OutText> = request.instructions.iter().map(|t| OutText { text: t }).collect();
    let mut contents = Vec::with_capacity(request.messages.len());
    write_contents(&request.messages, &mut contents, &mut system)?;
    sign_active_loop(&mut contents);
    // Gemini refuses a request that ends with a model turn (a prefill).
    while contents.last().is_some_and(|c| c.role == "model") {
        contents.pop();
    }
    let declarations: Vec<OutDeclaration> = request.tools.iter().map(declare).collect();
    let tool_config = match declarations.is_empty() {
        true => None,
        false => request.tool_choice.as_ref().map(calling_config),
    };
    let tools = match declarations.is_empty() {
        true => Vec::new(),
        false => vec![OutTool {
            function_declarations: declarations,
        }],
    };
    let max_output_tokens = request
        .max_output_tokens
        .or(options.default_max_tokens.map(u64::from))
        .map(|n| match options.max_output_tokens {
            Some(cap) => n.min(u64::from(cap)),
            None => n,
        });
    let (response_mime_type, response_json_schema) = match &request.format {
        Some(OutputFormat::JsonObject) => (Some("application/json"), None),
        Some(OutputFormat::JsonSchema { schema, .. }) => (Some("application/json"), Some(&**schema)),
        Some(OutputFormat::Text) | None => (None, None),
    };
    let thinking_config = thinking(request, model, max_output_tokens, options.thinking_mode);
    let thinking_enabled = thinking_config
        .as_ref()
        .is_some_and(|c| c.include_thoughts == Some(true));
    let body = Body {
        contents,
        system_instruction: (!system.is_empty()).then_some(OutSystem { parts: system }),
        tools,
        tool_config,
        generation_config: GenerationConfig {
            temperature: request.temperature,
            top_p: request.top_p,
            top_k: request.top_k,
            max_output_tokens,
            stop_sequences: &request.stop[..request.stop.len().min(MAX_STOP_SEQUENCES)],
            response_mime_type,
            response_json_schema,
            thinking_config,
        },
    };
    let body = crate::protocol::json::to_vec(&body).expect("a Gemini request serialises");
    Ok(Encoded { body, thinking_enabled })
}

/// The effort as `thinkingConfig` (reference §2.7, Routes E/F). Thought summaries are asked for whenever
/// thinking is, so the client can be shown them. Budgets stay within what the model takes: Pro models
/// think 128 to 32768 tokens and cannot turn thinking off, the others at most 24576; and within three
/// quarters of the output cap, which thoughts count against.
fn thinking(request: &Request, model: &str, cap: Option<u64>, mode: ThinkingMode) -> Option<ThinkingConfig> {
    let effort = match &request.reasoning {
        ReasoningRequest::Unspecified => return None,
        ReasoningRequest::Disabled => None,
        ReasoningRequest::Effort(effort) => Some(effort.as_str()),
    };
    let config = |budget, level| ThinkingConfig {
        include_thoughts: effort.is_some().then_some(true),
        thinking_budget: budget,
        thinking_level: level,
    };
    match mode {
        ThinkingMode::None => None,
        ThinkingMode::Adaptive => Some(config(
            None,
            Some(match effort {
                None | Some("minimal") => "MINIMAL",
                Some("low") => "LOW",
                Some("medium") => "MEDIUM",
                Some(_) => "HIGH",
            }),
        )),
        ThinkingMode::Budget => {
            let budget = match (effort, request.reasoning_budget) {
                (None, _) => 0,
                (Some(_), Some(budget)) => budget,
                (Some("minimal"), None) => 512,
                (Some("low"), None) => 1024,
                (Some("medium"), None) => 8192,
                (Some(_), None) => 24576,
            };
            let (min, max) = match model.contains("-pro") {
                true => (128, 32768),
                false => (0, 24576),
            };
            // Gemini counts thoughts against `maxOutputTokens`: a budget as large as the cap could leave
            // no room for the answer, so thinking gets at most three quarters of it.
            let budget = match cap {
                Some(cap) => budget.min(cap * 3 / 4),
                None => budget,
            };
            Some(config(Some(budget.clamp(min, max)), None))
        }
    }
}

fn declare(tool: &Tool) -> OutDeclaration<'_> {
    let parameters_json_schema = match tool.kind {
        ToolKind::Custom => Some(Cow::Borrowed(&**CUSTOM_PARAMETERS)),
        ToolKind::Function => tool.parameters.as_deref().and_then(clean_schema),
    };
    OutDeclaration {
        name: flat_name(&tool.name, tool.namespace.as_deref()),
        description: tool.description.as_deref(),
        parameters_json_schema,
    }
}

/// A client's JSON Schema as `parametersJsonSchema` takes it (reference §2.10): no root `$schema`, a root
/// `type` (Vertex: "should be of type OBJECT"), and no schema at all for an object without properties
/// (Google: "properties: should be non-empty for OBJECT type"). Most schemas are sent as written.
fn clean_schema(schema: &RawValue) -> Option<Cow<'_, RawValue>> {
    #[derive(Deserialize)]
    struct Root<'a> {
        #[serde(rename = "$schema", borrow, default)]
        dialect: Option<&'a RawValue>,
        #[serde(rename = "type", borrow, default)]
        kind: Option<&'a RawValue>,
        #[serde(borrow, default)]
        properties: Option<&'a RawValue>,
    }
    let root: Root = serde_json::from_str(schema.get()).ok()?;
    let object = root.kind.is_none_or(|k| k.get() == r#""object""#);
    let no_properties = root
        .properties
        .is_none_or(|p| p.get().trim_start_matches('{').trim_start().starts_with('}'));
    if object && no_properties {
        return None;
    }
    if root.dialect.is_none() && root.kind.is_some() {
        return Some(Cow::Borrowed(schema));
    }
    let mut tree: serde_json::Map<String, Value> = serde_json::from_str(schema.get()).ok()?;
    tree.remove("$schema");
    if !tree.contains_key("type") {
        tree.insert("type".into(), "object".into());
    }
    serde_json::value::to_raw_value(&tree).ok().map(Cow::Owned)
}

fn calling_config(choice: &ToolChoice) -> OutToolConfig {
    let (mode, allowed_function_names) = match choice {
        ToolChoice::Auto => ("AUTO", Vec::new()),
        ToolChoice::None => ("NONE", Vec::new()),
        ToolChoice::Required => ("ANY", Vec::new()),
        ToolChoice::Named { name, namespace } => ("ANY", vec![flat_name(name, namespace.as_deref())]),
    };
    OutToolConfig {
        function_calling_config: OutCallingConfig {
            mode,
            allowed_function_names,
        },
    }
}

/// The conversation as Gemini contents (reference §2.8): system messages join the system instruction, each
/// model turn's calls are answered by one user content holding a response per call in the calls' order
/// (Gemini refuses any other count), and contents left without parts are left out.
fn write_contents<'a>(
    messages: &'a [Message],
    out: &mut Vec<OutContent<'a>>,
    system: &mut Vec<OutText<'a>>,
) -> Result<(), ConvertError> {
    let mut i = 0;
    while i < messages.len() {
        let message = &messages[i];
        i += 1;
        match message.role {
            Role::System => system.extend(texts(&message.parts)),
            Role::User => push_content(out, "user", user_parts(&message.parts)?),
            Role::Assistant => {
                let mut calls = Vec::new();
                push_content(out, "model", model_parts(message, &mut calls)?);
                if calls.is_empty() {
                    continue;
                }
                // What else the answering messages hold follows the responses in the same user content.
                let following = hub::answering_messages(messages, i);
                let mut parts: Vec<OutPart> = calls
                    .iter()
                    .map(|(id, name, base)| function_response(base, name.clone(), hub::result_of(following, id)))
                    .collect();
                for later in following {
                    match later.role {
                        Role::System => system.extend(texts(&later.parts)),
                        _ => parts.extend(user_parts(&later.parts)?),
                    }
                }
                // Media the tools returned go after the responses: Gemini 2.5 takes no parts inside them.
                for (id, _, _) in &calls {
                    let media = following.iter().flat_map(|m| &m.parts).filter_map(|p| match p {
                        Part::ToolResult(r) if r.call_id == *id => Some(&r.content),
                        _ => None,
                    });
                    for part in media.flatten() {
                        match part {
                            Part::Image { url, .. } | Part::File { data_url: url, .. } => parts.push(media_part(url)?),
                            _ => {}
                        }
                    }
                }
                push_content(out, "user", parts);
                i += following.len();
            }
        }
    }
    Ok(())
}

fn push_content<'a>(out: &mut Vec<OutContent<'a>>, role: &'static str, parts: Vec<OutPart<'a>>) {
    if !parts.is_empty() {
        out.push(OutContent { role, parts });
    }
}

fn texts(parts: &[Part]) -> impl Iterator<Item = OutText<'_>> {
    parts.iter().filter_map(|p| match p {
        Part::Text(t) | Part::Refusal(t) if !t.trim().is_empty() => Some(OutText { text: t }),
        _ => None,
    })
}

fn text_part(text: &str) -> OutPart<'_> {
    OutPart {
        text: Some(Cow::Borrowed(text)),
        ..OutPart::default()
    }
}

/// A user message's parts; tool results in it answer no call of the turn before (the other protocols'
/// orphans), which Gemini would refuse, so they are left out.
fn user_parts(parts: &[Part]) -> Result<Vec<OutPart<'_>>, ConvertError> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            // Gemini refuses empty text parts ("required oneof field 'data'").
            Part::Text(t) | Part::Refusal(t) if !t.is_empty() => out.push(text_part(t)),
            Part::Image { url, .. } | Part::File { data_url: url, .. } => out.push(media_part(url)?),
            _ => {}
        }
    }
    Ok(out)
}

/// An image or file, by its URL, as `inlineData` (a `data:` URL) or `fileData` (an http(s) image URL).
fn media_part(url: &str) -> Result<OutPart<'_>, ConvertError> {
    if let Some(data) = DataUrl::parse(url) {
        if !data.base64 {
            return Err(ConvertError::invalid(
                "Only base64 data URLs can be sent to this model.",
                "image_url",
            ));
        }
        return Ok(OutPart {
            inline_data: Some(OutBlob {
                mime_type: Cow::Owned(data.media_type),
                data: Cow::Borrowed(data.data),
            }),
            ..OutPart::default()
        });
    }
    match image_mime_for(url) {
        Some(mime_type) if url.starts_with("https://") || url.starts_with("http://") => Ok(OutPart {
            file_data: Some(OutFileData {
                mime_type,
                file_uri: url,
            }),
            ..OutPart::default()
        }),
        _ => Err(ConvertError::invalid(
            "This model takes image URLs only with a png, jpeg, gif or webp extension; send the image inline.",
            "image_url",
        )),
    }
}

/// A model turn's parts. Reasoning text is not sent back (Gemini needs its signature, not its text); a
/// Gemini signature found with it goes on the next part, where Gemini put it. Each call's id is split into
/// the base id and the signature it carried (see `thought`); `calls` gets (hub id, name, base id).
fn model_parts<'a>(
    message: &'a Message,
    calls: &mut Vec<(&'a str, String, &'a str)>,
) -> Result<Vec<OutPart<'a>>, ConvertError> {
    let mut out: Vec<OutPart> = Vec::with_capacity(message.parts.len());
    let mut pending: Option<&str> = None;
    for part in &message.parts {
        let mut written = match part {
            Part::Reasoning(Reasoning {
                opaque: Some(Opaque::Gemini { signature }),
                ..
            }) => {
                pending = Some(signature);
                continue;
            }
            Part::Text(t) | Part::Refusal(t) if !t.is_empty() => text_part(t),
            Part::Image { url, .. } | Part::File { data_url: url, .. } => media_part(url)?,
            Part::ToolCall(call) => {
                let (base, carried) = split_call_id(&call.id);
                let name = flat_name(&call.name, call.namespace.as_deref());
                calls.push((&call.id, name.clone(), base));
                OutPart {
                    function_call: Some(OutCall {
                        id: base,
                        name,
                        args: call_args(call),
                    }),
                    thought_signature: carried.map(Cow::Owned),
                    ..OutPart::default()
                }
            }
            _ => continue,
        };
        if written.thought_signature.is_none() {
            written.thought_signature = pending.take().map(Cow::Borrowed);
        }
        pending = None;
        out.push(written);
    }
    // A signature after the last part (Gemini's streams often end on one) goes back on that part.
    if let (Some(signature), Some(last)) = (pending, out.last_mut())
        && last.thought_signature.is_none()
    {
        last.thought_signature = Some(Cow::Borrowed(signature));
    }
    Ok(out)
}

/// A call's arguments as the `args` object: argument text that is an object already goes as written.
fn call_args(call: &ToolCall) -> Cow<'_, RawValue> {
    if call.kind == ToolKind::Custom {
        let args = serde_json::json!({ "input": call.arguments });
        return Cow::Owned(serde_json::value::to_raw_value(&args).expect("JSON serialises"));
    }
    if call.arguments.trim().is_empty() {
        return Cow::Borrowed(&**EMPTY_ARGS);
    }
    match serde_json::from_str::<&RawValue>(&call.arguments) {
        Ok(raw) if raw.get().starts_with('{') => Cow::Borrowed(raw),
        _ => Cow::Owned(
            serde_json::value::to_raw_value(&parse_tool_arguments(&call.arguments)).expect("JSON serialises"),
        ),
    }
}

fn function_response<'a>(base: &'a str, name: String, result: Option<&ToolResult>) -> OutPart<'a> {
    let response = match result {
        None => OutResult {
            output: None,
            error: Some(NO_RESULT.to_owned()),
        },
        Some(result) => {
            let text: Vec<&str> = result
                .content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) | Part::Refusal(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            let text = text.join("\n");
            match result.is_error {
                true => OutResult {
                    output: None,
                    error: Some(text),
                },
                false => OutResult {
                    output: Some(text),
                    error: None,
                },
            }
        }
    };
    OutPart {
        function_response: Some(OutResponse {
            id: base,
            name,
            response,
        }),
        ..OutPart::default()
    }
}

/// The fix-up a Gemini client's body needs before a Gemini upstream (else it passes untouched): envelopes
/// the router sealed when a non-Gemini deployment of the group answered an earlier turn (reference §3.4)
/// are not Gemini's, and Gemini refuses them. Each becomes the sentinel on a call, or goes, on other
/// parts. `None` when the body has none, found by a byte scan without parsing.
pub fn same_protocol_fixups(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    static ENVELOPE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(super::thought::ENVELOPE_BASE64_PREFIX));
    ENVELOPE.find(body)?;
    let mut map: serde_json::Map<String, Value> = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    let contents = map.get_mut("contents").and_then(Value::as_array_mut)?;
    let parts = contents
        .iter_mut()
        .filter_map(|c| c.get_mut("parts")?.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut);
    for part in parts {
        let call = part.contains_key("functionCall") || part.contains_key("function_call");
        for key in ["thoughtSignature", "thought_signature"] {
            let sealed = part
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|s| open_reasoning(s).is_some());
            if !sealed {
                continue;
            }
            changed = true;
            match call {
                true => part.insert(key.to_owned(), Value::String(SENTINEL.to_owned())),
                false => part.remove(key),
            };
        }
    }
    changed.then_some(map)
}

/// Gemini 3 checks the signature of the first call of every model turn in the active loop (the turns after
/// the last user turn with words of its own). A call that lost its signature (history from another model,
/// ids the client rewrote) gets the sentinel, as Google's own CLI does (reference §3.1, §3.3).
fn sign_active_loop(contents: &mut [OutContent<'_>]) {
    let start = contents
        .iter()
        .rposition(|c| {
            c.role == "user"
                && c.parts.iter().all(|p| p.function_response.is_none())
                && c.parts
                    .iter()
                    .any(|p| p.text.is_some() || p.inline_data.is_some() || p.file_data.is_some())
        })
        .map_or(0, |i| i + 1);
    for content in &mut contents[start..] {
        if content.role != "model" {
            continue;
        }
        if let Some(first) = content.parts.iter_mut().find(|p| p.function_call.is_some())
            && first.thought_signature.is_none()
        {
            first.thought_signature = Some(Cow::Borrowed(SENTINEL));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::convert::test_support::tool_call;

    /// A Gemini CLI 0.61 follow-up turn as recorded (reference §10.2), trimmed: session context and the
    /// prompt, a model turn with a signed call, its response, tools as `parametersJsonSchema`, and the CLI's
    /// generation config.
    const CLI_TURN: &str = r#"{"contents":[
        {"role":"user","parts":[{"text":"<session_context>Linux</session_context>"},{"text":"Read the file hello.txt and tell me what it says"}]},
        {"role":"model","parts":[{"text":"Reading it."},{"functionCall":{"id":"call_up_0001","args":{"file_path":"hello.txt"},"name":"read_file"},"thoughtSignature":"c2lnbmF0dXJl"}]},
        {"role":"user","parts":[{"functionResponse":{"name":"read_file","response":{"output":"Hello, world"},"id":"call_up_0001"}}]}],
        "systemInstruction":{"role":"user","parts":[{"text":"You are Gemini CLI."}]},
        "tools":[{"functionDeclarations":[{"name":"read_file","description":"Reads a file","parametersJsonSchema":{"type":"object","properties":{"file_path":{"type":"string","description":"Path"}},"required":["file_path"]}}]}],
        "generationConfig":{"temperature":1,"topP":0.95,"topK":64,"thinkingConfig":{"includeThoughts":true,"thinkingLevel":"HIGH"}}}"#;

    /// The hand-written read of the body gives what serde gives, or leaves the body to serde: for typical
    /// bodies (which it must take), for edge cases, and for every prefix and many one-byte changes of them.
    #[test]
    fn the_hand_written_read_agrees_with_serde() {
        let typical: &[&str] = &[
            CLI_TURN,
            include_str!("../../../bench/requests/gemini.json"),
            r#"{"contents":[{"role":"user","parts":[{"text":"Hi \"there\" \u00e9"},{"inline_data":{"mime_type":"image/png","data":"iVBORw0K"}}]}],
                "system_instruction":{"parts":[{"text":"Be brief."}]},
                "generation_config":{"max_output_tokens":64,"stop_sequences":["END"],"thinking_config":{"include_thoughts":false,"thinking_budget":-1},
                  "response_mime_type":"application/json","response_json_schema":{"type":"object"}},
                "tool_config":{"function_calling_config":{"mode":"ANY","allowed_function_names":["f"]}},
                "tools":[{"function_declarations":[{"name":"f","parameters":{"type":"OBJECT"}}]},{"googleSearch":{}}],
                "safetySettings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_NONE"}]}"#,
            r#"{"contents":[{"role":"user","parts":[{"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/a.jpg"}},
                {"executableCode":{"language":"PYTHON","code":"print(1)"}},{"codeExecutionResult":{"output":"1"}}]}],
                "generationConfig":{"candidateCount":1,"responseModalities":["TEXT"],"temperature":0.2}}"#,
        ];
        let edge: &[&str] = &[
            r#"{"contents":[],"contents":[]}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":"a"}]}],"systemInstruction":{"parts":[]},"system_instruction":null}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":"a","text":"b"}]}]}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":5}]}]}"#,
            r#"{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"a","mime_type":"b"}}]}]}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":"a"}]}],"generationConfig":{"maxOutputTokens":1.5}}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":"a"}]}],"generationConfig":{"maxOutputTokens":-3,"topK":40.5}}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":"a"}]}],"cachedContent":"cachedContents/1"}"#,
            r#"{"contents":[{"role":"tool","parts":[{"text":"a"}]}]}"#,
            r#"{"contents":[["user",[]]]}"#,
            r#"{"contents":"hello"}"#,
            r#"{"contents":[{"role":"user","parts":[{"text":"a"}]}]} x"#,
            r#"{"contents":[{"role":"user","parts":[{"functionCall":{"name":"f","args":[1]}}]}]}"#,
            r#"{"\u0063ontents":[{"role":"user","parts":[{"text":"a"}]}]}"#,
        ];
        let both = |body: &[u8]| -> Option<(String, String)> {
            let fast = std::str::from_utf8(body).ok().and_then(read_body)?;
            let slow = crate::protocol::json::parse::<InBody>(body).map_err(|e| locate(body, &e));
            Some((
                format!("{:?}", decode_body(fast)),
                format!("{:?}", slow.and_then(decode_body)),
            ))
        };
        crate::protocol::json::check_agreement(typical, edge, both);
    }

    fn decoded(body: &str) -> (Request, GeminiFacts) {
        decode(body.as_bytes()).unwrap()
    }

    fn refused(body: &str) -> ConvertError {
        decode(body.as_bytes()).unwrap_err()
    }

    fn encoded(request: &Request) -> Value {
        serde_json::from_slice(
            &encode(request, "gemini-3-pro-preview", &ModelOptions::default())
                .unwrap()
                .body,
        )
        .unwrap()
    }

    #[test]
    fn a_recorded_cli_turn_becomes_the_hub_request() {
        let (request, facts) = decoded(CLI_TURN);
        assert_eq!(request.instructions, ["You are Gemini CLI."]);
        assert_eq!(request.messages.len(), 3);
        assert_eq!(request.messages[0].role, Role::User);
        assert!(matches!(&request.messages[0].parts[1], Part::Text(t) if t.starts_with("Read the file")));
        assert_eq!(request.messages[1].role, Role::Assistant);
        let Part::ToolCall(call) = &request.messages[1].parts[1] else {
            panic!("a call")
        };
        assert_eq!(
            (call.id.as_str(), call.name.as_str(), call.arguments.as_str()),
            ("call_up_0001", "read_file", r#"{"file_path":"hello.txt"}"#)
        );
        let Part::ToolResult(result) = &request.messages[2].parts[0] else {
            panic!("a result")
        };
        assert_eq!(result.call_id, "call_up_0001");
        assert!(matches!(&result.content[..], [Part::Text(t)] if t == "Hello, world"));
        assert!(!result.is_error);
        assert_eq!(request.tools.len(), 1);
        assert_eq!(
            request.tools[0].parameters.as_deref().unwrap().get(),
            r#"{"type":"object","properties":{"file_path":{"type":"string","description":"Path"}},"required":["file_path"]}"#,
            "the schema is kept as written"
        );
        assert_eq!(
            (request.temperature, request.top_p, request.top_k),
            (Some(1.0), Some(0.95), Some(64))
        );
        assert_eq!(request.reasoning, ReasoningRequest::Effort("high".into()));
        assert!(facts.include_thoughts);
        assert!(!request.stream, "the path says whether to stream");
    }

    #[test]
    fn snake_case_names_are_read_like_camel_case() {
        let (request, facts) = decoded(
            r#"{"contents":[{"role":"user","parts":[{"text":"hi"},{"inline_data":{"mime_type":"image/png","data":"iVBORw0KGgo="}}]}],
            "system_instruction":{"parts":[{"text":"S"}]},
            "tools":[{"functionDeclarations":[{"name":"f","parameters_json_schema":{"type":"object","properties":{"a":{}}}},{"name":"g"}]}],
            "tool_config":{"function_calling_config":{"mode":"any","allowed_function_names":["f"]}},
            "generation_config":{"max_output_tokens":100,"stop_sequences":["X"],"response_mime_type":"application/json",
              "thinking_config":{"include_thoughts":false,"thinking_budget":4096}}}"#,
        );
        assert_eq!(request.instructions, ["S"]);
        assert!(
            matches!(&request.messages[0].parts[1], Part::Image { url, .. } if url == "data:image/png;base64,iVBORw0KGgo=")
        );
        assert_eq!(request.tools.len(), 2);
        assert!(request.tools[0].parameters.is_some() && request.tools[1].parameters.is_none());
        assert_eq!(
            request.tool_choice,
            Some(ToolChoice::Named {
                name: "f".into(),
                namespace: None
            }),
            "lower-case enums are read"
        );
        assert_eq!(request.max_output_tokens, Some(100));
        assert_eq!(request.stop, ["X"]);
        assert!(matches!(request.format, Some(OutputFormat::JsonObject)));
        assert_eq!(request.reasoning, ReasoningRequest::Effort("medium".into()));
        assert_eq!(request.reasoning_budget, Some(4096));
        assert!(!facts.include_thoughts);
    }

    #[test]
    fn calls_without_ids_get_minted_ids_and_responses_pair_by_name_then_order() {
        let (request, _) = decoded(
            r#"{"contents":[{"role":"user","parts":[{"text":"go"}]},
            {"role":"model","parts":[{"functionCall":{"name":"ls","args":{"p":"a"}}},{"functionCall":{"name":"cat"}},{"functionCall":{"name":"ls","args":{"p":"b"}}}]},
            {"role":"user","parts":[{"functionResponse":{"name":"cat","response":{"error":"no such file"}}},
              {"functionResponse":{"name":"ls","response":{"output":"a.txt"}}},{"functionResponse":{"name":"ls","response":{"files":["b"]}}}]}]}"#,
        );
        let ids: Vec<&str> = request.messages[1]
            .parts
            .iter()
            .map(|p| match p {
                Part::ToolCall(c) => c.id.as_str(),
                _ => panic!("calls only"),
            })
            .collect();
        assert_eq!(ids, [mint_call_id("1:0"), mint_call_id("1:1"), mint_call_id("1:2")]);
        let Part::ToolCall(cat) = &request.messages[1].parts[1] else {
            unreachable!()
        };
        assert_eq!(cat.arguments, "{}", "missing args are an empty object");
        let results: Vec<(&str, String, bool)> = request.messages[2]
            .parts
            .iter()
            .map(|p| match p {
                Part::ToolResult(r) => match &r.content[..] {
                    [Part::Text(t)] => (r.call_id.as_str(), t.clone(), r.is_error),
                    _ => panic!("text"),
                },
                _ => panic!("results only"),
            })
            .collect();
        assert_eq!(
            results,
            [
                (ids[1], "no such file".to_owned(), true),
                (ids[0], "a.txt".to_owned(), false),
                (ids[2], r#"{"files":["b"]}"#.to_owned(), false),
            ]
        );
        // Deterministic: the same history gets the same ids.
        let (again, _) = decoded(
            r#"{"contents":[{"role":"user","parts":[{"text":"go"}]},{"role":"model","parts":[{"functionCall":{"name":"ls","args":{"p":"a"}}}]}]}"#,
        );
        assert!(matches!(&again.messages[1].parts[0], Part::ToolCall(c) if c.id == ids[0]));
    }

    #[test]
    fn media_parts_become_hub_media_or_are_refused_by_name() {
        let (request, _) = decoded(
            r#"{"contents":[{"parts":[
            {"inlineData":{"mimeType":"image/jpeg","data":"a-b_cw"}},
            {"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}},
            {"inlineData":{"mimeType":"text/plain","data":"aGVsbG8="}},
            {"fileData":{"fileUri":"https://example.com/cat.png"}},
            {"text":""},
            {"executableCode":{"language":"PYTHON","code":"print(1)"}},
            {"codeExecutionResult":{"outcome":"OUTCOME_OK","output":"1"}}]}]}"#,
        );
        let parts = &request.messages[0].parts;
        assert!(
            matches!(&parts[0], Part::Image { url, .. } if url == "data:image/jpeg;base64,a+b/cw=="),
            "URL-safe data becomes standard"
        );
        assert!(matches!(&parts[1], Part::File { data_url, .. } if data_url == "data:application/pdf;base64,JVBERi0="));
        assert!(matches!(&parts[2], Part::Text(t) if t == "hello"));
        assert!(matches!(&parts[3], Part::Image { url, .. } if url == "https://example.com/cat.png"));
        assert!(
            matches!(&parts[4], Part::Text(t) if t == "```python\nprint(1)\n```"),
            "empty text is skipped"
        );
        assert!(matches!(&parts[5], Part::Text(t) if t == "```\n1\n```"));
        assert_eq!(parts.len(), 6);

        let files_api = refused(
            r#"{"contents":[{"parts":[{"text":"x"},{"fileData":{"mimeType":"video/mp4","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]}"#,
        );
        assert_eq!(
            files_api.param.as_deref(),
            Some("contents[0].parts[1].fileData.fileUri")
        );
        let audio = refused(r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"audio/wav","data":"AAAA"}}]}]}"#);
        assert_eq!(audio.param.as_deref(), Some("contents[0].parts[0].inlineData.mimeType"));
    }

    #[test]
    fn bad_input_is_refused_with_the_field_named() {
        let cases = [
            (
                r#"{"contents":[{"role":"user","parts":[{"text":3}]}]}"#,
                Some("contents[0].parts[0].text"),
            ),
            (
                r#"{"contents":[{"role":"user","parts":[{"text":"a"}]},{"role":"model","parts":[{"function_call":{"name":5}}]}]}"#,
                Some("contents[1].parts[0].functionCall"),
            ),
            (
                r#"{"contents":[{"role":"user","parts":{"text":"a"}}]}"#,
                Some("contents[0].parts"),
            ),
            (r#"{"contents":"hello"}"#, Some("contents")),
            (r#"{"contents":[]}"#, Some("contents")),
            (r#"{}"#, Some("contents")),
            (
                r#"{"contents":[{"role":"system","parts":[{"text":"a"}]}]}"#,
                Some("contents[0].role"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"generationConfig":{"temperature":"hot"}}"#,
                Some("generationConfig"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"generationConfig":{"candidateCount":2}}"#,
                Some("generationConfig.candidateCount"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"generationConfig":{"responseModalities":["TEXT","IMAGE"]}}"#,
                Some("generationConfig.responseModalities"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"generationConfig":{"thinkingConfig":{"thinkingBudget":1024,"thinkingLevel":"LOW"}}}"#,
                Some("generationConfig.thinkingConfig.thinkingLevel"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"cachedContent":"cachedContents/abc"}"#,
                Some("cachedContent"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"tools":[{"functionDeclarations":[{"description":"no name"}]}]}"#,
                Some("tools[0].functionDeclarations[0].name"),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"a"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":"x"}]}]}"#,
                Some("tools[0].functionDeclarations[0].parameters"),
            ),
            (r#"[{"contents":[]}]"#, None),
            (r#"{"contents":[{"parts":[{"text":"a"}]}"#, None),
            ("", None),
        ];
        for (body, param) in cases {
            let error = refused(body);
            assert_eq!(error.param.as_deref(), param, "{body}: {}", error.message);
            assert!(!error.message.is_empty());
            if let Some(param) = param {
                assert!(
                    error.message.contains(param) || error.code != Some("invalid_type"),
                    "{}",
                    error.message
                );
            }
        }
    }

    #[test]
    fn openapi_schemas_become_json_schema() {
        let (request, _) = decoded(
            r#"{"contents":[{"parts":[{"text":"a"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":
            {"type":"OBJECT","properties":{"n":{"type":"INTEGER","nullable":true,"example":3},"tags":{"type":"ARRAY","items":{"type":"STRING","enum":["OBJECT"]},"maxItems":"5"}},"propertyOrdering":["n","tags"],"required":["n"]}}]}]}"#,
        );
        assert_eq!(
            request.tools[0].parameters.as_deref().unwrap().get(),
            r#"{"type":"object","properties":{"n":{"type":["integer","null"]},"tags":{"type":"array","items":{"type":"string","enum":["OBJECT"]},"maxItems":5}},"required":["n"]}"#
        );
    }

    /// A hub conversation with what a Gemini upstream must get right: mid-conversation system text, a turn
    /// with a signed call (its signature carried in the id) and an unsigned one, a missing result, an orphan
    /// result, media, and a trailing prefill.
    fn hub_conversation() -> Request {
        let signed = super::super::thought::carry_signature("call_a", Some("c2lnbmF0dXJl"));
        let result = |id: &str, text: &str, is_error| {
            Part::ToolResult(ToolResult {
                call_id: id.into(),
                content: vec![Part::Text(text.into())],
                is_error,
            })
        };
        Request {
            instructions: vec!["Be brief.".into()],
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![
                        Part::Text("Look".into()),
                        Part::Image {
                            url: "data:image/png;base64,iVBORw0KGgo=".into(),
                            detail: None,
                        },
                        Part::Text(String::new()),
                    ],
                },
                Message {
                    role: Role::System,
                    parts: vec![Part::Text("Use tools.".into())],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        Part::Reasoning(Reasoning {
                            text: "Hm.".into(),
                            opaque: None,
                        }),
                        tool_call(&signed, "ls", r#"{"path": "."}"#),
                        tool_call("call_b", "cat", "not json"),
                    ],
                },
                Message {
                    role: Role::User,
                    parts: vec![result(&signed, "a.txt", false), result("call_zzz", "orphan", false)],
                },
                Message {
                    role: Role::User,
                    parts: vec![Part::Text("Thanks".into())],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![Part::Text("Sure".into())],
                },
            ],
            tools: vec![Tool {
                name: "ls".into(),
                namespace: None,
                description: Some("List".into()),
                kind: ToolKind::Function,
                parameters: Some(RawValue::from_string(r#"{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"path":{"type":"string"}}}"#.into()).unwrap()),
                strict: None,
            }, Tool {
                name: "cat".into(),
                namespace: None,
                description: None,
                kind: ToolKind::Function,
                parameters: Some(RawValue::from_string(r#"{"type":"object","properties":{}}"#.into()).unwrap()),
                strict: Some(true),
            }],
            tool_choice: Some(ToolChoice::Named {
                name: "ls".into(),
                namespace: None,
            }),
            max_output_tokens: Some(9000),
            temperature: Some(0.5),
            stop: (1..=6).map(|i| i.to_string()).collect(),
            reasoning: ReasoningRequest::Effort("high".into()),
            format: Some(OutputFormat::JsonSchema {
                name: "x".into(),
                schema: RawValue::from_string(r#"{"type":"object"}"#.into()).unwrap(),
                strict: Some(true),
                description: None,
            }),
            stream: true,
            user: Some("u".into()),
            ..Request::default()
        }
    }

    #[test]
    fn a_hub_request_is_written_as_gemini_wants_it() {
        let options = ModelOptions {
            max_output_tokens: Some(8192),
            ..ModelOptions::default()
        };
        let encoded = encode(&hub_conversation(), "gemini-3-pro-preview", &options).unwrap();
        assert!(encoded.thinking_enabled);
        let body = String::from_utf8(encoded.body).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"contents":["#,
                r#"{"role":"user","parts":[{"text":"Look"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]},"#,
                r#"{"role":"model","parts":[{"functionCall":{"id":"call_a","name":"ls","args":{"path": "."}},"thoughtSignature":"c2lnbmF0dXJl"},"#,
                r#"{"functionCall":{"id":"call_b","name":"cat","args":{"_raw_arguments":"not json"}}}]},"#,
                r#"{"role":"user","parts":[{"functionResponse":{"id":"call_a","name":"ls","response":{"output":"a.txt"}}},"#,
                r#"{"functionResponse":{"id":"call_b","name":"cat","response":{"error":"(no result: the call was interrupted)"}}},"#,
                r#"{"text":"Thanks"}]}],"#,
                r#""systemInstruction":{"parts":[{"text":"Be brief."},{"text":"Use tools."}]},"#,
                r#""tools":[{"functionDeclarations":[{"name":"ls","description":"List","parametersJsonSchema":{"properties":{"path":{"type":"string"}},"type":"object"}},{"name":"cat"}]}],"#,
                r#""toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["ls"]}},"#,
                r#""generationConfig":{"temperature":0.5,"maxOutputTokens":8192,"stopSequences":["1","2","3","4","5"],"#,
                r#""responseMimeType":"application/json","responseJsonSchema":{"type":"object"},"#,
                r#""thinkingConfig":{"includeThoughts":true,"thinkingBudget":6144}}}"#
            )
        );
        assert!(!body.contains("\"model\":"), "the model goes in the URL");
    }

    #[test]
    fn unsigned_calls_of_the_active_loop_get_the_sentinel() {
        let mut request = hub_conversation();
        // Cut after the results: the model turn is in the active loop, since no user words follow it.
        request.messages.truncate(4);
        request.messages[2].parts[1] = tool_call("call_plain", "ls", "{}");
        request.messages[3].parts[0] = Part::ToolResult(ToolResult {
            call_id: "call_plain".into(),
            content: vec![Part::Text("ok".into())],
            is_error: false,
        });
        let body = encoded(&request);
        let model = &body["contents"][1];
        assert_eq!(model["role"], "model");
        assert_eq!(model["parts"][0]["thoughtSignature"], SENTINEL);
        assert!(
            model["parts"][1].get("thoughtSignature").is_none(),
            "only the first call is checked"
        );
        // Before the last user words, a turn is out of the loop and left alone. (Words that share the user
        // content of function responses are part of the loop.)
        let mut request = hub_conversation();
        request.messages[2].parts[1] = tool_call("call_plain", "ls", "{}");
        request.messages.push(Message {
            role: Role::User,
            parts: vec![Part::Text("Next".into())],
        });
        let body = encoded(&request);
        assert!(body["contents"][1]["parts"][0].get("thoughtSignature").is_none());
    }

    #[test]
    fn gemini_reasoning_signatures_go_back_where_gemini_put_them_and_others_never() {
        let anthropic = Opaque::Anthropic {
            block: RawValue::from_string(r#"{"type":"thinking","thinking":"x","signature":"s"}"#.into()).unwrap(),
        };
        let reasoning = |opaque| {
            Part::Reasoning(Reasoning {
                text: "Thinking".into(),
                opaque: Some(opaque),
            })
        };
        let request = Request {
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![Part::Text("hi".into())],
                },
                Message {
                    role: Role::Assistant,
                    parts: vec![
                        reasoning(anthropic),
                        Part::Text("One".into()),
                        reasoning(Opaque::Gemini {
                            signature: "Z2VtaW5p".into(),
                        }),
                        Part::Text("Two".into()),
                        reasoning(Opaque::Gemini {
                            signature: "bGFzdA==".into(),
                        }),
                    ],
                },
                Message {
                    role: Role::User,
                    parts: vec![Part::Text("more".into())],
                },
            ],
            ..Request::default()
        };
        assert_eq!(
            encoded(&request)["contents"][1],
            json!({"role":"model","parts":[{"text":"One"},{"text":"Two","thoughtSignature":"Z2VtaW5p"}]}),
            "thought text is not replayed; a signature after the last part is dropped when that part has one"
        );
    }

    /// Reference §3.4, the way back: reasoning the router sealed on a call goes to the upstream that made
    /// it (thinking blocks first in the turn, the shown thoughts replaced by them), and never to Gemini.
    #[test]
    fn sealed_reasoning_comes_back_into_its_turn_and_never_reaches_gemini() {
        use base64::Engine;
        let block = r#"{"type":"thinking","thinking":"Plan","signature":"EqQB"}"#;
        let envelope = super::super::thought::seal_reasoning([&Reasoning {
            text: "Plan".into(),
            opaque: Some(Opaque::Anthropic {
                block: RawValue::from_string(block.into()).unwrap(),
            }),
        }])
        .unwrap();
        // The Python SDK replays bytes in the URL-safe alphabet; both spellings open.
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(super::super::thought::decode_base64(&envelope).unwrap());
        for signature in [&envelope, &url_safe] {
            let body = json!({"contents":[
                {"role":"user","parts":[{"text":"ls?"}]},
                {"role":"model","parts":[{"text":"Plan","thought":true},{"text":"Listing."},
                    {"functionCall":{"id":"c1","name":"ls","args":{}},"thoughtSignature":signature}]},
                {"role":"user","parts":[{"functionResponse":{"id":"c1","name":"ls","response":{"output":"a"}}}]}]});
            let (request, _) = decoded(&body.to_string());
            let turn = &request.messages[1];
            assert!(
                matches!(&turn.parts[..], [Part::Reasoning(r), Part::Text(t), Part::ToolCall(c)]
                    if r.text == "Plan" && r.opaque.is_some() && t == "Listing." && c.id == "c1"),
                "{:?}",
                turn.parts
            );
            let anthropic =
                crate::protocol::messages::request::encode(&request, "claude", &ModelOptions::default()).unwrap();
            let anthropic: Value = serde_json::from_slice(&anthropic.body).unwrap();
            assert_eq!(
                anthropic["messages"][1]["content"][0],
                serde_json::from_str::<Value>(block).unwrap()
            );

            // The same body to a Gemini deployment of the group: the envelope becomes the sentinel.
            let fixed = same_protocol_fixups(body.to_string().as_bytes()).unwrap();
            let call = &fixed["contents"][1]["parts"][2];
            assert_eq!(call["thoughtSignature"], SENTINEL);
            assert_eq!(call["functionCall"]["id"], "c1");
        }
        // A body with only Gemini's own signatures passes untouched.
        let own = json!({"contents":[{"role":"model","parts":[{"functionCall":{"name":"ls","args":{}},"thoughtSignature":"c2ln"}]}]});
        assert!(same_protocol_fixups(own.to_string().as_bytes()).is_none());
    }

    #[test]
    fn thinking_follows_the_deployments_mode() {
        let on = |model: &'static str| {
            move |reasoning, budget, mode| {
                let request = Request {
                    messages: vec![Message {
                        role: Role::User,
                        parts: vec![Part::Text("hi".into())],
                    }],
                    reasoning,
                    reasoning_budget: budget,
                    ..Request::default()
                };
                let options = ModelOptions {
                    thinking_mode: mode,
                    ..ModelOptions::default()
                };
                let body: Value = serde_json::from_slice(&encode(&request, model, &options).unwrap().body).unwrap();
                body["generationConfig"].get("thinkingConfig").cloned()
            }
        };
        let with = on("gemini-2.5-flash");
        let effort = |e: &str| ReasoningRequest::Effort(e.into());
        // Pro models cannot turn thinking off (128 is their least), and take up to 32768.
        let pro = on("gemini-2.5-pro");
        assert_eq!(
            pro(ReasoningRequest::Disabled, None, ThinkingMode::Budget),
            Some(json!({"thinkingBudget":128}))
        );
        assert_eq!(
            pro(effort("high"), Some(60000), ThinkingMode::Budget),
            Some(json!({"includeThoughts":true,"thinkingBudget":32768}))
        );
        assert_eq!(
            with(effort("high"), Some(60000), ThinkingMode::Budget),
            Some(json!({"includeThoughts":true,"thinkingBudget":24576}))
        );
        // Thoughts count against the output cap: they get at most three quarters of it.
        let capped = Request {
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::Text("hi".into())],
            }],
            reasoning: effort("high"),
            max_output_tokens: Some(8192),
            ..Request::default()
        };
        let body: Value = serde_json::from_slice(
            &encode(&capped, "gemini-2.5-flash", &ModelOptions::default())
                .unwrap()
                .body,
        )
        .unwrap();
        assert_eq!(body["generationConfig"]["thinkingConfig"]["thinkingBudget"], 6144);
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 8192);
        assert_eq!(with(ReasoningRequest::Unspecified, None, ThinkingMode::Budget), None);
        assert_eq!(
            with(ReasoningRequest::Disabled, None, ThinkingMode::Budget),
            Some(json!({"thinkingBudget":0}))
        );
        assert_eq!(
            with(effort("low"), None, ThinkingMode::Budget),
            Some(json!({"includeThoughts":true,"thinkingBudget":1024}))
        );
        assert_eq!(
            with(effort("high"), Some(3000), ThinkingMode::Budget),
            Some(json!({"includeThoughts":true,"thinkingBudget":3000}))
        );
        assert_eq!(
            with(effort("medium"), None, ThinkingMode::Adaptive),
            Some(json!({"includeThoughts":true,"thinkingLevel":"MEDIUM"}))
        );
        assert_eq!(
            with(ReasoningRequest::Disabled, None, ThinkingMode::Adaptive),
            Some(json!({"thinkingLevel":"MINIMAL"}))
        );
        assert_eq!(
            with(effort("xhigh"), None, ThinkingMode::Adaptive),
            Some(json!({"includeThoughts":true,"thinkingLevel":"HIGH"}))
        );
        assert_eq!(with(effort("high"), None, ThinkingMode::None), None);
    }

    #[test]
    fn a_cli_request_round_trips_through_the_hub() {
        let (request, _) = decoded(CLI_TURN);
        let body = encoded(&request);
        let mut want: Value = serde_json::from_str(CLI_TURN).unwrap();
        // What the hub does not carry: the system instruction's role, and the client's own signature, which
        // only a Gemini upstream could check; the sentinel stands in for it.
        want["systemInstruction"].as_object_mut().unwrap().remove("role");
        want["contents"][1]["parts"][1]["thoughtSignature"] = json!(SENTINEL);
        // The effort a level stands for, as the default (budget) deployment asks for it.
        want["generationConfig"]["thinkingConfig"] = json!({"includeThoughts": true, "thinkingBudget": 24576});
        want["generationConfig"]["temperature"] = json!(1.0);
        assert_eq!(body, want);
    }

    #[test]
    fn a_gemini_signature_survives_a_chat_client_and_returns_on_the_replayed_call() {
        // A Gemini answer with a signed call, as a Chat client gets it.
        let answer = super::super::response::decode(
            br#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"ls","args":{"p":"."}},"thoughtSignature":"+/+/AQI="}]},"finishReason":"STOP","index":0}],"responseId":"r1"}"#,
        )
        .unwrap();
        let chat = crate::protocol::chat::response::encode(
            &answer,
            &crate::protocol::chat::response::ChatAnswer {
                id_hex: "00",
                created: 1,
                model: "m",
                include_usage: false,
            },
        );
        let chat: Value = serde_json::from_slice(&chat).unwrap();
        let id = chat["choices"][0]["message"]["tool_calls"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(id.contains("__thought__"), "{id}");
        // The Chat client's next request replays the id; a Gemini upstream gets base id and signature back.
        let next = json!({"model":"m","messages":[
            {"role":"user","content":"list"},
            {"role":"assistant","content":null,"tool_calls":[{"id":id,"type":"function","function":{"name":"ls","arguments":"{\"p\":\".\"}"}}]},
            {"role":"tool","tool_call_id":id,"content":"a.txt"}]});
        let (hub, _) = crate::protocol::chat::request::decode(next.to_string().as_bytes()).unwrap();
        let body = encoded(&hub);
        let base = id.split("__thought__").next().unwrap();
        assert_eq!(body["contents"][1]["parts"][0]["functionCall"]["id"], base);
        assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], "+/+/AQI=");
        assert_eq!(body["contents"][2]["parts"][0]["functionResponse"]["id"], base);
        // The same through an Anthropic client, whose ids must match ^[a-zA-Z0-9_-]+$.
        let messages = crate::protocol::messages::response::encode(
            &answer,
            &crate::protocol::messages::response::MessagesAnswer {
                id_hex: "00",
                model: "m",
                signing_key: b"k",
                input_estimate: 0,
            },
        );
        let messages: Value = serde_json::from_slice(&messages).unwrap();
        let ant_id = messages["content"][0]["id"].as_str().unwrap();
        assert_eq!(ant_id, id, "base64url keeps the id valid for Anthropic");
        let next = json!({"model":"m","max_tokens":10,"messages":[
            {"role":"user","content":"list"},
            {"role":"assistant","content":[{"type":"tool_use","id":ant_id,"name":"ls","input":{"p":"."}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":ant_id,"content":"a.txt"}]}]});
        let hub = crate::protocol::messages::request::decode(next.to_string().as_bytes()).unwrap();
        let body = encoded(&hub);
        assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], "+/+/AQI=");
        assert_eq!(body["contents"][2]["parts"][0]["functionResponse"]["id"], base);
    }
}
