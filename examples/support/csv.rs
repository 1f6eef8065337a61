//! A minimal CSV line splitter shared by the examples that read CSV files (each includes
//! this file with `#[path = ...] mod csv;`), so they need no CSV crate.
//!
//! It handles what hand-written files hold: commas inside double quotes and `""` for a
//! quote. It does not handle a quoted cell that spans lines; cells are not trimmed.

/// Splits one CSV line into cells; double quotes group commas, `""` is a quote, and a
/// trailing `\r` (a Windows line end) is dropped.
pub fn split_line(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}
