//! `provision releases`: every release host's releases, the current one marked, and a
//! deploy lock if one is held.

use crate::deploy_lock::releases_of;
use crate::project::Selection;
use crate::release_scripts::list_script;
use crate::runner::{close_all, connect_all, control_dir, phase};
use crate::report::VerbReport;
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// One host's releases, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HostReleases {
    pub host: String,
    pub deploy_to: String,
    /// (name, revision)
    pub releases: Vec<(String, String)>,
    pub current: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Outcome of `provision releases`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleasesReport {
    pub hosts: Vec<HostReleases>,
}

impl VerbReport for ReleasesReport {
    fn ok(&self) -> bool {
        self.hosts.iter().all(|h| h.error.is_none())
    }
    fn closing(&self) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        for h in &self.hosts {
            if let Some(e) = &h.error {
                out.push((true, format!("{}: FAILED: {e}", h.host)));
                continue;
            }
            out.push((false, format!("{} ({}/releases):", h.host, h.deploy_to)));
            if h.releases.is_empty() {
                out.push((false, "    (no releases)".to_string()));
            }
            for (n, rev) in &h.releases {
                let (mark, tail) = if *n == h.current { ("*", "  (current)") } else { (" ", "") };
                out.push((false, format!("  {mark} {n}  {rev}{tail}")));
            }
            if let Some(l) = &h.lock {
                out.push((false, format!("    deploy lock held: {}", l.trim())));
            }
        }
        out
    }
}

/// `provision releases`: reads every host's releases (one round trip each).
pub async fn releases(selection: &Selection, forks: usize) -> Result<ReleasesReport> {
    let (project, hosts, _) = crate::release_hosts::load(selection)?;
    let dir = control_dir()?;
    let targets = Arc::new(connect_all(&project.inventory.ssh, hosts, dir.path(), forks).await?);
    let scripts = targets.iter().map(|t| Some(list_script(&t.cfg))).collect();
    let out = phase(&targets, scripts, Duration::from_secs(60), forks).await;
    let mut hosts = Vec::new();
    for (t, r) in targets.iter().zip(out) {
        let mut h = HostReleases { host: t.host.name.clone(), deploy_to: t.cfg.deploy_to.clone(), releases: Vec::new(), current: String::new(), lock: None, error: None };
        match r {
            Some(Ok(o)) if o.mark("probed").is_some() => {
                (h.releases, h.current) = releases_of(&o);
                h.lock = o.mark("locked").map(str::to_string);
            }
            Some(Ok(o)) => h.error = Some(o.why()),
            Some(Err(e)) => h.error = Some(format!("{e:#}")),
            None => continue,
        }
        hosts.push(h);
    }
    close_all(targets).await;
    Ok(ReleasesReport { hosts })
}
