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
    if let OrganItem::Method(method) = item {
        // Inside an `impl` block or a trait, where the organ struct and its impl could not
        // be declared: the method is given back unchanged, so the one error is where the
        // attribute goes.
        errors.push(validate::on_a_method(&args));
        let mut tokens = errors.into_compile_errors();
        tokens.extend(method);
        return tokens;
    }
    if let Some(name) = &args.name {
        let default = match &item {
            OrganItem::Fn(f) => f.sig.ident.to_string(),
            OrganItem::Impl(i) => expand::type_name(&i.self_ty),
            OrganItem::Method(_) | OrganItem::Other(_) => "the function name".to_owned(),
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

#[cfg(test)]
mod tests {
    use quote::quote;

    fn errors(output: &proc_macro2::TokenStream) -> usize {
        output.to_string().matches("compile_error").count()
    }

    #[test]
    fn a_valid_organ_expands_without_errors() {
        let output = super::expand(
            quote!(listens_to = Ping),
            quote!(
                fn answer(ping: &Ping) -> Pong {
                    Pong
                }
            ),
        );
        assert_eq!(errors(&output), 0, "{output}");
        let text = output.to_string();
        assert!(text.contains("struct answer"), "{text}");
        assert!(text.contains("Organ for answer"), "{text}");
    }

    #[test]
    fn a_rejected_organ_still_gets_a_stand_in_impl() {
        let output = super::expand(
            quote!(),
            quote!(
                fn answer(ping: &Ping) -> Pong {
                    Pong
                }
            ),
        );
        assert_eq!(errors(&output), 1, "{output}");
        let text = output.to_string();
        assert!(text.contains("struct answer"), "{text}");
        assert!(text.contains("NoEvent"), "{text}");
    }

    #[test]
    fn a_misspelled_key_is_one_error_not_two() {
        let output = super::expand(
            quote!(listen_to = Ping),
            quote!(
                fn answer(ping: &Ping) -> Pong {
                    Pong
                }
            ),
        );
        assert_eq!(errors(&output), 1, "{output}");
        assert!(output.to_string().contains("did you mean `listens_to`"));
    }

    #[test]
    fn independent_mistakes_are_all_reported() {
        let output = super::expand(
            quote!(listens_to = Ping, retries = 3),
            quote!(
                fn answer<T>(ping: &Ping, extra: u8) -> Pong {
                    Pong
                }
            ),
        );
        assert_eq!(errors(&output), 3, "{output}");
    }

    #[test]
    fn a_binding_named_like_the_organ_drops_the_function_from_the_stand_in() {
        let output = super::expand(
            quote!(listens_to = Ping),
            quote!(
                fn answer(answer: &Ping) -> Ping {
                    answer.clone()
                }
            ),
        );
        assert_eq!(errors(&output), 1, "{output}");
        assert!(!output.to_string().contains("fn handle"), "{output}");
    }

    #[test]
    fn a_method_is_one_error_and_given_back_alone() {
        for method in [
            quote!(
                fn handle(&self, ping: &Ping) {}
            ),
            quote!(
                fn handle(&self, ping: &Ping);
            ),
        ] {
            let output = super::expand(quote!(listens_to = Ping), method);
            assert_eq!(errors(&output), 1, "{output}");
            let text = output.to_string();
            assert!(text.contains("not on a method"), "{text}");
            assert!(!text.contains("struct"), "{text}");
            assert!(!text.contains("Organ"), "{text}");
        }
    }

    #[test]
    fn emits_generates_one_checked_name_per_listed_type() {
        let output = super::expand(
            quote!(listens_to = Ping, emits = [Pong, crate::Knock]),
            quote!(
                fn answer(ping: &Ping) -> Emit {
                    Emit::new()
                }
            ),
        );
        assert_eq!(errors(&output), 0, "{output}");
        let text = output.to_string();
        assert!(text.contains("fn emits"), "{text}");
        assert_eq!(text.matches("EmittedEvent").count(), 2, "{text}");
    }

    #[test]
    fn every_bad_emits_entry_is_reported_and_the_organ_is_stubbed() {
        let output = super::expand(
            quote!(listens_to = Ping, emits = ["Pong", Pong, 1, Pong]),
            quote!(
                fn answer(ping: &Ping) -> Emit {
                    Emit::new()
                }
            ),
        );
        assert_eq!(errors(&output), 3, "{output}");
        let text = output.to_string();
        assert!(text.contains("not strings"), "{text}");
        assert!(text.contains("listed twice"), "{text}");
        assert!(
            !text.contains("fn emits"),
            "the stand-in says nothing: {text}"
        );
    }

    #[test]
    fn result_halves_are_found_only_in_two_argument_results() {
        use super::expand::result_parts;
        let ty: syn::Type = syn::parse_quote!(std::result::Result<Pong, std::io::Error>);
        assert!(result_parts(&ty).is_some());
        let ty: syn::Type = syn::parse_quote!(std::io::Result<Pong>);
        assert!(result_parts(&ty).is_none());
        let ty: syn::Type = syn::parse_quote!(Option<Pong>);
        assert!(result_parts(&ty).is_none());
    }
}
