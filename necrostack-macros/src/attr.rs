//! Shared helpers for `key = value` attribute arguments.

use proc_macro2::Span;

/// Collects errors so the user sees all of them at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The error for a key that is not one of `valid`.
pub(crate) fn unknown_key(key: &syn::Path, attribute: &str, valid: &[&str]) -> syn::Error {
    let name = key
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| quote::quote!(#key).to_string());
    let list = valid
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    syn::Error::new_spanned(
        key,
        format!("unknown key `{name}` in #[{attribute}(...)]; valid keys: {list}"),
    )
}

/// The error for a key given twice.
pub(crate) fn duplicate_key(key: &syn::Path, attribute: &str) -> syn::Error {
    syn::Error::new_spanned(key, format!("duplicate key in #[{attribute}(...)]"))
}

/// Checks an event or organ name: non-empty, no whitespace or control characters.
pub(crate) fn check_name(name: &syn::LitStr, what: &str) -> syn::Result<()> {
    let value = name.value();
    if value.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            format!("{what} name must not be empty"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(syn::Error::new(
            name.span(),
            format!("{what} name must not contain whitespace: {value:?}"),
        ));
    }
    Ok(())
}

/// A span for errors about the attribute as a whole.
pub(crate) fn call_site() -> Span {
    Span::call_site()
}
