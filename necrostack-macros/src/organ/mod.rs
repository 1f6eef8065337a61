//! `#[organ(listens_to = ...)]`: [`parse`] the arguments and the item, [`validate`] the
//! handler's signature, then [`expand`] it, or, on any mistake, emit the errors with a
//! [`stub`] so that the user's other code adds none of its own.

mod expand;
mod parse;
mod stub;
mod validate;

use proc_macro2::TokenStream;

use crate::attr::Errors;
use parse::OrganItem;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse::args(args, &mut errors);
    let item = match parse::item(item.clone(), &mut errors) {
        Ok(item) => item,
        Err(error) => {
            // Not an item syn understands: let the compiler report on it as written.
            let mut tokens = errors.into_compile_errors();
            tokens.extend(error.into_compile_error());
            tokens.extend(item);
            return tokens;
        }
    };
    if let Some(name) = &args.name {
        let default = match &item {
            OrganItem::Fn(f) => f.sig.ident.to_string(),
            OrganItem::Impl(i) => expand::type_name(&i.self_ty),
            OrganItem::Other(_) => "the function name".to_owned(),
        };
        let example = format!("{default}-v2");
        if let Err(error) = crate::attr::check_name(name, "organ", &default, &example) {
            errors.push(error);
        }
    }
    let handler = validate::handler(&args, &item, &mut errors);
    match (&item, handler) {
        (OrganItem::Fn(function), Some(handler)) if errors.is_empty() => {
            expand::function_organ(&args, function, &handler)
        }
        (OrganItem::Impl(block), Some(handler)) if errors.is_empty() => {
            expand::impl_organ(&args, block, &handler)
        }
        _ => {
            // A binding named like the organ makes the function itself fail to compile
            // once the organ struct exists, so such a function is left out.
            let keep_function = match &item {
                OrganItem::Fn(f) => {
                    validate::bindings_named(&f.sig.ident, &f.sig, &f.block).is_empty()
                }
                _ => true,
            };
            let mut tokens = errors.into_compile_errors();
            tokens.extend(stub::stub(&args, &item, keep_function));
            tokens
        }
    }
}
