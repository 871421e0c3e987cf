//! `unit`: a systemd unit: its file (ours, from a template, in /etc/systemd/system) or a
//! packaged one (nginx, mariadb, redis-server), enabled or not, started or stopped.
//! Handlers use `state: restarted|reloaded`. `daemon-reload` runs once when unit files changed.
//! With `verify: true` (the default for our unit files) `systemd-analyze verify` checks the
//! file before it lands.

use super::file::{FileSpec, FileState};
use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts};
use crate::plan::{Action, Change, PlanContext, Step};
use crate::sh;
use crate::shell::Script;

pub struct UnitModule;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug)]
pub struct Unit {
    pub name: String,
    pub file: Option<FileSpec>,
    pub enabled: Option<bool>,
    pub state: Option<UnitState>,
}

const UNIT_DIR: &str = "/etc/systemd/system";

impl Unit {
    fn action_script(&self, state: UnitState) -> Script {
        let n = &self.name;
        match state {
            UnitState::Started => sh!("systemctl start -- {}", n),
            UnitState::Stopped => sh!("systemctl stop -- {}", n),
            UnitState::Restarted => sh!("systemctl restart -- {}", n),
            // A reload of a stopped service fails; starting it is what the handler means.
            UnitState::Reloaded => sh!("if systemctl is-active -q -- {}; then systemctl reload -- {}; else systemctl start -- {}; fi", n, n, n),
        }
    }
}

impl Resource for Unit {
    fn kind(&self) -> &'static str {
        "unit"
    }
    fn target(&self) -> String {
        self.name.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        req.units.insert(self.name.clone());
        if let Some(f) = &self.file {
            f.probe(req);
        }
    }

    fn plan(&self, facts: &Facts, cx: &PlanContext) -> Result<Option<Change>, String> {
        let unit = facts.units.get(&self.name).cloned().unwrap_or_default();
        let file_change = match &self.file {
            Some(f) => f.plan("unit", facts, cx)?,
            None => None,
        };
        let mut assumption = None;
        let unit_path = format!("{UNIT_DIR}/{}", self.name);
        // `sidekiq@2.service` comes from the template `sidekiq@.service`.
        let template_path = self.name.split_once('@').map(|(base, rest)| {
            let suffix = rest.rsplit_once('.').map(|(_, t)| t).unwrap_or("service");
            format!("{UNIT_DIR}/{base}@.{suffix}")
        });
        let written_earlier = cx.creates_path(&unit_path).is_some() || template_path.as_deref().is_some_and(|t| cx.creates_path(t).is_some());
        if !unit.exists() && file_change.is_none() && self.file.is_none() && !written_earlier {
            let pkgs = cx.installed_packages();
            if pkgs.is_empty() {
                return Err(format!(
                    "unit {} is not installed on the host; install its package first or give the unit a `template`",
                    self.name
                ));
            }
            assumption = Some(format!("unit {} is installed by package {}", self.name, pkgs.join(", ")));
        }
        let known = unit.exists() || file_change.is_some() || assumption.is_some();
        let mut details = Vec::new();
        let mut steps = Vec::new();
        let mut diff = None;
        let mut action = Action::Update;
        let mut provides = Vec::new();
        if let Some(fc) = file_change {
            provides = fc.provides.clone();
            details.extend(fc.details.iter().map(|d| format!("file {d}")));
            diff = fc.diff.clone();
            if fc.action == Action::Create {
                action = Action::Create;
            }
            steps.extend(fc.steps);
            steps.push(Step::DaemonReloadIfNeeded);
        }
        let n = &self.name;
        if let Some(want) = self.enabled {
            let is = unit.enabled();
            if want != is && !(unit.enablement_fixed() && unit.exists()) {
                details.push(format!("enabled: {} → {}", yes_no(is), yes_no(want)));
                steps.push(Step::Shell(if want { sh!("systemctl enable -- {}", n) } else { sh!("systemctl disable -- {}", n) }));
            }
        }
        match self.state {
            Some(UnitState::Started) if !unit.active() || !known => {
                details.push(format!("state: {} → active", or_absent(&unit.active_state)));
                steps.push(Step::Shell(self.action_script(UnitState::Started)));
            }
            Some(UnitState::Stopped) if unit.active() => {
                details.push(format!("state: {} → inactive", unit.active_state));
                steps.push(Step::Shell(self.action_script(UnitState::Stopped)));
            }
            Some(s @ (UnitState::Restarted | UnitState::Reloaded)) => {
                details.push(if s == UnitState::Restarted { "restart".into() } else { "reload".into() });
                steps.push(Step::Shell(self.action_script(s)));
                action = Action::Run;
            }
            _ => {}
        }
        if steps.is_empty() {
            return Ok(None);
        }
        let mut c = Change::new("unit", &self.name, action);
        c.details = details;
        c.diff = diff;
        c.steps = steps;
        c.assumption = assumption;
        c.provides = provides;
        Ok(Some(c))
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn or_absent(s: &str) -> &str {
    if s.is_empty() { "absent" } else { s }
}

/// systemd's unit name grammar (unit_name_is_valid) less `\\`: `[A-Za-z0-9:_.-]` and one `@` for
/// templates and instances, at most 255 bytes, with a type suffix.
fn valid_unit_name(n: &str) -> bool {
    let stem = n.rsplit_once('.').map(|(s, _)| s).unwrap_or("");
    n.len() <= 255
        && !stem.is_empty()
        && !n.starts_with(['-', '.', '@'])
        && n.matches('@').count() <= 1
        // systemd allows `\\` (its own escapes), but the file's path would then need
        // escaping in every tool that prints it: not supported.
        && n.chars().all(|c| c.is_ascii_alphanumeric() || ":_.-@".contains(c))
}

/// Adds `.service` when the name has no unit type suffix.
fn full_name(n: &str) -> String {
    const TYPES: [&str; 8] = [".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice", ".scope"];
    if TYPES.iter().any(|t| n.ends_with(t)) { n.to_string() } else { format!("{n}.service") }
}

impl Module for UnitModule {
    fn name(&self) -> &'static str {
        "unit"
    }

    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("unit")?;
        let name = full_name(&r.string("name", "`unit`")?);
        if !valid_unit_name(&name) {
            return Err(args
                .doc
                .value_error(&r.path_of("name"), format!("`{}` is not a systemd unit name", crate::terminal::printable(&name)))
                .help("a unit name has ASCII letters, digits and `:-_.@`, such as `sidekiq@1.service`"));
        }
        let template = r.opt_string("template")?;
        let content = r.opt_string("content")?;
        let enabled = r.opt_bool("enabled")?;
        let state = match r.opt_string("state")?.as_deref() {
            None => None,
            Some("started") => Some(UnitState::Started),
            Some("stopped") => Some(UnitState::Stopped),
            Some("restarted") if cx.is_handler => Some(UnitState::Restarted),
            Some("reloaded") if cx.is_handler => Some(UnitState::Reloaded),
            Some(s @ ("restarted" | "reloaded")) => {
                return Err(args
                    .doc
                    .value_error(&r.path_of("state"), format!("`state: {s}` would act on every run"))
                    .help("put it in handlers.yml and `notify` it from the task that changes the service's config".to_string()))
            }
            Some(other) => {
                return Err(args
                    .doc
                    .value_error(&r.path_of("state"), format!("unknown unit state `{other}`"))
                    .did_you_mean(other, ["started", "stopped", "restarted", "reloaded"]))
            }
        };
        let verify = r.opt_bool("verify")?.unwrap_or(true);
        r.finish("`unit` arguments")?;
        let file_state = match (template, content) {
            (Some(t), None) => Some(super::template::render(&t, cx)?),
            (None, Some(c)) => {
                let secret = cx.secrets.touches(&c);
                Some(FileState::Present { content: c.into_bytes(), secret })
            }
            (None, None) => None,
            (Some(_), Some(_)) => return Err(args.error("`unit` takes `template` or `content`, not both")),
        };
        let file = file_state.map(|state| {
            let mut f = FileSpec::new(format!("{UNIT_DIR}/{name}"), state);
            f.owner = Some("root".into());
            f.group = Some("root".into());
            // A unit holding a secret (`Environment=`) is readable by root only.
            f.mode = Some(if matches!(f.state, FileState::Present { secret: true, .. }) { 0o600 } else { 0o644 });
            if verify {
                // A temp file's name is not a unit name, so verify a copy named like the unit.
                // systemd-analyze exits 0 on settings it ignores ("Failed to parse ...,
                // ignoring"), which are bugs in our file all the same: any remark about the
                // file counts as a rejection. (No `%s` here but the file's: it is the placeholder.)
                f.validate = Some(sh!(
                    "pv_u=$(mktemp -d) && cp %s \"$pv_u\"/{} && pv_o=$(systemd-analyze verify --man=no \"$pv_u\"/{} 2>&1); pv_rc=$?; rm -rf \"$pv_u\"; echo \"$pv_o\"; [ $pv_rc -eq 0 ] && ! echo \"$pv_o\" | grep -qF \"$pv_u/\"",
                    name,
                    name
                ));
            }
            f.validate_soft = true;
            f.after_write = Some(sh!("touch \"$PV_RUN/daemon-reload\""));
            f
        });
        Ok(vec![Box::new(Unit { name, file, enabled, state })])
    }
}
