//! Reading client JSON with errors that name the offending field as OpenAI does
//! (`messages[2].content[0].text`), for the request decoders.
//!
//! Fields are read from borrowed raw JSON, each parsed once into its type. Paths are built on the stack and
//! only rendered when an error is reported, so walking a large request costs no allocation for them.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// A field read in the same pass as the rest of the request without failing it: its value when it has a type
/// the field takes, `Wrong` when not, so that the decoder can report the field with its path. A request is
/// read once this way instead of as raw JSON that each field then parses again.
#[derive(Default)]
pub enum Lenient<T> {
    /// Absent or `null`.
    #[default]
    Absent,
    Value(T),
    Wrong,
}

impl<T> Lenient<T> {
    /// The value, if any; `expected` names the type in the error.
    pub fn read(self, at: &Path, expected: &str) -> Result<Option<T>, ConvertError> {
        match self {
            Lenient::Absent => Ok(None),
            Lenient::Value(value) => Ok(Some(value)),
            Lenient::Wrong => Err(invalid_type(at, expected)),
        }
    }
}

/// The JSON types a [`Lenient`] field takes: each reader returns `None` for a type the field does not take
/// (after consuming the value).
pub trait Shape<'de>: Sized {
    fn from_str(_text: Cow<'de, str>) -> Option<Self> {
        None
    }

    fn from_seq<S: SeqAccess<'de>>(mut seq: S) -> Result<Option<Self>, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn from_map<M: MapAccess<'de>>(mut map: M) -> Result<Option<Self>, M::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de: 'a, 'a> Shape<'de> for Cow<'a, str> {
    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(text)
    }
}

/// A list of lenient items: one wrong item does not fail the list.
impl<'de, T: Shape<'de>> Shape<'de> for Vec<Lenient<T>> {
    fn from_seq<S: SeqAccess<'de>>(mut seq: S) -> Result<Option<Self>, S::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

impl<'de, T: Shape<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientVisitor<T>(PhantomData<T>);

        impl<'de, T: Shape<'de>> Visitor<'de> for LenientVisitor<T> {
            type Value = Lenient<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient::Absent)
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient::Absent)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient::Wrong)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Lenient::Wrong)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Lenient::Wrong)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Lenient::Wrong)
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(T::from_str(Cow::Borrowed(text)).map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(T::from_str(Cow::Owned(text.to_owned())).map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(T::from_str(Cow::Owned(text)).map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
                Ok(T::from_seq(seq)?.map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                Ok(T::from_map(map)?.map_or(Lenient::Wrong, Lenient::Value))
            }
        }

        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
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

    #[test]
    fn lenient_fields_keep_the_value_or_mark_a_wrong_type_without_failing_the_pass() {
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(borrow, default)]
            items: Lenient<Vec<Lenient<Cow<'a, str>>>>,
            #[serde(borrow, default)]
            name: Lenient<Cow<'a, str>>,
        }
        let body: Body = serde_json::from_str(r#"{"items": ["a", 1, {"x": [2]}, null, "b\"c"], "name": 7}"#).unwrap();
        let at = Path::Root.key("items");
        let items = body.items.read(&at, "an array").unwrap().unwrap();
        let read: Vec<_> = items.into_iter().map(|item| item.read(&at, "a string")).collect();
        assert!(matches!(&read[0], Ok(Some(Cow::Borrowed("a")))));
        assert_eq!(read[1].as_ref().unwrap_err().param.as_deref(), Some("items"));
        assert!(read[2].is_err());
        assert!(matches!(&read[3], Ok(None)));
        assert!(matches!(&read[4], Ok(Some(text)) if text == "b\"c"));
        let wrong = body.name.read(&Path::Root.key("name"), "a string").unwrap_err();
        assert_eq!(
            (wrong.param.as_deref(), wrong.code),
            (Some("name"), Some("invalid_type"))
        );
        let absent: Body = serde_json::from_str("{}").unwrap();
        assert!(matches!(absent.name.read(&at, "a string"), Ok(None)));
    }
}
