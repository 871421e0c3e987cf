//! Grammars for values that reach a language with no quoting we trust (a systemd unit's
//! `OnCalendar=`, an `authorized_keys` or `known_hosts` line) or that an action takes from
//! the command line (a file name, a database name). Each passes a value that matches and
//! refuses everything else with a message; none of them quotes or repairs. The sh and SQL
//! quoting stays in [`crate::shell`]; these only decide what may get there.

use crate::terminal::printable;
use minijinja::{Environment, Error, ErrorKind};

/// A file name (no directory): ASCII letters, digits and `. _ -`, at most 128 bytes, not
/// starting with `.` or `-` (no hidden file, no option, no `..`). For a file that must be in
/// a directory the action fixes itself: a `/` cannot pass, so nothing outside it can.
pub fn file_name(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && !v.starts_with('.')
        && !v.starts_with('-')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("`{}` is not a file name (letters, digits and . _ - only, not starting with . or -, no directory)", printable(v)))
    }
}

/// A database name: an ASCII letter or `_`, then letters, digits and `_`, at most 64 bytes
/// (MariaDB's limit). It is quoted as an identifier (`sql_ident`) wherever it reaches SQL
/// all the same; this keeps names a user types on a command line plain.
pub fn sql_name(v: &str) -> Result<String, String> {
    let ok = v.len() <= 64
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("`{}` is not a database name (a letter or _, then letters, digits and _, at most 64)", printable(v)))
    }
}

/// A systemd calendar expression for `OnCalendar=` (`daily`, `*-*-* 03:30:00`,
/// `Mon..Fri 02:00`, `hourly`): words of ASCII letters, digits and `* : , . / ~ + -`
/// separated by single spaces, at most 64 bytes, no word starting with `-`. A unit file is
/// line-based and expands `%` specifiers and `\` escapes, so a newline, `%`, `\` or a quote
/// cannot pass; systemd then checks the expression itself (`systemd-analyze verify`).
pub fn on_calendar(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.split(' ').all(|w| !w.is_empty() && !w.starts_with('-') && w.chars().all(|c| c.is_ascii_alphanumeric() || "*:,./~+-".contains(c)));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "`{}` is not a calendar expression (such as `daily` or `*-*-* 03:30:00`: words of letters, digits and * : , . / ~ + - separated by one space)",
            printable(v)
        ))
    }
}

/// A local account name, Debian's grammar (`useradd` with its default `NAME_REGEX`): a
/// lowercase letter or `_`, then lowercase letters, digits, `_` and `-`, at most 32 bytes.
/// The `user` module checks names with it; a template puts a user name into a config file
/// (an exim router, a mailbox path) with `{{ name | account_name }}`, so a quote, a space,
/// `$`, `/` or a newline cannot reach the file.
pub fn account_name(v: &str) -> Result<String, String> {
    let ok = v.len() <= 32
        && v.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("`{}` is not a user name (a lowercase letter or _, then lowercase letters, digits, _ and -, at most 32)", printable(v)))
    }
}

/// The key types an `authorized_keys` or `known_hosts` line may carry.
const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An OpenSSH public key (`ssh-ed25519 AAAA... comment`) as `TYPE BASE64`, the comment
/// dropped: the type is a known one and the base64 decodes to a key blob of that type. So
/// no option (`command=`, `from=`) and no second line can come in with a key.
pub fn ssh_public_key(v: &str) -> Result<String, String> {
    use base64::Engine;
    let bad = || format!("`{}` is not an OpenSSH public key (such as `ssh-ed25519 AAAAC3Nza... comment`)", printable(v));
    if v.contains(['\n', '\r', '\0']) {
        return Err(bad());
    }
    let mut words = v.split_ascii_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else { return Err(bad()) };
    if !KEY_TYPES.contains(&kind) || !blob.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)) {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(blob).map_err(|_| bad())?;
    // The blob starts with the key type as an SSH string: a 4-byte length, then the name.
    let named = bytes.get(..4).map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize).and_then(|n| bytes.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return Err(bad());
    }
    Ok(format!("{kind} {blob}"))
}

/// The grammars an action's arguments may name (`args: [{name: file, grammar: file_name}]`).
pub fn by_name(name: &str) -> Option<fn(&str) -> Result<String, String>> {
    match name {
        "file_name" => Some(file_name),
        "sql_name" => Some(sql_name),
        _ => None,
    }
}

/// The names [`by_name`] knows, for messages.
pub const ARG_GRAMMARS: [&str; 2] = ["file_name", "sql_name"];

/// The template filters of these grammars: `{{ x | on_calendar }}` and so on, each an error
/// naming the value when it does not match.
pub fn add_filters(env: &mut Environment<'static>) {
    fn filter(f: fn(&str) -> Result<String, String>) -> impl Fn(minijinja::Value) -> Result<String, Error> {
        move |v: minijinja::Value| {
            let text = if v.is_none() { String::new() } else { v.to_string() };
            f(&text).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
        }
    }
    env.add_filter("file_name", filter(file_name));
    env.add_filter("sql_name", filter(sql_name));
    env.add_filter("on_calendar", filter(on_calendar));
    env.add_filter("ssh_public_key", filter(ssh_public_key));
    env.add_filter("account_name", filter(account_name));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hostile rows every grammar here must refuse, whatever it passes otherwise.
    const HOSTILE: &[&str] = &["'", "\"", "\\", "$(id)", "`id`", "a\nb", "-rf", "a;b", "a b\n", "%n", "", "a\0b"];

    /// Each hostile value, alone, before a good one and after it (a `-` is hostile only at
    /// the start: `a-rf` is a fine name).
    fn hostile_around(good: &str) -> Vec<String> {
        HOSTILE
            .iter()
            .flat_map(|h| [Some(h.to_string()), Some(format!("{h}{good}")), (!h.starts_with('-')).then(|| format!("{good}{h}"))])
            .flatten()
            .filter(|v| v != good)
            .collect()
    }

    #[test]
    fn file_names_pass_and_paths_and_hostile_values_do_not() {
        for ok in ["flipper_test-20240101T030000Z.sql.gz", "a", "A.b-c_d"] {
            assert_eq!(file_name(ok).as_deref(), Ok(ok));
        }
        for bad in ["/etc/passwd", "../x.sql.gz", "a/b", ".hidden", "..", &"a".repeat(129)] {
            assert!(file_name(bad).is_err(), "{bad:?} must be refused");
        }
        for bad in hostile_around("x.sql.gz") {
            assert!(file_name(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn sql_names_pass_and_hostile_values_do_not() {
        for ok in ["flipper_test", "scratch1", "_x", &"a".repeat(64)] {
            assert_eq!(sql_name(ok).as_deref(), Ok(ok));
        }
        for bad in ["1abc", "a-b", "a.b", "a`b", "é", &"a".repeat(65)] {
            assert!(sql_name(bad).is_err(), "{bad:?} must be refused");
        }
        for bad in hostile_around("scratch") {
            assert!(sql_name(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn account_names_pass_and_hostile_values_do_not() {
        for ok in ["mailcatch", "_x", "deploy-2", "a", &"a".repeat(32)] {
            assert_eq!(account_name(ok).as_deref(), Ok(ok));
        }
        for bad in ["Mail", "1mail", "mail.catch", "mail/catch", "mail@x", "é", &"a".repeat(33)] {
            assert!(account_name(bad).is_err(), "{bad:?} must be refused");
        }
        for bad in hostile_around("mailcatch") {
            assert!(account_name(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn calendar_expressions_pass_and_hostile_values_do_not() {
        for ok in ["daily", "*-*-* 03:30:00", "Mon..Fri 02:00", "hourly", "*-*-1/2 04:00:00", "Sat *-*-* 01:00 UTC", "*:0/15"] {
            assert_eq!(on_calendar(ok).as_deref(), Ok(ok));
        }
        for bad in ["daily\nExecStart=/bin/sh", "daily  ", " daily", "%H", "daily -x", &"1".repeat(65)] {
            assert!(on_calendar(bad).is_err(), "{bad:?} must be refused");
        }
        for bad in hostile_around("daily") {
            assert!(on_calendar(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn public_keys_pass_without_comment_and_nothing_else_does() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert_eq!(ssh_public_key(&format!("{key} root@host")).as_deref(), Ok(key));
        assert_eq!(ssh_public_key(key).as_deref(), Ok(key));
        let blob = key.split(' ').nth(1).unwrap_or_default();
        for bad in [
            format!("command=\"/bin/sh\" {key}"),
            format!("ssh-rsa {blob}"),
            format!("{key}\nssh-ed25519 {blob}"),
            "ssh-ed25519 AAAA".to_string(),
            "ssh-ed25519 $(id)".to_string(),
            "ssh-ed25519".to_string(),
        ] {
            assert!(ssh_public_key(&bad).is_err(), "{bad:?} must be refused");
        }
        for bad in hostile_around(key) {
            // A hostile value after the key and a space is a comment, dropped; glued to the
            // key, it breaks the base64 or the type.
            if bad.starts_with(key) && (bad[key.len()..].starts_with(' ') || bad[key.len()..].is_empty()) {
                continue;
            }
            assert!(ssh_public_key(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_filters_refuse_in_templates() {
        let mut env = Environment::new();
        add_filters(&mut env);
        let ctx = minijinja::context! { s => "daily\nExecStart=/bin/sh", ok => "daily" };
        assert!(env.render_str("OnCalendar={{ s | on_calendar }}", ctx.clone()).is_err());
        assert_eq!(env.render_str("OnCalendar={{ ok | on_calendar }}", ctx).ok().as_deref(), Some("OnCalendar=daily"));
    }
}
