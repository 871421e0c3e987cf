//! `provision do ROLE:VERB`: a role's action on every selected host with that role, as its
//! user, hosts in parallel, each output line told to the reporter as it comes.

use crate::actions::{as_user_script, check_spec, plan_do, with_tmp, HostAction};
use crate::inventory::SshSettings;
use crate::project::{Project, Selection};
use crate::report::{Reporter, VerbReport};
use crate::runner::{control_dir, in_parallel};
use crate::transport::Connection;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What `provision do` is asked.
#[derive(Debug, Clone)]
pub struct DoOptions {
    pub selection: Selection,
    /// `ROLE:VERB`
    pub spec: String,
    /// The action's arguments, as given after `ROLE:VERB`.
    pub args: Vec<String>,
    pub forks: usize,
}

/// The result of an action on one host.
#[derive(Debug, Clone, Serialize)]
pub struct DoResult {
    pub host: String,
    /// `when` is false on this host.
    pub skipped: bool,
    pub status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Outcome of `provision do`.
#[derive(Debug, Clone, Serialize)]
pub struct DoReport {
    pub action: String,
    pub results: Vec<DoResult>,
}

impl DoReport {
    fn ran(&self) -> usize {
        self.results.iter().filter(|r| !r.skipped).count()
    }
    fn failed(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_some()).count()
    }
}

impl VerbReport for DoReport {
    fn ok(&self) -> bool {
        self.failed() == 0 && self.ran() > 0
    }
    fn closing(&self) -> Vec<(bool, String)> {
        let (ran, failed) = (self.ran(), self.failed());
        let mut out = vec![(false, format!("{}: {} ok, {failed} failed, {} skipped", self.action, ran - failed, self.results.len() - ran))];
        if ran == 0 {
            out.push((true, "error: `when` excluded every host; nothing ran".to_string()));
        }
        out
    }
}

/// Runs `ROLE:VERB` on every selected host with the role (at most `forks` at once).
pub async fn run_do(opts: &DoOptions, reporter: &Arc<Reporter>) -> Result<DoReport> {
    check_spec(&opts.spec)?;
    let project = Project::load(&opts.selection)?;
    let (action, planned) = plan_do(&project, &opts.spec, &opts.args)?;
    let name = format!("{}:{}", action.role, action.verb);
    let description = action.description.split_whitespace().collect::<Vec<_>>().join(" ");
    let hosts: Vec<&str> = planned.iter().map(|p| p.host.name.as_str()).collect();
    reporter.event("info", None, &format!("{name} ({description}) on {}", hosts.join(" ")));
    let dir = control_dir()?;
    let ssh = Arc::new(project.inventory.ssh.clone());
    let base = dir.path().to_path_buf();
    let results = in_parallel(planned, opts.forks, |a| {
        let (ssh, dir, reporter) = (ssh.clone(), base.clone(), reporter.clone());
        async move { do_host(a, &ssh, &dir, &reporter).await }
    })
    .await?;
    Ok(DoReport { action: name, results })
}

async fn do_host(a: HostAction, ssh: &SshSettings, dir: &Path, reporter: &Reporter) -> DoResult {
    let name = a.host.name.clone();
    let Some(script) = &a.script else {
        reporter.event("host", Some(&name), &format!("{name}: skipped (`when` is false on this host)"));
        return DoResult { host: name, skipped: true, status: None, error: None };
    };
    let r = run_action(&a, script, ssh, dir, reporter).await;
    match &r.error {
        Some(e) => reporter.event("host", Some(&name), &format!("{name}: FAILED: {e}")),
        None => reporter.event("host", Some(&name), &format!("{name}: ok")),
    }
    r
}

async fn run_action(a: &HostAction, script: &crate::shell::Script, ssh: &SshSettings, dir: &Path, reporter: &Reporter) -> DoResult {
    let name = a.host.name.as_str();
    let failed = |error: String| DoResult { host: name.to_string(), skipped: false, status: None, error: Some(a.secrets.redact(&error)) };
    let conn = match Connection::connect(&a.host, ssh, dir, false).await {
        Ok(c) => c,
        Err(e) => return failed(format!("{e:#}")),
    };
    if reporter.verbose > 0 {
        reporter.event("host", Some(name), &format!("{name}: running as {}", a.user));
    }
    let full = with_tmp(as_user_script(&a.user, script));
    let res = conn
        .run_script_streaming(&full, Duration::from_secs(3600), |line| reporter.event("host", Some(name), &format!("{name}: {}", a.secrets.redact(line))))
        .await;
    conn.close().await;
    let (status, stderr) = match res {
        Ok(r) => r,
        Err(e) => return failed(format!("{e:#}")),
    };
    for l in stderr.lines() {
        reporter.host_stderr(name, &format!("{name}: {}", a.secrets.redact(l)));
    }
    let error = match status {
        Some(0) => None,
        s => {
            let mut e = format!("the action ended with status {}", s.map(|s| s.to_string()).unwrap_or_else(|| "(killed)".into()));
            if stderr.contains("a password is required") || stderr.contains("not allowed to execute") || stderr.contains("may not run sudo") {
                e.push_str(&format!("; `sudo -n` refused a command for {}: the role's sudoers rules must allow exactly that command", a.user));
            }
            Some(e)
        }
    };
    DoResult { host: name.to_string(), skipped: false, status, error }
}
