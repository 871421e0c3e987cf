//! What may reach a terminal: text from hosts, files and inventories shown with its control
//! characters made visible, so no value can move the cursor, clear the screen or fake a line
//! of provision's own output.

/// `text` with terminal control characters made visible (`\x1b` for ESC), so that what a
/// host or a file holds can never move the cursor, clear the screen or fake a line of ours.
/// Newlines stay; tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(printable("a\x1b[2Jb\r\u{9b}c\nd\te"), "a\\x1b[2Jb\\x0d\\x9bc\nd\te");
        assert!(matches!(printable("plain é"), std::borrow::Cow::Borrowed(_)));
    }
}
