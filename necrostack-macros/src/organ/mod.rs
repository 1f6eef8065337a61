//! `#[organ(listens_to = ...)]`: [`parse`] the arguments and the item, [`validate`] the
//! handler's signature, [`expand`] to the organ type and its `impl Organ`.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            // Keep the user's item so that code using it does not pile up more errors.
            let mut tokens = error.into_compile_error();
            match syn::parse2::<syn::Item>(item.clone()) {
                Ok(item) => item.to_tokens(&mut tokens),
                Err(_) => tokens.extend(item),
            }
            tokens
        }
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse::args(args)?;
    let item = parse::item(item)?;
    let handler = validate::handler(&args, &item)?;
    Ok(expand::organ(&args, &item, &handler))
}
