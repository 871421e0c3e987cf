//! `sudoers`: rules in `/etc/sudoers.d/NAME`, mode 0440, root:root. The content is checked
//! with `visudo -cf` on the host during the probe (so `--check` reports a bad rule) and
//! again on the temp file before it is renamed into place, so a rule visudo rejects never
//! lands and the old file stays.

use super::file::{FileResource, FileSpec, FileState};
use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts};
use crate::plan::{Change, PlanContext};

pub struct SudoersModule;

#[derive(Debug)]
pub struct Sudoers(FileResource);

impl Resource for Sudoers {
    fn kind(&self) -> &'static str {
        "sudoers"
    }
    fn target(&self) -> String {
        self.0 .0.path.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        self.0.probe(req)
    }
    fn plan(&self, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String> {
        let mut c = self.0 .0.plan("sudoers", facts, cx)?;
        if let Some(c) = c.as_mut() {
            c.login_file = Some(self.0 .0.path.clone());
        }
        Ok(c)
    }
}

/// Whether sudo would read a drop-in of this name: it silently skips names with a `.` or
/// ending in `~`, which would leave a rule that seems installed but is not.
fn check_name(name: &str) -> Result<(), String> {
    if name.contains('.') || name.ends_with('~') {
        return Err(format!("sudo ignores files in /etc/sudoers.d whose name contains `.` or ends in `~`, so `{}` would never apply", crate::terminal::printable(name)));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || name.starts_with('-') {
        return Err(format!("`{}` is not a plain file name (letters, digits, `-` and `_`)", crate::terminal::printable(name)));
    }
    Ok(())
}

/// A sudoers user or runas entry: an account name (`deploy`), `%group`, or for runas the
/// keyword `ALL`. Nothing else: a `,`, `=`, `:`, space or newline would start another entry,
/// another rule or another line (`"ALL ALL=(ALL) NOPASSWD: ALL\nx"` once gave everyone root).
fn check_principal(s: &str, key: &str) -> Result<(), String> {
    let name = s.strip_prefix('%').unwrap_or(s);
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok || (key == "runas" && s == "ALL") {
        return Ok(());
    }
    if s == "ALL" {
        return Err("`user: ALL` would give the rule to every user on the host".into());
    }
    Err(format!("`{key}: {}` is not a user name or `%group`", crate::terminal::printable(s)))
}

/// One command of a rule: `ALL`, or an absolute path and its arguments. Arguments are
/// written with sudoers' escapes for `\\ , : =`; characters that widen a rule (`*`, `?`,
/// `[`, `!`) or that sudoers reads as syntax (`#`, `"`, `(`, `)`, quotes) are refused, and so
/// is anything outside printable ASCII.
fn command_entry(c: &str) -> Result<String, String> {
    if c == "ALL" {
        return Ok("ALL".into());
    }
    let (path, args) = c.split_once(' ').unwrap_or((c, ""));
    let path_ok = path.starts_with('/')
        && !path.split('/').any(|p| p == ".." || p == ".")
        && path.chars().all(|ch| ch.is_ascii_alphanumeric() || "/_.+-".contains(ch));
    if !path_ok {
        return Err(format!(
            "sudoers command `{}` does not start with an absolute program path",
            crate::terminal::printable(c)
        ));
    }
    let mut out = path.to_string();
    for arg in args.split(' ').filter(|a| !a.is_empty()) {
        out.push(' ');
        for ch in arg.chars() {
            match ch {
                // A comma separates commands in sudoers: one command per item instead.
                ',' => return Err(format!("sudoers command `{}` has a `,`; list each command as its own item", crate::terminal::printable(c))),
                '\\' | ':' | '=' => {
                    out.push('\\');
                    out.push(ch);
                }
                ch if ch.is_ascii_alphanumeric() || "/_.+-@%~^".contains(ch) => out.push(ch),
                ch => {
                    return Err(format!(
                        "sudoers command `{}` has `{}`, which sudoers reads as a pattern or as syntax",
                        crate::terminal::printable(c),
                        crate::terminal::printable(&ch.to_string())
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// Renders one rule line from checked parts.
fn rule(user: &str, runas: &str, nopasswd: bool, commands: &[String]) -> String {
    let tag = if nopasswd { "NOPASSWD: " } else { "" };
    format!("{user} ALL=({runas}) {tag}{}\n", commands.join(", "))
}

impl Module for SudoersModule {
    fn name(&self) -> &'static str {
        "sudoers"
    }

    fn lower(&self, args: &Args, _cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("sudoers")?;
        let name = r.string("name", "`sudoers`")?;
        check_name(&name).map_err(|e| {
            args.doc.value_error(&r.path_of("name"), e).help("use letters, digits, `-` and `_` only, such as `deploy-sidekiq`")
        })?;
        let user = r.string("user", "`sudoers`")?;
        check_principal(&user, "user")
            .map_err(|e| args.doc.value_error(&r.path_of("user"), e).help("name one user (`deploy`) or one group (`%admins`)"))?;
        let runas = r.opt_string("runas")?.unwrap_or_else(|| "root".into());
        check_principal(&runas, "runas")
            .map_err(|e| args.doc.value_error(&r.path_of("runas"), e).help("name one user (`root`) or `%group`, or `ALL`"))?;
        let nopasswd = r.opt_bool("nopasswd")?.unwrap_or(true);
        let commands = r.opt_strings("commands")?.unwrap_or_default();
        let commands_path = r.path_of("commands");
        r.finish("`sudoers` arguments")?;
        if commands.is_empty() {
            return Err(args.error("`sudoers` has no `commands`").help("list the exact commands, such as `/usr/bin/systemctl restart sidekiq`"));
        }
        let mut entries = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            let at = crate::yaml::index(&commands_path, i);
            entries.push(command_entry(c).map_err(|e| {
                args.doc.value_error(&at, e).help("write one command per item: an absolute path and plain arguments, such as `/usr/bin/systemctl restart sidekiq`")
            })?);
        }
        if entries.len() > 1 && entries.iter().any(|e| e == "ALL") {
            return Err(args.doc.value_error(&commands_path, "`ALL` stands alone: with it, the other commands mean nothing").help("write `commands: [ALL]`, or list the commands without `ALL`"));
        }
        let content = format!("# managed by provision\n{}", rule(&user, &runas, nopasswd, &entries));
        let mut spec = FileSpec::new(format!("/etc/sudoers.d/{name}"), FileState::Present { content: content.into_bytes(), secret: false });
        spec.owner = Some("root".into());
        spec.group = Some("root".into());
        spec.mode = Some(0o440);
        spec.validate = Some(crate::sh!("visudo -cf %s"));
        Ok(vec![Box::new(Sudoers(FileResource(spec)))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sudo_would_skip_are_rejected() {
        assert!(check_name("deploy").is_ok());
        assert!(check_name("deploy.conf").is_err());
        assert!(check_name("deploy~").is_err());
    }

    #[test]
    fn principals_and_commands_follow_the_grammar() {
        for bad in ["ALL ALL=(ALL) NOPASSWD: ALL\ninjuser", "a,b", "a b", "a=b", "a:b", "ALL", "-x", "Root", "", "é"] {
            assert!(check_principal(bad, "user").is_err(), "{bad:?}");
        }
        for good in ["deploy", "%admins", "_svc", "deploy-1"] {
            assert!(check_principal(good, "user").is_ok(), "{good:?}");
        }
        assert!(check_principal("ALL", "runas").is_ok());
        for bad in ["restart sidekiq, ALL", "/usr/bin/systemctl restart x, ALL", "/bin/sh -c *", "/usr/bin/x \"a\"", "/usr/bin/x #1", "/usr/bin/x !y", "/usr/bin/../bin/sh", "/usr/bin/x\nALL ALL=(ALL) ALL", "bin/x"] {
            assert!(command_entry(bad).is_err(), "{bad:?}");
        }
        assert_eq!(command_entry("/usr/bin/systemctl kill --kill-who=main -s TSTP a:b").unwrap(), "/usr/bin/systemctl kill --kill-who\\=main -s TSTP a\\:b");
    }

    #[test]
    fn renders_a_rule() {
        assert_eq!(
            rule("deploy", "root", true, &["/usr/bin/systemctl restart sidekiq".into(), "/usr/bin/systemctl status sidekiq".into()]),
            "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart sidekiq, /usr/bin/systemctl status sidekiq\n"
        );
    }
}
