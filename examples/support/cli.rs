//! Option values on the command line, shared by the examples with several numeric options
//! (each includes this file with `#[path = "../support/cli.rs"] mod cli;`).

/// `text`, the value given to option `name`, as a whole number; the error names both.
pub fn number(text: &str, name: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{name} needs a whole number, not {text:?}"))
}
