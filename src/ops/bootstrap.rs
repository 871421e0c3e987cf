//! `provision bootstrap`: fresh servers from "root with a key" to ready, without locking
//! anyone out.

use super::converge::{converge_host, converge_host_with, login_with_sudo};
use crate::error::{Diagnostic, Diagnostics};
use crate::inventory::{Host, SshSettings};
use crate::project::{Project, Selection};
use crate::report::{HostReport, HostStatus, Reporter, RunReport};
use crate::resources::HostResources;
use crate::runner::in_parallel;
use std::path::Path;
use std::sync::Arc;

/// Options of `provision bootstrap`.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub selection: Selection,
    /// Overrides the inventory's `ssh.initial_user`.
    pub initial_user: Option<String>,
    pub forks: usize,
}

/// The roles bootstrap applies: first as the initial user, then, after a fresh admin login
/// with `sudo -n true` worked, the sshd hardening as the admin.
const BOOTSTRAP_ROLES: [&str; 2] = ["bootstrap", "bootstrap-ssh"];

/// `provision bootstrap`: from "root with a key" to "ready for provisioning", without
/// locking anyone out. A host already bootstrapped is reached as the admin and nothing changes.
pub async fn bootstrap(opts: &BootstrapOptions, reporter: Arc<Reporter>) -> Result<RunReport, Diagnostics> {
    let project = Arc::new(Project::load(&opts.selection)?);
    let (inventory, roles) = (&project.inventory, &project.roles);
    let initial_user = opts.initial_user.clone().unwrap_or_else(|| inventory.ssh.initial_user.clone());
    let mut errors = Diagnostics::default();
    for r in BOOTSTRAP_ROLES {
        if roles.get(r).is_none() {
            errors.push(Diagnostic::new(format!("the project has no `roles/{r}`, which bootstrap applies")).help("`provision init /tmp/fresh` writes the shipped roles: copy its roles/bootstrap and roles/bootstrap-ssh into this project"));
        }
    }
    let mut plans = Vec::new();
    for host in &project.hosts {
        if host.user == "root" {
            errors.push(inventory.doc.error(&host.path, format!("host `{}` connects as root; bootstrap creates an admin user and then disables root login", host.name)).help("set `user: admin` (the admin bootstrap creates) on the host"));
            continue;
        }
        let mut phases = Vec::new();
        for r in BOOTSTRAP_ROLES {
            let mut h = host.clone();
            h.roles = vec![r.to_string()];
            match project.lower_host(&h, &[], true) {
                Ok(res) => phases.push(res),
                Err(e) => errors.0.extend(e.0),
            }
        }
        plans.push((host.clone(), phases));
    }
    errors.into_result()?;
    inventory.preflight(plans.iter().map(|(h, _)| h), plans.iter().flat_map(|(_, phases)| phases.iter().flat_map(|r| &r.secrets.missing_env)))?;
    let control_dir = tempfile::Builder::new().prefix(".pv-ssh-").tempdir_in("/tmp").map_err(|e| Diagnostic::new(format!("cannot create /tmp/.pv-ssh-*: {e}")))?;
    // Bootstrap logs in fresh every time: users and sshd change under it.
    let ssh = Arc::new(crate::inventory::SshSettings { persist_secs: 0, ..inventory.ssh.clone() });
    let who = format!("provision bootstrap on {} at {}", super::hostname(), super::unix_now());
    let base = control_dir.path().to_path_buf();
    let hosts = in_parallel(plans.into_iter().enumerate().collect(), opts.forks, move |(i, (host, phases))| {
        let (ssh, reporter, who, initial_user) = (ssh.clone(), reporter.clone(), who.clone(), initial_user.clone());
        let dir = base.join(format!("h{i}"));
        async move { bootstrap_host(host, phases, &ssh, &dir, &who, &reporter, &initial_user).await }
    })
    .await
    .map_err(|e| Diagnostic::new(format!("{e:#}")))?;
    Ok(super::summarize("apply", hosts))
}

async fn bootstrap_host(host: Host, mut phases: Vec<HostResources>, ssh: &SshSettings, dir: &Path, who: &str, reporter: &Reporter, initial_user: &str) -> HostReport {
    let hardening = phases.pop().unwrap_or_default();
    let users = phases.pop().unwrap_or_default();
    let admin_dir = dir.join("admin");
    let _ = std::fs::create_dir_all(&admin_dir);
    // Already bootstrapped: the admin gets in, so go on as the admin (root may be refused by now).
    let already = login_with_sudo(&host, ssh, &admin_dir).await.is_ok();
    let first = if already {
        reporter.note(&host.name, "already bootstrapped: connecting as the admin");
        converge_host_with(host.clone(), users, ssh, &dir.join("p1"), false, who, reporter, false).await
    } else {
        let mut initial = host.clone();
        initial.user = initial_user.to_string();
        reporter.note(&host.name, &format!("connecting as the initial user {initial_user}; a new host key is recorded"));
        converge_host_with(initial, users, ssh, &dir.join("p1"), false, who, reporter, true).await
    };
    if first.status == HostStatus::Failed {
        return first;
    }
    // The canary: a fresh login as the admin, with sudo, before root login is switched off.
    if let Err(e) = login_with_sudo(&host, ssh, &dir.join("canary")).await {
        let mut r = first;
        r.status = HostStatus::Failed;
        r.error = Some(format!("a fresh login as the admin `{}` with `sudo -n true` failed, so root and password login were left as they are: {e:#}", host.user));
        return r;
    }
    let second = converge_host(host.clone(), hardening, ssh, &dir.join("p2"), false, who, reporter).await;
    merge_reports(first, second)
}

fn merge_reports(mut a: HostReport, b: HostReport) -> HostReport {
    a.changes.extend(b.changes);
    a.unchanged += b.unchanged;
    a.round_trips += b.round_trips;
    a.timings_ms.connect += b.timings_ms.connect;
    a.timings_ms.probe += b.timings_ms.probe;
    a.timings_ms.apply += b.timings_ms.apply;
    a.status = if b.status == HostStatus::Failed || a.status == HostStatus::Failed {
        HostStatus::Failed
    } else if a.changes.is_empty() {
        HostStatus::Ok
    } else {
        HostStatus::Changed
    };
    a.error = a.error.or(b.error);
    a
}

