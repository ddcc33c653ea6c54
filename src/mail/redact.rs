//! What an SMTP error may say in the log: the text without the addresses mail servers quote.

/// `text` with every email address replaced by `[address]`: what an SMTP error says, fit
/// for the log (donor addresses appear in logs only at debug level).
pub fn without_addresses(text: &str) -> String {
    let separator = |c: char| c.is_whitespace() || "<>\"'(),;[]".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.contains('@') {
            out.push_str("[address]");
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars() {
        if separator(c) {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::without_addresses;

    #[test]
    fn smtp_errors_lose_their_addresses() {
        assert_eq!(
            without_addresses(
                "permanent error (550): 5.1.1 <Ann.Lee+x@mail.example>: Recipient address rejected"
            ),
            "permanent error (550): 5.1.1 <[address]>: Recipient address rejected"
        );
        assert_eq!(
            without_addresses("to ann@example.org, bo@example.org; done"),
            "to [address], [address]; done"
        );
        assert_eq!(
            without_addresses("connection refused"),
            "connection refused"
        );
    }
}
