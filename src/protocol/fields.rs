//! Reading client JSON with errors that name the offending field as OpenAI does
//! (`messages[2].content[0].text`), for the request decoders.
//!
//! Fields are read from borrowed raw JSON, each parsed once into its type. Paths are built on the stack and
//! only rendered when an error is reported, so walking a large request costs no allocation for them.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::convert::ConvertError;

/// Where a value sits in the request, e.g. `messages[2].tool_calls[0].function`.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    pub fn index(&'a self, index: usize) -> Path<'a> {
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

pub fn invalid_type(at: &Path, expected: &str) -> ConvertError {
    ConvertError {
        message: format!("Invalid type for '{at}': expected {expected}."),
        param: Some(at.to_string()),
        code: Some("invalid_type"),
    }
}

pub fn missing(at: &Path) -> ConvertError {
    ConvertError {
        message: format!("Missing required parameter: '{at}'."),
        param: Some(at.to_string()),
        code: Some("missing_required_parameter"),
    }
}

pub fn invalid_value(at: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(at.to_string()),
        code: Some("invalid_value"),
    }
}

/// A field the router cannot carry across protocols without changing what the client gets back.
pub fn unsupported_parameter(at: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(at.to_string()),
        code: Some("unsupported_parameter"),
    }
}

pub fn unsupported_value(at: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(at.to_string()),
        code: Some("unsupported_value"),
    }
}

/// A present, non-null field read as `T`; `expected` names the type in the error. Clients send `null` for
/// "not set" about as often as they omit the key.
pub fn read<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    at: &Path,
    expected: &str,
) -> Result<Option<T>, ConvertError> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| invalid_type(at, expected)),
    }
}

/// A required field.
pub fn require<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    at: &Path,
    expected: &str,
) -> Result<T, ConvertError> {
    read(raw, at, expected)?.ok_or_else(|| missing(at))
}

/// An integer field. `1024.0` is accepted as 1024 (some clients serialise every number as a float); a
/// fractional value or another type is reported as a type error.
pub fn read_int(raw: Option<&RawValue>, at: &Path) -> Result<Option<i64>, ConvertError> {
    let Some(number) = read::<serde_json::Number>(raw, at, "an integer")? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(invalid_type(at, "an integer")),
    }
}

/// The items of an array field, each still raw.
pub fn items<'a>(raw: Option<&'a RawValue>, at: &Path) -> Result<Option<Vec<&'a RawValue>>, ConvertError> {
    read(raw, at, "an array")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

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
    fn readers_name_the_field_and_treat_null_as_absent() {
        let at = Path::Root.key("body");
        let x = raw(r#""x""#);
        assert_eq!(read::<&str>(Some(&x), &at, "a string").unwrap(), Some("x"));
        let null = raw("null");
        assert_eq!(read::<&str>(Some(&null), &at, "a string").unwrap(), None);
        let three = raw("3");
        let err = read::<&str>(Some(&three), &at, "a string").unwrap_err();
        assert_eq!((err.param.as_deref(), err.code), (Some("body"), Some("invalid_type")));
        assert_eq!(read_int(Some(&raw("2.0")), &at).unwrap(), Some(2));
        assert_eq!(read_int(Some(&raw("-1")), &at).unwrap(), Some(-1));
        assert!(read_int(Some(&raw("1.5")), &at).is_err());
        assert_eq!(
            require::<&str>(None, &Path::Root.key("missing"), "a string")
                .unwrap_err()
                .param
                .as_deref(),
            Some("missing")
        );
    }
}
