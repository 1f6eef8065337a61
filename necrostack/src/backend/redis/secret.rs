//! Keeping the password of a Redis URL out of logs and errors.
//!
//! The URL is stored as given (redis-rs needs it), but everything that formats it goes
//! through [`RedactedUrl`], and every error text that comes back from redis-rs is passed
//! through [`Secrets::scrub`] before it leaves the backend, in case a message quotes it.

use std::fmt;

pub(crate) use crate::backend::secrets::Secrets;

/// A Redis URL whose `Debug` and `Display` hide the password (`redis://user:***@host`).
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl {
    raw: String,
}

impl RedactedUrl {
    pub(crate) fn new(raw: String) -> Self {
        RedactedUrl { raw }
    }

    /// The URL as given, password included: only for handing to the Redis client.
    pub(crate) fn expose(&self) -> &str {
        &self.raw
    }

    /// The secrets in this URL, for scrubbing error texts.
    pub(crate) fn secrets(&self) -> Secrets {
        of_url(&self.raw)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.secrets().scrub(&self.raw))
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Finds the password in `user:password@` and in `pass=`/`password=` query parameters
/// (the form redis-rs accepts for Unix sockets).
pub(crate) fn of_url(url: &str) -> Secrets {
    let mut values = Vec::new();
    let after_scheme = url.find("://").map_or(url, |at| &url[at + 3..]);
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    if let Some(at) = authority.rfind('@') {
        if let Some((_, password)) = authority[..at].split_once(':') {
            values.push(password.to_owned());
        }
    }
    if let Some(query_start) = url.find('?') {
        let query = &url[query_start + 1..];
        let query = query.split('#').next().unwrap_or(query);
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                if key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password") {
                    values.push(value.to_owned());
                }
            }
        }
    }
    Secrets::new(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked_in_display_and_debug() {
        let url = RedactedUrl::new("rediss://alice:s3cr%40t@db.example:6380/2".into());
        assert_eq!(url.to_string(), "rediss://alice:***@db.example:6380/2");
        assert!(!format!("{url:?}").contains("s3cr"));
        let scrubbed = url.secrets().scrub("auth failed for s3cr@t and s3cr%40t");
        assert_eq!(scrubbed, "auth failed for *** and ***");
    }

    proptest::proptest! {
        /// No password, however odd, survives in the formatted URL or a scrubbed text.
        #[test]
        fn passwords_never_show(
            user in "[a-z]{0,6}",
            password in "[A-Za-z!$&'()*+,;=._~-]{6,24}",
            port in 1u16..,
            db in 0u8..16,
        ) {
            let raw = format!("redis://{user}:{password}@127.0.0.1:{port}/{db}");
            let url = RedactedUrl::new(raw.clone());
            proptest::prop_assert!(!url.to_string().contains(&password));
            let debug = format!("{:?}", url);
            proptest::prop_assert!(!debug.contains(&password));
            let message = format!("error talking to {raw}: auth {password} rejected");
            proptest::prop_assert!(!url.secrets().scrub(&message).contains(&password));
        }
    }

    #[test]
    fn password_only_and_query_forms_are_masked() {
        let url = RedactedUrl::new("redis://:hunter2@127.0.0.1:6379".into());
        assert_eq!(url.to_string(), "redis://:***@127.0.0.1:6379");
        let unix = RedactedUrl::new("redis+unix:///tmp/r.sock?db=1&pass=topsecret".into());
        assert!(!unix.to_string().contains("topsecret"));
        let plain = RedactedUrl::new("redis://127.0.0.1:6379".into());
        assert_eq!(plain.to_string(), "redis://127.0.0.1:6379");
    }
}
