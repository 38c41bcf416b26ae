//! Text from other people, as a terminal would show it.
//!
//! Message text, contact, card and group names come from other people. On a
//! terminal, control characters in them are commands: `ESC [ 2 J` clears the
//! screen, `ESC ] 52 ;` writes the clipboard, a carriage return overwrites
//! the line, and bidi overrides (U+202E) or invisible format characters make
//! one text look like another. [`for_terminal`] escapes all of those;
//! `--json` output keeps the exact text.

use std::fmt::Write;

/// Whether `c` is a Unicode format character (general category Cf):
/// invisible, and bidi controls among them.
pub fn is_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Whether `c` may not appear in a name: a control or format character.
pub fn is_unsafe_in_name(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// `text` safe to print on a terminal: control characters (C0, DEL, C1)
/// and format characters are written as `\x1b` or `\u{202e}`, a backslash as
/// `\\`. `multiline`: newlines and tabs stay (message text); otherwise they
/// are escaped too (names).
pub fn for_terminal(text: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if multiline => out.push(c),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if is_unsafe_in_name(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_commands_in_received_text_are_shown_not_run() {
        let attack = "hi\x1b[2J\x1b]52;c;cHduZWQ=\x07 \u{202e}gnp.exe\r!\u{9b}31m";
        let shown = for_terminal(attack, true);
        assert_eq!(
            shown,
            "hi\\x1b[2J\\x1b]52;c;cHduZWQ=\\x07 \\u{202e}gnp.exe\\x0d!\\u{9b}31m"
        );
        assert!(!shown.chars().any(is_unsafe_in_name));
        assert_eq!(
            for_terminal("two\nlines\tand tab", true),
            "two\nlines\tand tab"
        );
        assert_eq!(for_terminal("two\nlines", false), "two\\x0alines");
        // Escaping is not ambiguous: a literal backslash is doubled.
        assert_eq!(for_terminal("\\x1b", true), "\\\\x1b");
        assert_eq!(for_terminal("plain ünïcode 🙂", false), "plain ünïcode 🙂");
    }
}
