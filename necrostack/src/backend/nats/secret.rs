//! Keeping credentials of NATS server URLs out of logs and errors.
//!
//! The URLs are stored as given, but everything that formats them goes through
//! [`RedactedUrls`], and every error text that comes back from the client is passed
//! through [`Secrets::scrub`] before it leaves the backend, in case it quotes one. The
//! client itself gets the URLs without their credentials ([`RedactedUrls::for_client`])
//! and the credentials as connect options, so that its own debug logs, which print the
//! server addresses, cannot show them either.

use std::fmt;

use crate::backend::secrets::percent_decode;
pub(crate) use crate::backend::secrets::Secrets;

/// One or more NATS server URLs (comma-separated, for a cluster) whose `Debug` and
/// `Display` hide passwords (`nats://user:***@host`) and tokens (`nats://***@host`).
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrls {
    raw: String,
}

impl RedactedUrls {
    pub(crate) fn new(raw: String) -> Self {
        RedactedUrls { raw }
    }

    /// Each URL as given, credentials included: only for handing to the NATS client.
    pub(crate) fn expose(&self) -> Vec<String> {
        self.raw
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The URLs without credentials, and the credentials of the first URL that has some:
    /// what the NATS client gets.
    pub(crate) fn for_client(&self) -> (Vec<String>, Option<Credentials>) {
        let mut credentials = None;
        let urls = self
            .expose()
            .into_iter()
            .map(|url| {
                let (bare, found) = split_credentials(&url);
                if credentials.is_none() {
                    credentials = found;
                }
                bare
            })
            .collect();
        (urls, credentials)
    }

    /// The secrets in these URLs, for scrubbing error texts.
    pub(crate) fn secrets(&self) -> Secrets {
        of_urls(&self.raw)
    }
}

impl fmt::Display for RedactedUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.secrets().scrub(&self.raw))
    }
}

impl fmt::Debug for RedactedUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Credentials taken out of a URL, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// `user:password@`.
    UserPassword(String, String),
    /// `token@`.
    Token(String),
}

/// `url` without its `userinfo@`, and what that userinfo was.
fn split_credentials(url: &str) -> (String, Option<Credentials>) {
    let scheme_end = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &rest[..at];
    let bare = format!("{}{}", &url[..scheme_end], &rest[at + 1..]);
    let credentials = match userinfo.split_once(':') {
        Some((user, password)) => {
            Credentials::UserPassword(percent_decode(user), percent_decode(password))
        }
        None => Credentials::Token(percent_decode(userinfo)),
    };
    (bare, Some(credentials))
}

/// Finds `user:password@` (the password) and `token@` (the token) in each URL.
pub(crate) fn of_urls(urls: &str) -> Secrets {
    let mut values = Vec::new();
    for url in urls.split(',') {
        let after_scheme = url.find("://").map_or(url, |at| &url[at + 3..]);
        let end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let authority = &after_scheme[..end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((_, password)) => values.push(password.to_owned()),
                None => values.push(userinfo.to_owned()),
            }
        }
    }
    Secrets::new(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_are_masked() {
        let urls = RedactedUrls::new(
            "nats://alice:s3cr%40t@a.example:4222, nats://t0k3n@b.example:4222".into(),
        );
        let shown = urls.to_string();
        assert_eq!(
            shown,
            "nats://alice:***@a.example:4222, nats://***@b.example:4222"
        );
        assert!(!format!("{urls:?}").contains("s3cr"));
        let scrubbed = urls.secrets().scrub("auth failed for s3cr@t / t0k3n");
        assert_eq!(scrubbed, "auth failed for *** / ***");
        assert_eq!(urls.expose().len(), 2);
    }

    #[test]
    fn the_client_gets_bare_urls_and_the_credentials_apart() {
        let urls = RedactedUrls::new("nats://al%40ice:p%3Ass@a:4222,nats://b:4222".into());
        let (bare, credentials) = urls.for_client();
        assert_eq!(bare, ["nats://a:4222", "nats://b:4222"]);
        assert!(credentials == Some(Credentials::UserPassword("al@ice".into(), "p:ss".into())));
        let (bare, credentials) = RedactedUrls::new("tls://t0k@h:4222".into()).for_client();
        assert_eq!(bare, ["tls://h:4222"]);
        assert!(credentials == Some(Credentials::Token("t0k".into())));
        let (_, none) = RedactedUrls::new("nats://h:4222".into()).for_client();
        assert!(none.is_none());
    }

    #[test]
    fn plain_urls_are_unchanged() {
        let urls = RedactedUrls::new("nats://127.0.0.1:4222".into());
        assert_eq!(urls.to_string(), "nats://127.0.0.1:4222");
    }

    proptest::proptest! {
        /// No password, however odd, survives in the formatted URL or a scrubbed text.
        #[test]
        fn passwords_never_show(
            user in "[a-z]{1,6}",
            password in "[A-Za-z!$&'()*+;=._~-]{6,24}",
            port in 1u16..,
        ) {
            let raw = format!("nats://{user}:{password}@127.0.0.1:{port}");
            let urls = RedactedUrls::new(raw.clone());
            proptest::prop_assert!(!urls.to_string().contains(&password));
            let debug = format!("{:?}", urls);
            proptest::prop_assert!(!debug.contains(&password));
            let message = format!("error talking to {raw}: auth {password} rejected");
            proptest::prop_assert!(!urls.secrets().scrub(&message).contains(&password));
        }
    }
}
