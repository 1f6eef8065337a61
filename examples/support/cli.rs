//! Command-line value parsers shared by the examples (each includes this file with
//! `#[path = "../support/cli.rs"] mod cli;`); clap calls them and reports their errors.

/// A rate: a number in `[0, 1]`.
pub fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("a rate is a number in [0, 1], not {text:?}")),
    }
}
