//! `router_settings.client_keys` and `redis_url`: named client keys with their groups and limits, and the
//! Redis that replicas share them through. Only a key's SHA-256 is kept: the router never needs the value
//! again, and a `key_sha256` entry lets the file do without it.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::file::ClientKeyEntry;
use super::glob::Glob;
use super::validate::{ENV_PREFIX, Problems, Secret};

/// The name `--token` goes by; no entry of `client_keys` may take it.
pub const TOKEN_KEY_NAME: &str = "default";

/// One validated client key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKeySpec {
    pub name: String,
    /// SHA-256 of the key's value: what a presented key is compared with, in constant time.
    pub sha256: [u8; 32],
    /// Globs of the group names the key may use; `None`: every group.
    pub groups: Option<Vec<Glob>>,
    pub limits: KeyLimits,
    pub expires: Option<SystemTime>,
}

/// A key's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Requests in any 60 s window.
    pub rpm: Option<u32>,
    /// Tokens (input plus output) per minute.
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub max_parallel: Option<u32>,
}

impl ClientKeySpec {
    /// Whether the key may send requests to `group`.
    pub fn allows(&self, group: &str) -> bool {
        self.groups
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| g.matches(group)))
    }
}

impl fmt::Debug for ClientKeySpec {
    /// Without the hash: a short key could be found from it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKeySpec")
            .field("name", &self.name)
            .field(
                "groups",
                &self
                    .groups
                    .as_ref()
                    .map(|g| g.iter().map(Glob::as_str).collect::<Vec<_>>()),
            )
            .field("limits", &self.limits)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a presented or configured key.
pub fn sha256(value: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, value);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Every entry of `client_keys`, each problem noted with its place; entries with a problem are left out.
pub(super) fn client_keys(
    entries: Vec<ClientKeyEntry>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Vec<ClientKeySpec> {
    let mut keys: Vec<ClientKeySpec> = Vec::with_capacity(entries.len());
    let mut names = HashMap::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let place = format!("router_settings.client_keys[{i}]");
        let Some(key) = problems.take(client_key(entry, &place, env)) else {
            continue;
        };
        if let Some(first) = names.insert(key.name.clone(), i) {
            problems.push(format!(
                "{place}.name: duplicate key name '{}' (also client_keys[{first}])",
                key.name
            ));
            continue;
        }
        // Two names for one value would make the name a request is counted under a matter of chance.
        if let Some(other) = keys.iter().find(|k| k.sha256 == key.sha256) {
            problems.push(format!(
                "{place}: the same key as '{}' (each key needs its own value)",
                other.name
            ));
            continue;
        }
        keys.push(key);
    }
    keys
}

fn client_key(
    entry: ClientKeyEntry,
    place: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ClientKeySpec, String> {
    let name = entry.name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{place}.name: must be printable ASCII without spaces"));
    }
    if name == TOKEN_KEY_NAME {
        return Err(format!("{place}.name: '{TOKEN_KEY_NAME}' is the name of --token"));
    }
    let sha256 = match (entry.key, entry.key_sha256) {
        (Some(_), Some(_)) => return Err(format!("{place}: set key or key_sha256, not both")),
        (None, None) => return Err(format!("{place}: key or key_sha256 is required")),
        (Some(key), None) => {
            let value = match key.strip_prefix(ENV_PREFIX) {
                Some(var) => env(var).ok_or_else(|| format!("{place}.key: environment variable '{var}' is not set"))?,
                None => key,
            };
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!("{place}.key: must be printable ASCII without spaces"));
            }
            self::sha256(value.as_bytes())
        }
        (None, Some(hex)) => {
            parse_hex(hex.trim()).ok_or_else(|| format!("{place}.key_sha256: expected 64 hexadecimal digits"))?
        }
    };
    let groups = match entry.groups.map(|g| g.into_vec()) {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(format!(
                "{place}.groups: at least one group pattern (leave groups out for every group)"
            ));
        }
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(j, text)| Glob::new(text).map_err(|e| format!("{place}.groups[{j}]: bad pattern: {}", e.msg)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let limits = KeyLimits {
        rpm: limit(entry.rpm, 1_000_000, place, "rpm")?.map(|n| n as u32),
        tpm: limit(entry.tpm, 1_000_000_000_000, place, "tpm")?,
        max_parallel: limit(entry.max_parallel, 1_000_000, place, "max_parallel")?.map(|n| n as u32),
    };
    let expires = match entry.expires.as_deref().map(str::trim) {
        None => None,
        Some(text) => Some(
            rfc3339(text)
                .ok_or_else(|| format!("{place}.expires: expected an RFC 3339 time such as 2026-12-31T23:59:59Z"))?,
        ),
    };
    Ok(ClientKeySpec {
        name: name.to_owned(),
        sha256,
        groups,
        limits,
        expires,
    })
}

fn limit(value: Option<i64>, max: u64, place: &str, key: &str) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 && n as u64 <= max => Ok(Some(n as u64)),
        Some(n) => Err(format!("{place}.{key}: {n} is out of range (1 to {max})")),
    }
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, as RFC 3339 has it (`t` and a space for `T` too).
fn rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b[at] == b'.' {
        let digits = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let fraction = &text[at + 1..at + 1 + digits.min(9)];
        nanos = fraction.parse::<u32>().ok()? * 10u32.pow(9 - fraction.len() as u32);
        at += 1 + digits;
    }
    let offset = match &text[at..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && matches!(zone.as_bytes()[0], b'+' | b'-') && zone.as_bytes()[3] == b':' => {
            let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `router_settings.redis_url`: `redis://` or `rediss://`, or `os.environ/NAME` holding one. The message
/// never shows the URL: it may hold a password.
pub(super) fn redis_url(value: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Secret>, String> {
    let place = "router_settings.redis_url";
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let url = match value.strip_prefix(ENV_PREFIX) {
        Some(var) => env(var).ok_or_else(|| format!("{place}: environment variable '{var}' is not set"))?,
        None => value.to_owned(),
    };
    let parsed = url::Url::parse(&url).map_err(|_| format!("{place}: not a URL (expected redis://host:port)"))?;
    if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{place}: expected redis:// or rediss:// followed by a host"));
    }
    Ok(Some(Secret::new(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<u64> {
        rfc3339(text).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2026-12-31T23:59:59Z"), Some(1_798_761_599));
        assert_eq!(at("2026-12-31T23:59:59.5Z"), Some(1_798_761_599));
        assert_eq!(at("2027-01-01T01:00:00+01:00"), Some(1_798_761_600));
        assert_eq!(at("2026-12-31t22:00:00-02:00"), Some(1_798_761_600));
        assert_eq!(at("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "2026-12-31",
            "2026-12-31T23:59:59",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31T23:59:59+0100",
            "2026-12-31T23:59:59.Z",
            "tomorrow",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_digests() {
        let hash = sha256(b"abc");
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(parse_hex(&hex), Some(hash));
        assert_eq!(parse_hex(&hex.to_uppercase()), Some(hash));
        assert_eq!(parse_hex(&hex[1..]), None);
        assert_eq!(parse_hex(&format!("{}zz", &hex[2..])), None);
    }

    #[test]
    fn redis_urls() {
        let env = |name: &str| (name == "REDIS").then(|| "rediss://:pw@cache:6380/0".to_owned());
        assert_eq!(redis_url(None, &env), Ok(None));
        assert!(redis_url(Some("redis://127.0.0.1:6379"), &env).unwrap().is_some());
        assert_eq!(
            redis_url(Some("os.environ/REDIS"), &env).unwrap().unwrap().expose(),
            "rediss://:pw@cache:6380/0"
        );
        let error = redis_url(Some("http://:secret@host"), &env).unwrap_err();
        assert!(!error.contains("secret"), "{error}");
        assert!(redis_url(Some("os.environ/NOPE"), &env).is_err());
    }
}
