//! Session affinity: the requests of one coding session go to one deployment, so that the provider's prompt
//! cache for that session stays warm.
//!
//! Nothing is stored per session. The deployment is chosen by weighted rendezvous hashing: each member
//! scores `-weight / ln(u)`, with `u` in (0, 1) hashed from the session key and the member's name, and the
//! highest score wins. Over many sessions each member wins in proportion to its weight; adding a member moves
//! only the sessions it now wins; a member that cools down loses its sessions to their second choice, and
//! gets them back when it recovers, because the scores never change.

use std::borrow::Cow;

use http::HeaderMap;
use serde_json::Value;

use crate::protocol::raw_body;

/// The request's session key, from the first source that has one: the `x-session-id` header; Codex's
/// `prompt_cache_key` field or `session_id` header; the session id in Claude Code's `metadata.user_id`; the
/// OpenAI `user` field.
pub fn session_key<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Option<Cow<'a, str>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(Cow::Borrowed)
    };
    let mut prompt_cache_key = None;
    let mut user_id = None;
    let mut user = None;
    if let Some(key) = header("x-session-id") {
        return Some(key);
    }
    raw_body::visit_top_level(body, |key, value| match key {
        b"prompt_cache_key" => prompt_cache_key = json_string(value).filter(|k| !k.is_empty()),
        b"metadata" => user_id = metadata_session(value).filter(|k| !k.is_empty()),
        b"user" => user = json_string(value).filter(|k| !k.is_empty()),
        _ => {}
    });
    prompt_cache_key
        .or_else(|| header("session_id"))
        .or_else(|| header("session-id"))
        .or(user_id)
        .or(user)
}

/// A JSON string's value; escaped strings are decoded, anything else is `None`.
fn json_string(value: &[u8]) -> Option<Cow<'_, str>> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(value).ok().map(Cow::Owned)
}

/// The session in Claude Code's `metadata.user_id`: a JSON text `{"device_id":…,"session_id":…}` in current
/// versions, `user_<hash>_account_<uuid>_session_<uuid>` in older ones; any other id is used whole.
fn metadata_session(metadata: &[u8]) -> Option<Cow<'static, str>> {
    let metadata: Value = serde_json::from_slice(metadata).ok()?;
    let user_id = metadata.get("user_id")?.as_str()?;
    if let Ok(Value::Object(ids)) = serde_json::from_str::<Value>(user_id)
        && let Some(session) = ids.get("session_id").and_then(Value::as_str).filter(|s| !s.is_empty())
    {
        return Some(Cow::Owned(session.to_owned()));
    }
    let session = user_id.rsplit_once("_session_").map_or(user_id, |(_, session)| session);
    Some(Cow::Owned(session.to_owned()))
}

/// The member a session goes to among those `eligible` (members by name and weight, in the group's
/// order), and whether it is the session's first choice among all members with a weight (an affinity hit).
pub fn choose<'n>(
    key: &str,
    members: impl IntoIterator<Item = (&'n str, u32)>,
    eligible: impl Fn(usize) -> bool,
) -> Option<(usize, bool)> {
    let key_hash = fnv1a(FNV_OFFSET, key.as_bytes());
    let mut first: Option<(usize, f64)> = None;
    let mut chosen: Option<(usize, f64)> = None;
    for (i, (name, weight)) in members.into_iter().enumerate() {
        if weight == 0 {
            continue;
        }
        let score = score(key_hash, name, weight);
        if first.is_none_or(|(_, best)| score > best) {
            first = Some((i, score));
        }
        if eligible(i) && chosen.is_none_or(|(_, best)| score > best) {
            chosen = Some((i, score));
        }
    }
    let (index, _) = chosen?;
    Some((index, first.is_some_and(|(i, _)| i == index)))
}

/// `-weight / ln(u)`, with `u` uniform in (0, 1) from the session's and the member's hashes: the weighted
/// rendezvous score (Schindelhauer and Schomaker's logarithmic method).
fn score(key_hash: u64, name: &str, weight: u32) -> f64 {
    let hash = mix(fnv1a(key_hash, name.as_bytes()));
    // The top 53 bits as a float in (0, 1): never 0 (ln 0) and never 1 (ln 1 = 0).
    let u = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `state`: stable across processes and builds, so that replicas behind a load
/// balancer agree on every session's deployment.
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64's finaliser: FNV alone leaves the high bits of similar inputs correlated.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members<'n>(names: &'n [&'n str], weights: &'n [u32]) -> impl Iterator<Item = (&'n str, u32)> {
        names.iter().copied().zip(weights.iter().copied())
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("session-{i}")).collect()
    }

    fn first_choices(names: &[&str], weights: &[u32], keys: &[String]) -> Vec<usize> {
        keys.iter()
            .map(|k| choose(k, members(names, weights), |_| true).unwrap().0)
            .collect()
    }

    #[test]
    fn weights_hold_over_many_sessions() {
        let keys = keys(20_000);
        let picks = first_choices(&["a", "b", "c"], &[100, 300, 0], &keys);
        let share = |i: usize| picks.iter().filter(|p| **p == i).count() as f64 / keys.len() as f64;
        assert!((share(0) - 0.25).abs() < 0.015, "{}", share(0));
        assert!((share(1) - 0.75).abs() < 0.015, "{}", share(1));
        assert_eq!(share(2), 0.0);
    }

    #[test]
    fn adding_a_member_moves_only_the_sessions_it_wins() {
        let keys = keys(10_000);
        let before = first_choices(&["a", "b", "c"], &[1, 1, 1], &keys);
        let after = first_choices(&["a", "b", "c", "d"], &[1, 1, 1, 1], &keys);
        let moved: Vec<usize> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
        assert!(
            moved.iter().all(|&i| after[i] == 3),
            "a moved session went elsewhere than the new member"
        );
        let share = moved.len() as f64 / keys.len() as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        // Order in the file does not matter either.
        let shuffled = first_choices(&["c", "a", "b"], &[1, 1, 1], &keys);
        let names = ["a", "b", "c"];
        assert!((0..keys.len()).all(|i| ["c", "a", "b"][shuffled[i]] == names[before[i]]));
    }

    #[test]
    fn a_cooling_member_loses_its_sessions_until_it_recovers() {
        let names = ["a", "b", "c"];
        let weights = [1, 1, 1];
        let key = keys(50)
            .into_iter()
            .find(|k| choose(k, members(&names, &weights), |_| true).unwrap().0 == 1)
            .unwrap();
        assert_eq!(choose(&key, members(&names, &weights), |_| true), Some((1, true)));
        let (moved, hit) = choose(&key, members(&names, &weights), |i| i != 1).unwrap();
        assert_ne!(moved, 1);
        assert!(!hit);
        assert_eq!(
            choose(&key, members(&names, &weights), |_| true),
            Some((1, true)),
            "back when it recovers"
        );
        assert_eq!(choose(&key, members(&names, &weights), |_| false), None);
    }

    #[test]
    fn session_keys_in_order() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, v.parse().unwrap());
            }
            map
        };
        let none = HeaderMap::new();
        let key = |h: &HeaderMap, body: &str| session_key(h, body.as_bytes()).map(|k| k.into_owned());
        let body = r#"{"model":"m","prompt_cache_key":"codex-1","user":"u1"}"#;
        assert_eq!(key(&headers(&[("x-session-id", "s0")]), body).as_deref(), Some("s0"));
        assert_eq!(key(&none, body).as_deref(), Some("codex-1"));
        assert_eq!(
            key(&headers(&[("session_id", "codex-h")]), r#"{"user":"u1"}"#).as_deref(),
            Some("codex-h")
        );
        let claude = r#"{"metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"cc-s\"}"},"user":"x"}"#;
        assert_eq!(key(&none, claude).as_deref(), Some("cc-s"));
        let older = r#"{"metadata":{"user_id":"user_abc_account_123_session_old-s"}}"#;
        assert_eq!(key(&none, older).as_deref(), Some("old-s"));
        assert_eq!(key(&none, r#"{"user":"u\u0031"}"#).as_deref(), Some("u1"));
        assert_eq!(key(&none, r#"{"model":"m","user":""}"#), None);
        assert_eq!(key(&none, r#"{"model":"m"}"#), None);
    }
}
