//! `user` and `group`: local accounts, their shell, home, supplementary groups and
//! authorized SSH keys (managed as the exact content of `~/.ssh/authorized_keys`).

use super::file::{FileSpec, FileState};
use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts};
use crate::plan::{Action, Change, PlanContext, Provides};
use crate::sh;
use crate::shell::Script;

pub struct UserModule;
pub struct GroupModule;

#[derive(Debug)]
pub struct User {
    pub name: String,
    pub shell: Option<String>,
    pub home: String,
    pub system: bool,
    pub groups: Vec<String>,
    pub keys: Option<FileSpec>,
}

impl Resource for User {
    fn kind(&self) -> &'static str {
        "user"
    }
    fn target(&self) -> String {
        self.name.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        req.user(&self.name);
        for g in &self.groups {
            req.group(g);
        }
        if let Some(k) = &self.keys {
            k.probe(req);
        }
    }

    fn plan(&self, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String> {
        let n = &self.name;
        let mut assumptions = Vec::new();
        for g in &self.groups {
            if !facts.group_exists(g) {
                match cx.creates_group(g) {
                    Some(c) => assumptions.push(format!("group `{g}` is created by {}", c.id())),
                    None => return Err(format!("group `{g}` of user {} does not exist; create it first with the `group` module or install the package that brings it", self.name)),
                }
            }
        }
        let mut c = match facts.users.get(&self.name) {
            None => {
                let mut cmd = sh!("useradd --create-home --home-dir {} --user-group", self.home);
                if let Some(s) = &self.shell {
                    cmd.push(sh!(" --shell {}", s));
                }
                if self.system {
                    cmd.push(sh!(" --system"));
                }
                if !self.groups.is_empty() {
                    cmd.push(sh!(" --groups {}", self.groups.join(",")));
                }
                let mut c = Change::new("user", &self.name, Action::Create).shell(sh!("{} -- {}", cmd, n));
                c.details.push(format!("home {}", self.home));
                if let Some(s) = &self.shell {
                    c.details.push(format!("shell {s}"));
                }
                if !self.groups.is_empty() {
                    c.details.push(format!("groups {}", self.groups.join(",")));
                }
                c
            }
            Some(u) => {
                let mut c = Change::new("user", &self.name, Action::Update);
                if let Some(s) = self.shell.as_ref().filter(|s| **s != u.shell) {
                    c = c.detail(format!("shell {} → {s}", u.shell)).shell(sh!("usermod --shell {} -- {}", s, n));
                }
                if self.home != u.home {
                    c = c.detail(format!("home {} → {}", u.home, self.home)).shell(sh!("usermod --move-home --home {} -- {}", self.home, n));
                }
                let missing: Vec<&String> = self
                    .groups
                    .iter()
                    .filter(|g| !facts.groups.get(*g).is_some_and(|e| e.members.contains(&self.name) || e.gid == u.gid))
                    .collect();
                if !missing.is_empty() {
                    let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
                    c = c.detail(format!("add to groups {list}")).shell(sh!("usermod --append --groups {} -- {}", list, n));
                }
                c
            }
        };
        if let Some(keys) = &self.keys {
            let earlier: Vec<Change> = cx.earlier.iter().cloned().chain(std::iter::once(c.clone().provides(Provides::User(self.name.clone())))).collect();
            if let Some(kc) = keys.plan("user", facts, &PlanContext { earlier: &earlier })? {
                c.details.push(format!("authorized_keys {}", kc.details.first().map(String::as_str).unwrap_or("updated")));
                c.diff = kc.diff;
                let d = format!("{}/.ssh", self.home);
                c.steps.push(crate::plan::Step::Shell(sh!(
                    "{}mkdir -p -- {} && chown -h -- {} {} && chmod 700 -- {}",
                    super::file::no_linked_parent(&d),
                    d,
                    format!("{n}:"),
                    d,
                    d
                )));
                c.steps.extend(kc.steps);
            }
        }
        if c.steps.is_empty() {
            return Ok(None);
        }
        if !assumptions.is_empty() {
            c.assumption = Some(assumptions.join("; "));
        }
        c.login_file = self.keys.as_ref().map(|k| k.path.clone());
        Ok(Some(c.provides(Provides::User(self.name.clone())).provides(Provides::Group(self.name.clone()))))
    }
}

/// Debian's account-name grammar, the one `{{ name | account_name }}` checks in templates.
pub fn valid_account_name(n: &str) -> bool {
    crate::grammar::account_name(n).is_ok()
}

impl Module for UserModule {
    fn name(&self) -> &'static str {
        "user"
    }

    fn lower(&self, args: &Args, _cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("user")?;
        let name = r.string("name", "`user`")?;
        if !valid_account_name(&name) {
            return Err(args
                .value_error("name", format!("`{}` is not a valid user name", crate::terminal::printable(&name)))
                .help("use lowercase letters, digits, `_` and `-`, starting with a letter or `_`"));
        }
        let shell = r.opt_string("shell")?;
        if let Some(s) = &shell {
            super::check_path(s, args, "shell")?;
        }
        let home = r.opt_string("home")?.unwrap_or_else(|| format!("/home/{name}"));
        super::check_path(&home, args, "home")?;
        if home.contains(':') {
            return Err(args.value_error("home", format!("`home: {home}` has a `:`, which /etc/passwd cannot hold")));
        }
        let system = r.opt_bool("system")?.unwrap_or(false);
        let groups = r.opt_strings("groups")?.unwrap_or_default();
        for g in &groups {
            if !valid_account_name(g) {
                return Err(args
                    .doc
                    .value_error(&r.path_of("groups"), format!("`{}` is not a valid group name", crate::terminal::printable(g)))
                    .help("use lowercase letters, digits, `_` and `-`, starting with a letter or `_`"));
            }
        }
        let keys = r.opt_strings("authorized_keys")?;
        if let Some(k) = keys.iter().flatten().find(|k| k.trim().is_empty() || k.chars().any(|c| c.is_control())) {
            return Err(args
                .doc
                .value_error(&r.path_of("authorized_keys"), format!("authorized key `{}` is empty or holds a newline or control character", crate::terminal::printable(k)))
                .help("list one key per item, each on one line: `ssh-ed25519 AAAA... comment`"));
        }
        r.finish("`user` arguments")?;
        let keys = keys.map(|keys| {
            let mut content = keys.join("\n");
            if !content.is_empty() {
                content.push('\n');
            }
            let mut f = FileSpec::new(format!("{home}/.ssh/authorized_keys"), FileState::Present { content: content.into_bytes(), secret: false });
            f.owner = Some(name.clone());
            f.group = Some(name.clone());
            f.mode = Some(0o600);
            f
        });
        Ok(vec![Box::new(User { name, shell, home, system, groups, keys })])
    }
}

#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub system: bool,
}

impl Resource for Group {
    fn kind(&self) -> &'static str {
        "group"
    }
    fn target(&self) -> String {
        self.name.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        req.group(&self.name);
    }
    fn plan(&self, facts: &Facts, _cx: &PlanContext) -> Result<Option<Change>, String> {
        if facts.groups.contains_key(&self.name) {
            return Ok(None);
        }
        let sys = if self.system { sh!(" --system") } else { Script::new() };
        Ok(Some(
            Change::new("group", &self.name, Action::Create)
                .shell(sh!("groupadd{} -- {}", sys, self.name))
                .provides(Provides::Group(self.name.clone())),
        ))
    }
}

impl Module for GroupModule {
    fn name(&self) -> &'static str {
        "group"
    }

    fn lower(&self, args: &Args, _cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("group")?;
        let name = r.string("name", "`group`")?;
        if !valid_account_name(&name) {
            return Err(args
                .value_error("name", format!("`{}` is not a valid group name", crate::terminal::printable(&name)))
                .help("use lowercase letters, digits, `_` and `-`, starting with a letter or `_`"));
        }
        let system = r.opt_bool("system")?.unwrap_or(false);
        r.finish("`group` arguments")?;
        Ok(vec![Box::new(Group { name, system })])
    }
}
