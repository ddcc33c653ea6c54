//! Writing CSV for spreadsheets: RFC 4180 quoting (the `csv` crate), an optional UTF-8 BOM,
//! and text cells neutralised against formula injection (OWASP).

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A text cell that a spreadsheet would take as a formula (`=`, `+`, `-`, `@`, tab, CR, NUL
/// first) gets a leading apostrophe, which spreadsheets show as text and do not evaluate.
/// Amounts are never passed through this: they are numbers the server formats itself.
pub fn text_cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\0') => format!("'{value}").into(),
        _ => value.into(),
    }
}

/// Collects CSV rows and hands them on in chunks of about `chunk` bytes.
pub struct ChunkedCsv<F: FnMut(Vec<u8>) -> bool> {
    writer: csv::Writer<Vec<u8>>,
    capacity: usize,
    chunk: usize,
    sink: F,
    open: bool,
}

impl<F: FnMut(Vec<u8>) -> bool> ChunkedCsv<F> {
    /// A writer that passes chunks to `sink` (which returns false when the reader has gone).
    pub fn new(sink: F, bom: bool, chunk: usize) -> ChunkedCsv<F> {
        let mut buf = Vec::with_capacity(chunk + 1024);
        if bom {
            buf.extend_from_slice(BOM);
        }
        ChunkedCsv {
            writer: writer(buf),
            capacity: chunk + 1024,
            chunk,
            sink,
            open: true,
        }
    }

    /// Writes one record; false once the reader has gone (stop producing).
    pub fn row<I, T>(&mut self, fields: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        if !self.open {
            return false;
        }
        if self.writer.write_record(fields).is_err() {
            self.open = false;
            return false;
        }
        if self.writer.get_ref().len() >= self.chunk {
            self.flush();
        }
        self.open
    }

    /// Hands on what is buffered.
    pub fn flush(&mut self) -> bool {
        if !self.open {
            return false;
        }
        let full = std::mem::replace(&mut self.writer, writer(Vec::with_capacity(self.capacity)));
        match full.into_inner() {
            Ok(buf) if buf.is_empty() => {}
            Ok(buf) => self.open = (self.sink)(buf),
            Err(_) => self.open = false,
        }
        self.open
    }
}

fn writer(buf: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formulas_become_text() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-1+1",
            "@SUM(1)",
            "\tx",
            "\rx",
            "\0x",
        ] {
            assert!(text_cell(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(text_cell("Ann Lee"), "Ann Lee");
        assert_eq!(text_cell("陈美"), "陈美");
    }

    proptest! {
        /// Whatever the text, the cell never starts with a formula character.
        #[test]
        fn escaped_cells_never_start_a_formula(text in any::<String>()) {
            let cell = text_cell(&text);
            let first = cell.chars().next();
            prop_assert!(!matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\0')));
            prop_assert!(cell.ends_with(text.as_str()));
        }
    }
}
