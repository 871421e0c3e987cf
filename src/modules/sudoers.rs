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
    if name.is_empty() || name.contains('/') {
        return Err(format!("`{name}` is not a file name"));
    }
    if name.contains('.') || name.ends_with('~') {
        return Err(format!("sudo ignores files in /etc/sudoers.d whose name contains `.` or ends in `~`, so `{name}` would never apply"));
    }
    Ok(())
}

/// Renders one rule line.
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
            args.doc.error(&r.path_of("name"), e).help("use letters, digits, `-` and `_` only, such as `deploy-sidekiq`")
        })?;
        let user = r.string("user", "`sudoers`")?;
        let runas = r.opt_string("runas")?.unwrap_or_else(|| "root".into());
        let nopasswd = r.opt_bool("nopasswd")?.unwrap_or(true);
        let commands = r.opt_strings("commands")?.unwrap_or_default();
        r.finish("`sudoers` arguments")?;
        if commands.is_empty() {
            return Err(args.error("`sudoers` has no `commands`").help("list the exact commands, such as `/usr/bin/systemctl restart sidekiq`"));
        }
        for c in &commands {
            if !c.starts_with('/') && c != "ALL" {
                return Err(args
                    .error(format!("sudoers command `{c}` is not an absolute path"))
                    .help("sudo matches commands by full path, such as `/usr/bin/systemctl`"));
            }
        }
        let content = format!("# managed by provision\n{}", rule(&user, &runas, nopasswd, &commands));
        let mut spec = FileSpec::new(format!("/etc/sudoers.d/{name}"), FileState::Present { content: content.into_bytes(), secret: false });
        spec.owner = Some("root".into());
        spec.group = Some("root".into());
        spec.mode = Some(0o440);
        spec.validate = Some("visudo -cf %s".into());
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
    fn renders_a_rule() {
        assert_eq!(
            rule("deploy", "root", true, &["/usr/bin/systemctl restart sidekiq".into(), "/usr/bin/systemctl status sidekiq".into()]),
            "deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart sidekiq, /usr/bin/systemctl status sidekiq\n"
        );
    }
}
