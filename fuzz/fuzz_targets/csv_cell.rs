//! Text cells of the CSV exports (`reports::csv_out`): whatever the donor typed, the cell
//! never starts a spreadsheet formula (OWASP CSV injection), differs from the text only by
//! the neutralising apostrophe, and reads back exactly (RFC 4180 quoting, with and without
//! the byte-order mark) with the `csv` crate.
#![no_main]

use crowdledger::reports::csv_out::{BOM, ChunkedCsv, text_cell};
use libfuzzer_sys::fuzz_target;

/// Characters that make a spreadsheet evaluate a cell.
const FORMULA: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\0'];

// Input: one byte of options (bit 0: byte-order mark; the rest: chunk size), then the text.
fuzz_target!(|data: &[u8]| {
    let Some((options, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let (bom, chunk) = (options & 1 == 1, options >> 1);
    let cell = text_cell(text);
    let first = cell.chars().next();
    assert!(
        !first.is_some_and(|c| FORMULA.contains(&c)),
        "{text:?} became {cell:?}"
    );
    let neutralised = text.chars().next().is_some_and(|c| FORMULA.contains(&c));
    let expected = if neutralised {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    assert_eq!(cell, expected);

    // Written as the exports write it (a header row, then the cell between two others, in
    // chunks as small as one byte), it reads back exactly.
    let mut out = Vec::new();
    {
        let mut csv = ChunkedCsv::new(
            |bytes: Vec<u8>| {
                out.extend_from_slice(&bytes);
                true
            },
            bom,
            usize::from(chunk),
        );
        assert!(csv.row(["donor_name", "note", "amount"]));
        assert!(csv.row([cell.as_ref(), cell.as_ref(), "25.00"]));
        assert!(csv.flush());
    }
    let body = match out.strip_prefix(BOM) {
        Some(rest) => {
            assert!(bom, "a BOM was written without being asked for");
            rest
        }
        None => {
            assert!(!bom, "the BOM is missing");
            &out[..]
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{text:?}: the export does not read back: {e}"));
    assert_eq!(rows.len(), 1, "{text:?} read back as {rows:?}");
    let row = &rows[0];
    assert_eq!(row.len(), 3, "{text:?} read back as {row:?}");
    assert_eq!(&row[0], cell.as_ref());
    assert_eq!(&row[1], cell.as_ref());
    assert_eq!(&row[2], "25.00");
});
