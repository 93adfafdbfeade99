//! Typed access to client JSON with errors that name the offending field (`messages[2].content[0].text`).
//!
//! Paths are built on the stack and only rendered when an error is reported, so walking a large request
//! costs no allocation for them.

use std::fmt;

use serde_json::{Map, Value};

use super::ConvertError;

/// Where a value sits in the request, e.g. `messages[2].tool_calls[0].function`.
#[derive(Clone, Copy)]
pub(super) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(super) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    pub(super) fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

pub(super) fn invalid_type(at: &Path, expected: &str) -> ConvertError {
    ConvertError {
        message: format!("Invalid type for '{at}': expected {expected}."),
        param: Some(at.to_string()),
        code: Some("invalid_type"),
    }
}

pub(super) fn missing(at: &Path) -> ConvertError {
    ConvertError {
        message: format!("Missing required parameter: '{at}'."),
        param: Some(at.to_string()),
        code: Some("missing_required_parameter"),
    }
}

pub(super) fn invalid_value(at: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(at.to_string()),
        code: Some("invalid_value"),
    }
}

/// A field the router cannot carry across protocols without changing what the client gets back (§1.1.10,
/// §1.2.10).
pub(super) fn unsupported_parameter(at: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(at.to_string()),
        code: Some("unsupported_parameter"),
    }
}

pub(super) fn unsupported_value(at: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(at.to_string()),
        code: Some("unsupported_value"),
    }
}

/// A present, non-null field. Clients send `null` for "not set" about as often as they omit the key.
pub(super) fn get<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn as_object<'v>(value: &'v Value, at: &Path) -> Result<&'v Map<String, Value>, ConvertError> {
    value.as_object().ok_or_else(|| invalid_type(at, "an object"))
}

pub(super) fn opt_str<'v>(obj: &'v Map<String, Value>, key: &str, at: &Path) -> Result<Option<&'v str>, ConvertError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid_type(&at.key(key), "a string")),
    }
}

pub(super) fn req_str<'v>(obj: &'v Map<String, Value>, key: &str, at: &Path) -> Result<&'v str, ConvertError> {
    opt_str(obj, key, at)?.ok_or_else(|| missing(&at.key(key)))
}

pub(super) fn opt_bool(obj: &Map<String, Value>, key: &str, at: &Path) -> Result<Option<bool>, ConvertError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid_type(&at.key(key), "a boolean")),
    }
}

pub(super) fn opt_f64(obj: &Map<String, Value>, key: &str, at: &Path) -> Result<Option<f64>, ConvertError> {
    match get(obj, key) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid_type(&at.key(key), "a number")),
    }
}

/// An integer field. `1024.0` is accepted as 1024 (some clients serialise every number as a float); a
/// negative or fractional value is reported as a type error.
pub(super) fn opt_i64(obj: &Map<String, Value>, key: &str, at: &Path) -> Result<Option<i64>, ConvertError> {
    let Some(value) = get(obj, key) else {
        return Ok(None);
    };
    if let Some(n) = value.as_i64() {
        return Ok(Some(n));
    }
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(invalid_type(&at.key(key), "an integer")),
    }
}

pub(super) fn opt_array<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    at: &Path,
) -> Result<Option<&'v Vec<Value>>, ConvertError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(invalid_type(&at.key(key), "an array")),
    }
}

pub(super) fn opt_object<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    at: &Path,
) -> Result<Option<&'v Map<String, Value>>, ConvertError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err(invalid_type(&at.key(key), "an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_render_like_openai_params() {
        let root = Path::Root;
        let messages = root.key("messages");
        let message = messages.index(2);
        let content = message.key("content");
        let part = content.index(0);
        assert_eq!(part.to_string(), "messages[2].content[0]");
        assert_eq!(root.key("model").to_string(), "model");
    }

    #[test]
    fn typed_getters_name_the_field_and_treat_null_as_absent() {
        let obj = json!({"a": "x", "n": null, "b": 3, "f": 2.0, "neg": -1, "half": 1.5});
        let obj = obj.as_object().unwrap();
        let at = Path::Root.key("body");
        assert_eq!(opt_str(obj, "a", &at).unwrap(), Some("x"));
        assert_eq!(opt_str(obj, "n", &at).unwrap(), None);
        let err = opt_str(obj, "b", &at).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("body.b"));
        assert_eq!(err.code, Some("invalid_type"));
        assert_eq!(opt_i64(obj, "f", &at).unwrap(), Some(2));
        assert_eq!(opt_i64(obj, "neg", &at).unwrap(), Some(-1));
        assert!(opt_i64(obj, "half", &at).is_err());
        assert_eq!(
            req_str(obj, "missing", &Path::Root).unwrap_err().param.as_deref(),
            Some("missing")
        );
    }
}
