//! What the estimate reads of an Anthropic body, deserialized straight from its text and borrowed from it:
//! a `serde_json::Value` tree of the whole conversation cost more than converting it. Tool definitions and
//! tool inputs, counted as their JSON, stay raw text (a tree is made of one only when its count is not
//! remembered). Every field takes any JSON. A value of another kind than expected reads as nothing, as a
//! walk over a `Value` would find nothing there, so the estimate never refuses a body. A key given twice
//! counts its last value, as in a `Value` map.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Default)]
pub(super) struct Body<'a> {
    pub system: Option<Content<'a>>,
    /// Each element counts, whatever it is.
    pub messages: Vec<Message<'a>>,
    /// Counted as their compact JSON.
    pub tools: Vec<&'a RawValue>,
}

#[derive(Default)]
pub(super) struct Message<'a> {
    pub content: Option<Content<'a>>,
}

/// A `content` or `system` value: a string or a list of blocks; anything else counts nothing.
#[derive(Default)]
pub(super) enum Content<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
    #[default]
    Other,
}

/// A content block: the fields of every kind the estimate counts (a text field that is not a string is "").
#[derive(Default)]
pub(super) struct Block<'a> {
    pub kind: Text<'a>,
    pub text: Text<'a>,
    pub thinking: Text<'a>,
    pub name: Text<'a>,
    /// A tool call's input, counted as its compact JSON (`null` included, as written).
    pub input: Option<&'a RawValue>,
    pub content: Option<Content<'a>>,
    pub tool_name: Text<'a>,
    pub title: Text<'a>,
    pub source: Option<Source<'a>>,
}

/// An image's or a document's source (an object), or a search result's (a string, in `text`).
#[derive(Default)]
pub(super) struct Source<'a> {
    pub kind: Text<'a>,
    pub data: Text<'a>,
    pub content: Option<Content<'a>>,
    pub text: Text<'a>,
}

/// A string field; "" when it is anything else.
#[derive(Default)]
pub(super) struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn get(&self) -> &str {
        &self.0
    }
}

/// An object read key by key; what is not an object reads as the default.
trait Members<'de>: Default {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;

    /// What a string in its place reads as.
    fn from_text(_: Cow<'de, str>) -> Self {
        Self::default()
    }
}

impl<'de: 'a, 'a> Members<'de> for Body<'a> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "system" => self.system = map.next_value()?,
            "messages" => self.messages = map.next_value::<List<Message<'a>>>()?.0,
            "tools" => self.tools = map.next_value::<List<&'a RawValue>>()?.0,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> Members<'de> for Message<'a> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "content" => self.content = map.next_value()?,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> Members<'de> for Block<'a> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = map.next_value()?,
            "text" => self.text = map.next_value()?,
            "thinking" => self.thinking = map.next_value()?,
            "name" => self.name = map.next_value()?,
            "input" => self.input = Some(map.next_value()?),
            "content" => self.content = map.next_value()?,
            "tool_name" => self.tool_name = map.next_value()?,
            "title" => self.title = map.next_value()?,
            "source" => self.source = map.next_value()?,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> Members<'de> for Source<'a> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = map.next_value()?,
            "data" => self.data = map.next_value()?,
            "content" => self.content = map.next_value()?,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }

    fn from_text(text: Cow<'de, str>) -> Self {
        Self {
            text: Text(text),
            ..Self::default()
        }
    }
}

/// The parts of a visitor common to all of them: `expecting`, and the values of another kind than it
/// takes, read as `$default`.
macro_rules! anything_else {
    ($default:expr) => {
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
    };
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn elements<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<T>, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

/// A string, borrowed unless it holds escapes, wrapped by `$wrap`.
macro_rules! visit_strings {
    ($wrap:expr) => {
        fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok($wrap(Cow::Borrowed(text)))
        }
        fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
            Ok($wrap(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
            Ok($wrap(Cow::Owned(text)))
        }
    };
}

struct MembersVisitor<T>(PhantomData<T>);

impl<'de, T: Members<'de>> Visitor<'de> for MembersVisitor<T> {
    type Value = T;

    anything_else!(T::default());
    visit_strings!(T::from_text);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        skip_seq(seq).map(|()| T::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            value.member(&key, &mut map)?;
        }
        Ok(value)
    }
}

macro_rules! deserialize_members {
    ($($name:ident),*) => {$(
        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(MembersVisitor(PhantomData))
            }
        }
    )*};
}

deserialize_members!(Body, Message, Block, Source);

/// An array's elements; anything else reads as no elements.
struct List<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = List<T>;

            anything_else!(List(Vec::new()));

            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<List<T>, A::Error> {
                elements(seq).map(List)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<List<T>, A::Error> {
                skip_map(map).map(|()| List(Vec::new()))
            }
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;

            anything_else!(Content::Other);
            visit_strings!(Content::Text);

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Content<'a>, A::Error> {
                elements(seq).map(Content::Blocks)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Content<'a>, A::Error> {
                skip_map(map).map(|()| Content::Other)
            }
        }
        deserializer.deserialize_any(ContentVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;

            anything_else!(Text::default());
            visit_strings!(Text);

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text<'a>, A::Error> {
                skip_seq(seq).map(|()| Text::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'a>, A::Error> {
                skip_map(map).map(|()| Text::default())
            }
        }
        deserializer.deserialize_any(TextVisitor(PhantomData))
    }
}
