//! The one way text reaches a remote shell, and the one way values reach SQL.
//!
//! A remote script is a [`Script`]. Its text is private: a `Script` is made only by
//!
//! - [`sh!`](crate::sh), whose format string is a literal written in this repository (checked at
//!   compile time to have only `{}` placeholders) and whose every argument is inserted through
//!   [`ShellArg`]: a string is quoted by [`quote`], a number is written as digits, and another
//!   `Script` is inserted as the code it already is;
//! - [`Script::user_code`], for the code a role's author wrote (`command: run:`, `unless:`,
//!   `validate:`, an action's `run:`). Template values inside it were quoted when it was
//!   rendered (see [`crate::template::Templates::render_code`]), so even there no value
//!   becomes code.
//!
//! The transport runs only `Script`s, so a value pasted into a script with `format!` does not
//! compile. `tests/shell_discipline.rs` checks that `user_code` is called only where a role's own
//! code is handled and that no other module builds script text.
//!
//! Values reach SQL through [`sql_string`] and [`sql_ident`], and MariaDB option files through
//! [`mycnf_value`].

use base64::Engine;
use std::fmt;

/// POSIX sh code, built only from literals and quoted values. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script(String);

impl Script {
    pub fn new() -> Script {
        Script(String::new())
    }

    /// The code a role's author wrote (a `command`'s `run`, an `unless` guard, a `validate`
    /// command, an action). The only constructor that takes text as code.
    pub fn user_code(code: impl Into<String>) -> Script {
        Script(code.into())
    }

    /// Used by [`sh!`](crate::sh) only: its literal and quoted arguments, formatted.
    #[doc(hidden)]
    pub fn from_checked_format(args: fmt::Arguments) -> Script {
        Script(fmt::format(args))
    }

    /// Appends `more` as it is.
    pub fn push(&mut self, more: Script) -> &mut Script {
        self.0.push_str(&more.0);
        self
    }

    /// Appends `more` and ends it with a newline if it has none.
    pub fn line(&mut self, more: Script) -> &mut Script {
        self.0.push_str(&more.0);
        if !self.0.ends_with('\n') {
            self.0.push('\n');
        }
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This code with each `%s` (the file placeholder of `validate: visudo -cf %s`) replaced
    /// by `file`.
    pub fn with_file_placeholder(&self, file: Script) -> Script {
        Script(self.0.replace("%s", &file.0))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ends_with(&self, s: &str) -> bool {
        self.0.ends_with(s)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Reading a script's text is harmless; only making one is restricted.
impl std::ops::Deref for Script {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for Script {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl FromIterator<Script> for Script {
    fn from_iter<I: IntoIterator<Item = Script>>(iter: I) -> Script {
        let mut s = Script::new();
        for part in iter {
            s.push(part);
        }
        s
    }
}

/// How a value is written into a script.
pub trait ShellArg {
    fn write_sh(&self, out: &mut String);
}

impl ShellArg for str {
    fn write_sh(&self, out: &mut String) {
        out.push_str(&quote(self));
    }
}
impl ShellArg for String {
    fn write_sh(&self, out: &mut String) {
        out.push_str(&quote(self));
    }
}
impl ShellArg for Script {
    fn write_sh(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}
impl<T: ShellArg + ?Sized> ShellArg for &T {
    fn write_sh(&self, out: &mut String) {
        (**self).write_sh(out)
    }
}
macro_rules! digits {
    ($($t:ty),*) => {$(impl ShellArg for $t {
        fn write_sh(&self, out: &mut String) {
            out.push_str(&self.to_string());
        }
    })*};
}
digits!(u8, u16, u32, u64, usize, i32, i64);

/// A list of values, each quoted, separated by spaces: `a 'b c' d`.
pub struct Words<'a, T>(pub &'a [T]);

impl<T: AsRef<str>> ShellArg for Words<'_, T> {
    fn write_sh(&self, out: &mut String) {
        out.push_str(&quote_all(self.0.iter()));
    }
}

/// Values as the alternatives of a `case` pattern, each quoted so it matches literally:
/// `'a b'|c`.
pub struct Alternatives<'a, T>(pub &'a [T]);

impl<T: AsRef<str>> ShellArg for Alternatives<'_, T> {
    fn write_sh(&self, out: &mut String) {
        out.push_str(&self.0.iter().map(|s| quote(s.as_ref())).collect::<Vec<_>>().join("|"));
    }
}

/// An argument of [`sh!`](crate::sh), displayed in its quoted form.
#[doc(hidden)]
pub struct Quoted<'a, T: ?Sized>(pub &'a T);

impl<T: ShellArg + ?Sized> fmt::Display for Quoted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.0.write_sh(&mut s);
        f.write_str(&s)
    }
}

/// Whether a format string has only `{}` placeholders (and `{{`/`}}` escapes). Named or
/// implicitly captured placeholders would let a value in unquoted, so [`sh!`](crate::sh)
/// refuses them at compile time.
pub const fn placeholders_are_positional(fmt: &str) -> bool {
    let b = fmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            if i + 1 < b.len() && (b[i + 1] == b'{' || b[i + 1] == b'}') {
                i += 2;
                continue;
            }
            return false;
        }
        if b[i] == b'}' {
            if i + 1 < b.len() && b[i + 1] == b'}' {
                i += 2;
                continue;
            }
            return false;
        }
        i += 1;
    }
    true
}

/// Builds a [`Script`]: `sh!("chmod {} -- {}", 0o644, path)`. Only `{}` placeholders; every
/// argument is written through [`ShellArg`] (strings quoted).
#[macro_export]
macro_rules! sh {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        const _: () = assert!(
            $crate::shell::placeholders_are_positional($fmt),
            "sh!: use `{{}}` placeholders only, so that every value is passed as an argument and quoted"
        );
        $crate::shell::Script::from_checked_format(format_args!($fmt $(, $crate::shell::Quoted(&$arg))*))
    }};
}

/// `s` quoted for POSIX sh: one word, whatever it holds. NUL bytes cannot be passed through
/// sh at all; they are dropped (paths and names are validated earlier).
pub fn quote(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '\0').collect();
    if !clean.is_empty() && clean.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c)) && !clean.starts_with('-') {
        return clean;
    }
    // A leading `-` stays quoted too: quoting does not stop option parsing, but a quoted
    // word shows that the caller knew; paths reach tools after `--` or as absolute paths.
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
/// Returns `<<'PV_EOF'\n...\nPV_EOF\n`; base64 never contains the terminator.
pub fn heredoc_base64(bytes: &[u8]) -> Script {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 + 32);
    out.push_str("<<'PV_EOF'\n");
    for chunk in b64.as_bytes().chunks(76) {
        // base64 output is ASCII, so the chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("PV_EOF\n");
    Script(out)
}

/// A value as a MariaDB/MySQL string literal: `'...'` with `\`, `'`, NUL, newline, CR and
/// Ctrl-Z escaped. Assumes the server's default `sql_mode` (no `NO_BACKSLASH_ESCAPES`); the
/// SQL that provision feeds to `mysql` turns that mode off for its session first
/// ([`SQL_SESSION_PRELUDE`]).
pub fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Makes [`sql_string`]'s escapes mean what they say whatever the server's `sql_mode`.
pub const SQL_SESSION_PRELUDE: &str = "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '');\n";

/// A name as a MariaDB/MySQL quoted identifier: `` `na``me` ``. NUL cannot be in one.
pub fn sql_ident(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('\0') {
        return Err("an SQL name cannot be empty or hold a NUL byte".into());
    }
    Ok(format!("`{}`", s.replace('`', "``")))
}

/// A value for a MariaDB option file (`password = ...` in client.cnf): double-quoted, with `\`
/// and `"` escaped, so `#`, `'`, spaces and leading or trailing blanks survive as written.
/// A newline cannot be carried (the file is line-based) and is refused.
pub fn mycnf_value(s: &str) -> Result<String, String> {
    if s.contains('\n') || s.contains('\r') || s.contains('\0') {
        return Err("a value in a MariaDB option file cannot hold a newline".into());
    }
    Ok(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// A value for an environment file that both systemd (`EnvironmentFile=`) and sh (`set -a;
/// . FILE`) read as exactly this value: sh-quoted, which systemd's parser reads the same way.
/// A newline is refused: systemd and sh disagree about it.
pub fn env_file_value(s: &str) -> Result<String, String> {
    if s.contains('\n') || s.contains('\r') || s.contains('\0') {
        return Err("a value in an environment file cannot hold a newline".into());
    }
    Ok(quote(s))
}

/// A value as a Ruby single-quoted string literal (`'it\\'s'`): inside one only `\\` and `'`
/// are special, so no `#{...}` interpolation can run. For Ruby config files (puma.rb, faye.ru).
pub fn ruby_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Lines that provision's scripts print for the controller start with this.
pub const MARK: &str = "@@PV";

/// The one parser of marker lines: `@@PV name rest` gives `(name, rest)`.
pub fn marker(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(MARK)?.strip_prefix(' ')?;
    Some(rest.split_once(' ').unwrap_or((rest, "")))
}

/// Sh that prints the marker line `@@PV name` (the name is a literal of ours).
pub fn mark(name: &'static str) -> Script {
    sh!("echo {}\n", format!("{MARK} {name}"))
}

/// A value for redis.conf: one double-quoted argument as redis reads them (`\\`, `\"` and
/// every byte that is not printable ASCII escaped), so a value is one argument of one
/// directive whatever it holds.
pub fn redis_string(v: &str) -> String {
    let mut out = String::from("\"");
    for b in v.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// A value percent-encoded for one part of a URL (a password in `redis://:PW@host`): every
/// byte but letters, digits and `- . _ ~` encoded (`urlencode` keeps `/`, which would end
/// the part).
pub fn uri_component(v: &str) -> String {
    v.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// An IP address (no network), for a server's listening address.
pub fn ip_address(v: &str) -> Result<String, String> {
    v.parse::<std::net::IpAddr>().map(|ip| ip.to_string()).map_err(|_| format!("`{}` is not an IP address", crate::terminal::printable(v)))
}

/// An absolute path made of letters, digits and `/ . _ - + @` only, for a configuration
/// language with no quoting we trust (logrotate's): anything else is an error, so a value
/// can never add a directive there.
pub fn plain_path(v: &str) -> Result<String, String> {
    let ok = v.starts_with('/') && !v.contains("/../") && !v.ends_with("/..") && v.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("`{}` is not a plain absolute path (letters, digits and / . _ - + @ only)", crate::terminal::printable(v)))
    }
}

/// A host name for nginx's `server_name`, a certificate and an ACME order: dot-separated
/// labels of letters, digits and inner `-` (1 to 63 bytes each, 253 in all), or `_` (nginx's
/// "any name"). Nothing else, so a name can add no directive to a config, no option to a
/// command, and no other name to a certificate; a wildcard is refused too (HTTP-01 cannot
/// prove one).
pub fn server_name(v: &str) -> Result<String, String> {
    if v == "_" {
        return Ok(v.to_string());
    }
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if v.len() <= 253 && v.split('.').all(label_ok) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(format!("`{}` is not a host name (dot-separated labels of letters, digits and inner `-`, such as www.example.com; several names are a list)", crate::terminal::printable(v)))
    }
}

/// An IP address or network (`10.0.0.0/24`, `fd00::/8`, `192.0.2.1`) in its canonical
/// form, for a firewall rule set; anything else is an error, so no other text reaches it.
pub fn ip_network(v: &str) -> Result<String, String> {
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| format!("`{}` is not an IP address or network (such as 10.0.0.0/24 or fd00::/8)", crate::terminal::printable(v)))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Ok(ip.to_string()),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p == n.to_string() => Ok(format!("{ip}/{n}")),
            _ => Err(format!("`{}`: the prefix length must be a number from 0 to {max}", crate::terminal::printable(v))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_strings_are_one_argument_whatever_they_hold() {
        assert_eq!(redis_string("256mb"), "\"256mb\"");
        assert_eq!(redis_string("a\"b\\c'd $(x)"), "\"a\\\"b\\\\c'd $(x)\"");
        assert_eq!(redis_string("x\nrequirepass y"), "\"x\\x0arequirepass y\"");
        assert_eq!(redis_string("-é"), "\"-\\xc3\\xa9\"");
        assert!(ip_address("10.0.0.1").is_ok() && ip_address("::1").is_ok());
        assert_eq!(uri_component("a/b c:@%+~é"), "a%2Fb%20c%3A%40%25%2B~%C3%A9");
        for bad in ["10.0.0.0/8", "10.0.0.1 0.0.0.0", "-1", "-10.0.0.1", "", "localhost", "10.0.0.1\nprotected-mode no", "'10.0.0.1'", "\"10.0.0.1\"", "10.0.0.1\\", "$(id)"] {
            assert!(ip_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_path_passes_plain_paths_and_nothing_else() {
        for ok in ["/var/www/shop", "/srv/a-b_c.d/e+f@g", "/"] {
            assert_eq!(plain_path(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "var/www", "/var/www/x {", "/var/www/x\n}", "/a b", "/a'b", "/a\"b", "/a\\b", "/$(id)", "/a/../etc", "/a/..", "/a;b", "/*", "-/var/www"] {
            assert!(plain_path(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn ip_network_passes_addresses_and_networks_and_nothing_else() {
        for (ok, want) in [("10.0.0.1", "10.0.0.1"), ("10.0.0.0/24", "10.0.0.0/24"), ("0.0.0.0/0", "0.0.0.0/0"), ("::/0", "::/0"), ("fd00:0::1/64", "fd00::1/64")] {
            assert_eq!(ip_network(ok).as_deref(), Ok(want), "{ok}");
        }
        for bad in ["", "10.0.0.1 }", "10.0.0.0/24, 0.0.0.0/0", "10.0.0.0/33", "::/129", "10.0.0.0/024", "10.0.0.0/-1", "web1.example.com", "10.0.0.1\naccept", "$(id)", "'10.0.0.1'", "\"10.0.0.1\"", "\\x", "-10.0.0.1", "10.0.0.0/24 accept"] {
            assert!(ip_network(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn server_name_passes_host_names_and_nothing_else() {
        for (ok, want) in [("example.com", "example.com"), ("WWW.Example.com", "www.example.com"), ("web1", "web1"), ("xn--bcher-kva.de", "xn--bcher-kva.de"), ("_", "_"), ("a-b.c0", "a-b.c0")] {
            assert_eq!(server_name(ok).as_deref(), Ok(want), "{ok}");
        }
        let long = format!("{}.com", "a".repeat(64));
        for bad in ["", ".", "a..b", "a.", ".a", "-a.com", "a-.com", "a b.com", "a.com b.com", "*.example.com", "a_b.com", "a'b", "a\"b", "a\\b", "$(id).com", "`id`", "a\nb", "a;b", "a{b}", "é.com", "__", long.as_str()] {
            assert!(server_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    /// Runs `script` with /bin/sh and returns its stdout.
    fn run(script: &Script) -> String {
        let out = std::process::Command::new("sh").arg("-c").arg(script.as_str()).output().expect("sh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    const HOSTILE: &[&str] = &[
        "'", "\"", "\\", "$(echo pwned)", "`echo pwned`", ";echo pwned", "a\nb", "-rf", "a b", "#x", "%s%n", "\x1b[2J", "é∂",
        "${HOME}", "*", "~root", "!", "&", "|", "<>", "{a,b}", "'\"'\"'", "",
    ];

    #[test]
    fn every_hostile_value_arrives_as_one_word_unchanged() {
        for v in HOSTILE {
            let out = run(&sh!("printf '[%s]' {}", *v));
            assert_eq!(out, format!("[{v}]"), "value {v:?}");
            let out = run(&sh!("set -- {} {}; printf '%s' \"$#\"", *v, "x"));
            assert_eq!(out, "2", "value {v:?} split into words");
        }
    }

    #[test]
    fn scripts_compose_and_numbers_are_digits() {
        let inner = sh!("printf '%s' {}", "a b");
        let outer = sh!("{}; printf ' %o' {}", inner, 0o644u32);
        assert_eq!(run(&outer), "a b 644");
    }

    #[test]
    fn only_positional_placeholders_pass_the_check() {
        assert!(placeholders_are_positional("a {} b {{x}} ${{y}}"));
        assert!(!placeholders_are_positional("a {p}"));
        assert!(!placeholders_are_positional("a {0}"));
        assert!(!placeholders_are_positional("a {:?}"));
    }

    #[test]
    fn quotes_for_sh() {
        assert_eq!(quote("/etc/nginx/nginx.conf"), "/etc/nginx/nginx.conf");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\"'\"'s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("-rf"), "'-rf'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn sql_strings_escape_what_mariadb_reads_specially() {
        assert_eq!(sql_string("a'b"), r"'a\'b'");
        assert_eq!(sql_string(r"a\b"), r"'a\\b'");
        assert_eq!(sql_string("a\nb\0"), r"'a\nb\0'");
        assert_eq!(sql_ident("my`db").as_deref(), Ok("`my``db`"));
        assert!(sql_ident("").is_err());
    }

    #[test]
    fn ruby_strings_cannot_interpolate() {
        assert_eq!(ruby_string("a'b\\#{x}"), "'a\\'b\\\\#{x}'");
    }

    #[test]
    fn option_file_values_are_double_quoted() {
        assert_eq!(mycnf_value(r#"a"b\c #d"#).as_deref(), Ok(r#""a\"b\\c #d""#));
        assert!(mycnf_value("a\nb").is_err());
    }

    #[test]
    fn markers_parse_once() {
        assert_eq!(marker("@@PV ok 3"), Some(("ok", "3")));
        assert_eq!(marker("@@PV end"), Some(("end", "")));
        assert_eq!(marker("@@PVX end"), None);
        assert_eq!(run(&mark("end")), "@@PV end\n");
    }

    #[test]
    fn sha256_matches_coreutils() {
        assert_eq!(sha256_hex(b"hello\n"), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    }
}
