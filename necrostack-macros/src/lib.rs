//! Procedural macros for [necrostack](https://docs.rs/necrostack): `#[derive(Event)]` and
//! `#[organ(listens_to = ...)]`. Use them through the `necrostack` crate, which
//! re-exports both and documents them.
//!
//! Each macro parses its input, validates it (collecting every error, each spanned on the
//! offending token), then expands; see the `event` and `organ` modules.

use proc_macro::TokenStream;

mod attr;
mod event;
mod organ;

/// Implements `necrostack::Event`. See the `necrostack` crate's documentation.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::expand(&input).into()
}

/// Turns a handler function or `impl` block into a `necrostack::Organ`. See the
/// `necrostack` crate's documentation.
#[proc_macro_attribute]
pub fn organ(args: TokenStream, item: TokenStream) -> TokenStream {
    organ::expand(args.into(), item.into()).into()
}
