//! CSV writing (RFC 4180 quoting), atomically via [`crate::io::write_atomic`].

use std::path::Path;

use crate::io::{write_atomic, LoadError};

/// A field quoted when it holds a comma, a quote or a line break (quotes doubled).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV line (no line break) from the fields.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    fields.iter().map(|f| csv_field(f.as_ref())).collect::<Vec<_>>().join(",")
}

/// Writes a header and rows to `path` atomically.
pub fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<(), LoadError> {
    write_atomic(path, |w| {
        writeln!(w, "{}", csv_line(header))?;
        for r in rows {
            writeln!(w, "{}", csv_line(r))?;
        }
        Ok(())
    })
}

/// A float for CSV: full precision, empty for "undefined".
pub fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => String::new(),
    }
}
