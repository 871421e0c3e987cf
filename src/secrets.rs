//! Secrets: the values that must never be printed (`!secret`, `!env`, a role's `secrets:`),
//! in every form they take on the way to a host, and the redaction of output.

use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The values that must never be printed. Every line of output passes through [`Secrets::redact`].
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: BTreeSet<String>,
    /// `!env NAME` references whose variable was not set (and `PROVISION_AGE_IDENTITY` for
    /// `!age` without an identity); an error when connecting.
    pub missing_env: Vec<String>,
    /// Where `!cmd` commands run and `!age` files are found: the inventory's directory.
    pub base_dir: Option<PathBuf>,
}

/// Percent-encoding of everything but RFC 3986's unreserved characters (what `urlencode`
/// and most URL builders produce for a password).
fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a secret shows as.
pub const REDACTED: &str = "(secret)";

/// The shortest line of a multi-line secret that is tracked on its own.
const MIN_SECRET_LINE: usize = 8;

impl Secrets {
    /// Marks `value` as secret.
    pub fn add(&mut self, value: &str) {
        // A one- or two-character secret would redact ordinary text everywhere; such a
        // value is no secret anyway, so it is not tracked.
        if value.len() < 3 {
            return;
        }
        // The forms a secret takes on its way to a host or into output: quoted for sh or
        // SQL, escaped for JSON or an option file, url-encoded, base64 (a heredoc). Each is
        // redacted like the value itself.
        let mut forms = vec![
            value.to_string(),
            crate::shell::quote(value),
            crate::shell::sql_string(value),
            serde_json::to_string(value).unwrap_or_default().trim_matches('"').to_string(),
            url_encode(value),
            {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(value)
            },
        ];
        forms.extend(crate::shell::mycnf_value(value).ok());
        // A multi-line secret (a key file) shows line by line: in a diff, in output redacted
        // per line, in content a filter reshaped (`indent`). Each line of some length is a
        // secret of its own (short ones, such as a blank or a brace, are not).
        if value.contains('\n') {
            forms.extend(value.lines().map(str::trim).filter(|l| l.len() >= MIN_SECRET_LINE).map(String::from));
        }
        for f in forms {
            if f.len() >= 3 {
                self.values.insert(f);
            }
        }
    }

    pub fn merge(&mut self, other: &Secrets) {
        self.values.extend(other.values.iter().cloned());
        self.missing_env.extend(other.missing_env.iter().cloned());
    }

    /// Whether `text` contains any secret.
    /// How many forms of secrets are tracked (it only grows).
    pub fn count(&self) -> usize {
        self.values.len()
    }

    pub fn touches(&self, text: &str) -> bool {
        self.values.iter().any(|s| text.contains(s.as_str()))
    }

    /// Like [`Secrets::redact`], and also every run of 10 or more characters of a secret
    /// (of 12 or more): for what a host says back, such as a database error that quotes part
    /// of the statement (`near '...'`) from the middle of a password.
    pub fn redact_error(&self, text: &str) -> String {
        let mut out = self.redact(text);
        // Long enough that ordinary words of a host's message are not taken for a secret.
        const RUN: usize = 10;
        for secret in self.values.iter().filter(|s| s.chars().count() >= 12) {
            let chars: Vec<char> = secret.chars().collect();
            for start in 0..=chars.len() - RUN {
                let window: String = chars[start..start + RUN].iter().collect();
                if REDACTED.contains(&window) {
                    continue;
                }
                while let Some(at) = out.find(&window) {
                    // Grow the match as far as the secret and the text agree.
                    let mut end = at + window.len();
                    let mut k = start + RUN;
                    while k < chars.len() && out[end..].starts_with(chars[k]) {
                        end += chars[k].len_utf8();
                        k += 1;
                    }
                    out.replace_range(at..end, REDACTED);
                }
            }
        }
        out
    }

    /// `text` with every secret replaced by `(secret)`. Longest first, so that a secret
    /// containing another is replaced whole.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut by_len: Vec<&String> = self.values.iter().collect();
        by_len.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in by_len {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

/// The output of a command run on the controller for a secret: `!cmd` (the inventory
/// author's command, in sh, like Kamal's secrets) or `!age` (the `age` tool, arguments
/// passed as such). Run once per command and directory however many hosts read it; its
/// output is never printed, and an error shows the command, its status and its first
/// line on stderr.
fn secret_output(program: &str, args: &[&str], dir: Option<&Path>, what: &str) -> Result<String, String> {
    use std::collections::HashMap;
    type Seen = HashMap<(Option<PathBuf>, Vec<String>), Result<String, String>>;
    static SEEN: std::sync::Mutex<Option<Seen>> = std::sync::Mutex::new(None);
    let key = (dir.map(Path::to_path_buf), std::iter::once(program).chain(args.iter().copied()).map(String::from).collect::<Vec<_>>());
    if let Some(known) = SEEN.lock().ok().and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned())) {
        return known;
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null());
    if let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        cmd.current_dir(d);
    }
    let result = match cmd.output() {
        Err(e) => Err(format!("{what}: cannot run `{program}`: {e}")),
        Ok(o) if o.status.success() => {
            let out = String::from_utf8(o.stdout).map_err(|_| format!("{what}: the output is not UTF-8 text"))?;
            Ok(out.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&out).to_string())
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let first: String = err.lines().next().unwrap_or("").chars().take(200).collect();
            Err(format!("{what} failed ({}): {}", o.status, crate::terminal::printable(&first)))
        }
    };
    if let Ok(mut m) = SEEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, result.clone());
    }
    result
}

/// The age identity file `!age` decrypts with: `$PROVISION_AGE_IDENTITY`.
fn age_identity() -> Option<String> {
    std::env::var("PROVISION_AGE_IDENTITY").ok().filter(|p| !p.is_empty())
}

/// Replaces `!secret VALUE` by VALUE, `!env NAME` by the environment's value, `!cmd "CMD"`
/// by what CMD prints (run by sh on the controller, in the inventory's directory) and
/// `!age FILE` by FILE decrypted with the `age` tool, recording each as a secret.
pub fn extract_secrets(value: Value, secrets: &mut Secrets) -> Result<Value, String> {
    extract(value, secrets, true)
}

/// [`extract_secrets`] for a role's defaults: a role may declare `!secret` and `!env`, but
/// never run a command or decrypt a file on the controller (a role may come from anyone).
pub fn extract_role_secrets(value: Value, secrets: &mut Secrets) -> Result<Value, String> {
    extract(value, secrets, false)
}

fn extract(value: Value, secrets: &mut Secrets, commands: bool) -> Result<Value, String> {
    Ok(match value {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let inner = crate::yaml::scalar_string(&t.value)
                .ok_or_else(|| format!("`{tag}` must be followed by a string"))?;
            match tag.as_str() {
                "!secret" => {
                    secrets.add(&inner);
                    Value::String(inner)
                }
                "!env" => match std::env::var(&inner) {
                    Ok(v) => {
                        secrets.add(&v);
                        Value::String(v)
                    }
                    Err(_) => {
                        // The stand-in is a secret too: `validate` without the environment
                        // still finds the secret on a command line, in a path, in a name.
                        secrets.missing_env.push(inner.clone());
                        let stand_in = format!("(unset environment variable {inner})");
                        secrets.add(&stand_in);
                        Value::String(stand_in)
                    }
                },
                "!cmd" | "!age" if !commands => {
                    return Err(format!("`{tag}` is for inventories: a role's defaults must not run commands or decrypt files on this machine; put the value in the inventory"))
                }
                "!cmd" => {
                    let v = secret_output("sh", &["-c", &inner], secrets.base_dir.as_deref(), &format!("`!cmd {inner}`"))?;
                    if v.is_empty() {
                        return Err(format!("`!cmd {inner}` printed nothing: a secret cannot be empty"));
                    }
                    secrets.add(&v);
                    Value::String(v)
                }
                "!age" => match age_identity() {
                    Some(identity) => {
                        let v = secret_output("age", &["--decrypt", "--identity", &identity, "--", &inner], secrets.base_dir.as_deref(), &format!("`!age {inner}`"))?;
                        secrets.add(&v);
                        Value::String(v)
                    }
                    None => {
                        secrets.missing_env.push("PROVISION_AGE_IDENTITY".into());
                        let stand_in = format!("(no age identity to decrypt {inner})");
                        secrets.add(&stand_in);
                        Value::String(stand_in)
                    }
                },
                other => return Err(format!("unknown tag `{other}`; use `!secret`, `!env`, `!cmd` or `!age`")),
            }
        }
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in m {
                out.insert(k, extract(v, secrets, commands)?);
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => {
            Value::Sequence(items.into_iter().map(|v| extract(v, secrets, commands)).collect::<Result<_, _>>()?)
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn redacts_longest_first() {
        let mut s = Secrets::default();
        s.add("hunter2");
        s.add("hunter2-extra");
        assert_eq!(s.redact("pw=hunter2-extra and hunter2"), "pw=(secret) and (secret)");
    }

    #[test]
    fn secret_tags_are_unwrapped_and_recorded() {
        let v: Value = serde_yaml::from_str("a: !secret topsecret\nb: [1, !secret other]\n").unwrap();
        let mut s = Secrets::default();
        let v = extract_secrets(v, &mut s).unwrap();
        assert_eq!(v["a"], Value::from("topsecret"));
        assert!(s.touches("x topsecret y"));
        assert!(s.touches("other"));
    }

    #[test]
    fn a_quoted_piece_of_a_secret_is_redacted_in_errors() {
        let mut s = Secrets::default();
        s.add("correct-horse-battery");
        let e = s.redact_error("ERROR 1064: near 'horse-battery' at line 1; correct-horse-battery; a horse");
        assert_eq!(e, "ERROR 1064: near '(secret)' at line 1; (secret); a horse");
        assert_eq!(s.redact_error("no secret here"), "no secret here");
    }
}

