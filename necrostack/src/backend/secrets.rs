//! [`Secrets`]: the secret strings of a server URL (passwords, tokens), and scrubbing them
//! out of every text a network backend produces (errors, logs), whatever quotes them.
//!
//! Each backend finds the secrets in its own URL syntax; what is done with them is here.

/// What replaces a secret in any text a backend produces.
pub(crate) const MASK: &str = "***";

/// Secret strings, as written and percent-decoded.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    /// Longest first, so that a secret containing another is masked whole.
    values: Vec<String>,
}

impl Secrets {
    /// The secrets found in a URL, as written; their percent-decoded forms are added.
    pub(crate) fn new(mut values: Vec<String>) -> Self {
        let decoded: Vec<String> = values.iter().map(|v| percent_decode(v)).collect();
        values.extend(decoded);
        values.retain(|v| !v.is_empty());
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values }
    }

    /// `text` with every occurrence of a secret replaced by [`MASK`].
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.values {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }
}

/// `%XX` sequences decoded (what a URL parser will hand the server); invalid ones kept.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
