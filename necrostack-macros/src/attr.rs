//! Helpers shared by both macros: collecting errors, reading `key = value` arguments,
//! naming the valid choices, and checking names.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::ParseStream;
use syn::LitStr;

/// Collects errors so the user sees every independent mistake at once, each on its own
/// token, instead of fixing them one compile at a time.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The collected errors as `compile_error!` invocations (empty when there are none).
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.0
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }
}

/// One key an attribute accepts, with the form to show in error messages.
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) form: &'static str,
}

/// The error for a key that is not one of `valid`, with a suggestion when it looks like a
/// misspelling of one of them.
pub(crate) fn unknown_key(key: &syn::Path, attribute: &str, valid: &[Key]) -> syn::Error {
    let name = key.to_token_stream().to_string().replace(' ', "");
    let suggestion = valid
        .iter()
        .find(|k| is_misspelling(&name, k.name))
        .map(|k| format!("did you mean `{}`? ", k.name))
        .unwrap_or_default();
    syn::Error::new_spanned(
        key,
        format!(
            "unknown key `{name}` in #[{attribute}(...)]; {suggestion}valid keys: {}",
            list(valid.iter().map(|k| k.form)),
        ),
    )
}

/// The error for a key given twice; `why` says why once is enough.
pub(crate) fn duplicate_key(key: &syn::Path, attribute: &str, why: &str) -> syn::Error {
    let name = key.to_token_stream().to_string();
    syn::Error::new_spanned(
        key,
        format!("`{name}` is given twice in #[{attribute}(...)]: {why}; remove one of them"),
    )
}

/// Reads the `= value` after a key, reporting a missing `=` on the key itself.
pub(crate) fn value<'a>(
    path: &syn::Path,
    input: ParseStream<'a>,
    form: &str,
) -> syn::Result<ParseStream<'a>> {
    if input.peek(syn::Token![=]) {
        input.parse::<syn::Token![=]>()?;
        Ok(input)
    } else {
        let name = path.to_token_stream().to_string();
        Err(syn::Error::new_spanned(
            path,
            format!("`{name}` needs a value: write `{form}`"),
        ))
    }
}

/// Reads a string literal value, or explains that one is needed.
pub(crate) fn string_value(input: ParseStream<'_>, form: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        return input.parse();
    }
    let value = take_value(input)?;
    Err(syn::Error::new_spanned(
        &value,
        format!(
            "expected a string literal: write `{form}` (found `{}`)",
            pretty(&value)
        ),
    ))
}

/// Consumes the rest of one argument (up to the next `,`) so that parsing can go on to
/// report mistakes in the later arguments too.
pub(crate) fn take_value(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    let mut tokens = TokenStream::new();
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        tokens.extend(std::iter::once(input.parse::<proc_macro2::TokenTree>()?));
    }
    Ok(tokens)
}

/// Checks an event or organ name: non-empty, no whitespace or control characters.
/// `default` is what the name is when the key is left out; `example` is a name to suggest.
pub(crate) fn check_name(
    name: &LitStr,
    what: &str,
    default: &str,
    example: &str,
) -> syn::Result<()> {
    let value = name.value();
    if value.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "{what} name must not be empty: write a name like \"{example}\", or leave out `name` to use `{default}`"
            ),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let fixed: String = value
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        return Err(syn::Error::new(
            name.span(),
            format!(
                "{what} name must not contain whitespace or control characters: {value:?}; write e.g. {fixed:?}"
            ),
        ));
    }
    Ok(())
}

/// Tokens as the user would write them: `crate::Ping`, `Vec<u32>`, `&Ping`, `x: u32`.
pub(crate) fn pretty(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let text = text.replace(" :: ", "::").replace(":: ", "::");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let previous = out.chars().last().unwrap_or(' ');
            let next = chars.peek().copied().unwrap_or(' ');
            let before_colon = next == ':' && !out.ends_with("::");
            if matches!(previous, '<' | '&' | '(' | '[' | '\'')
                || matches!(next, '<' | '>' | ',' | ')' | ']')
                || before_colon
            {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// `a`, `b` and `c` as "`a`, `b`, `c`".
pub(crate) fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `typed` looks like a misspelling of `intended`: the same letters in a slightly
/// different order or with one or two letters more, fewer or different.
pub(crate) fn is_misspelling(typed: &str, intended: &str) -> bool {
    typed != intended && edit_distance(&typed.to_lowercase(), intended) <= 2
}

/// Optimal string alignment distance (Levenshtein plus swaps of adjacent letters).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_are_recognised() {
        assert!(is_misspelling("listen_to", "listens_to"));
        assert!(is_misspelling("listens_ot", "listens_to"));
        assert!(is_misspelling("nmae", "name"));
        assert!(is_misspelling("Name", "name"));
        assert!(!is_misspelling("name", "name"));
        assert!(!is_misspelling("retries", "name"));
        assert!(!is_misspelling("retries", "listens_to"));
    }

    #[test]
    fn pretty_prints_like_source() {
        let ty: syn::Type = syn::parse_quote!(&crate::Envelope<Vec<(u32, String)>>);
        assert_eq!(pretty(&ty), "&crate::Envelope<Vec<(u32, String)>>");
        let ty: syn::Type = syn::parse_quote!(Option<&'static str>);
        assert_eq!(pretty(&ty), "Option<&'static str>");
        let arg: syn::FnArg = syn::parse_quote!(_ping: &Ping);
        assert_eq!(pretty(&arg), "_ping: &Ping");
        let ty: syn::Type = syn::parse_quote!(::std::vec::Vec<u8>);
        assert_eq!(pretty(&ty), "::std::vec::Vec<u8>");
    }

    #[test]
    fn names_are_checked() {
        let ok: LitStr = syn::parse_quote!("order.placed/v2");
        assert!(check_name(&ok, "event", "Ping", "PING").is_ok());
        let empty: LitStr = syn::parse_quote!("");
        let error = check_name(&empty, "event", "Ping", "PING").unwrap_err();
        assert!(error.to_string().contains("must not be empty"));
        let spaced: LitStr = syn::parse_quote!("PING  RECEIVED\n");
        let error = check_name(&spaced, "event", "Ping", "PING").unwrap_err();
        assert!(error.to_string().contains("\"PING_RECEIVED\""), "{error}");
    }
}
