//! Shell building blocks: quoting and payloads. Every remote command is built from these,
//! so quoting is done in one place.

use base64::Engine;

/// `s` quoted for POSIX sh. NUL bytes cannot be passed through sh at all; they are dropped
/// (paths and names are validated earlier, so this never alters a real value).
pub fn quote(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '\0').collect();
    if !clean.is_empty() && clean.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) {
        return clean;
    }
    format!("'{}'", clean.replace('\'', "'\"'\"'"))
}

/// The items quoted and joined by spaces.
pub fn quote_all<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items.into_iter().map(|s| quote(s.as_ref())).collect::<Vec<_>>().join(" ")
}

/// A here-document carrying `bytes` as base64, to be fed to `base64 -d`. Content travels
/// inside the script on stdin, never on a command line (where `ps` would show it).
/// Returns `<<'PV_EOF'\n...\nPV_EOF\n`.
pub fn heredoc_base64(bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 + 32);
    out.push_str("<<'PV_EOF'\n");
    for chunk in b64.as_bytes().chunks(76) {
        // base64 output is ASCII, so the chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("PV_EOF\n");
    out
}

/// The sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(quote("/etc/nginx/nginx.conf"), "/etc/nginx/nginx.conf");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\"'\"'s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn sha256_matches_coreutils() {
        assert_eq!(sha256_hex(b"hello\n"), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    }
}
