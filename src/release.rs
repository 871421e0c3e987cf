//! The release step (`provision release`), `provision rollback` and `provision releases`:
//! a Capistrano-style tree `DEPLOY_TO/{releases/TIMESTAMP, shared, current}` on every host
//! that runs or serves the app.
//!
//! A release, in order, each step on every host in parallel, one script per step (so a
//! release is 4 round trips per host, plus one on the host that runs migrations):
//!
//! 1. **Lock + probe.** `DEPLOY_TO/.deploy-lock/` is taken with `mkdir` (atomic) and holds
//!    `info`: a random token, who, the controller's host name and PID, the start time and an
//!    expiry. A second release fails at once and names the holder. A lock is stale, and
//!    taken over, when it is past its expiry (`deploy_lock_ttl`, default 3600 s, longer
//!    than any release), or when it was taken from this same controller by a PID that no
//!    longer runs provision (checked here, on the controller, where that PID lives): a
//!    killed release is recovered at once from the machine it ran on, and after the TTL
//!    from anywhere. Only the holder's token unlocks.
//! 2. **Upload + unpack + shared links.** The artifact is stored as
//!    `DEPLOY_TO/.artifacts/SHA256.tar.gz`; a host that has it (checked with `sha256sum`)
//!    gets nothing, the others get it inside the script on stdin, base64 in 76-column
//!    lines, checked again before it is used. Unpacked to `releases/TIMESTAMP.part`, with
//!    `REVISION`, the shared links (`linked_files`, `linked_dirs`), then renamed.
//! 3. **Migrations** (`release_migrate`, as the deploy user in the new release) on the one
//!    host flagged `primary: true` among the release's hosts (else the first puma host).
//! 4. **Switch + restart + health**, only once every host is prepared: sidekiq is quieted
//!    (TSTP), `current` switched with a temp link and `mv -T`, then in role order puma gets
//!    `systemctl reload` (a phased restart, waited for until every worker is new) or a
//!    start, sidekiq a restart, faye a restart; puma hosts then answer `GET /up` on
//!    127.0.0.1 with a timeout and retries.
//! 5. **Finish** (`revisions.log`, keep `keep_releases`, unlock), or on any failed health
//!    check **roll back** every host to its previous release, restart, unlock, exit 1.
//!
//! Services are data: `puma_service`, `sidekiq_units`, `faye_service` from the host's
//! variables; which roles receive the release is `release_roles`.

use crate::actions::{control_dir, var_list, var_str, Project};
use crate::error::{Diagnostic, Diagnostics, Location};
use crate::inventory::Host;
use crate::shell::{sha256_hex, Script};
use crate::transport::Connection;
use crate::secrets::Secrets;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Roles whose hosts receive the release, unless `release_roles` says otherwise.
pub const DEFAULT_RELEASE_ROLES: [&str; 4] = ["puma", "sidekiq", "faye", "nginx"];

/// Where the code comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory, packed here (assets already built in it).
    Dir(PathBuf),
    /// A .tar.gz made elsewhere.
    Artifact(PathBuf),
}

/// What to release, where.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub inventory: PathBuf,
    pub limits: Vec<String>,
    pub extra_vars: Vec<String>,
    pub forks: usize,
    pub verbose: bool,
    /// `--batch`: switch the puma hosts this many (or this share) at a time.
    pub batch: Option<Batch>,
}

/// How many puma hosts switch at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Hosts(usize),
    Percent(u8),
}

impl std::str::FromStr for Batch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Batch, String> {
        let bad = || format!("`{s}` is not a batch size: give a number of hosts (`1`) or a share (`25%`)");
        match s.strip_suffix('%') {
            Some(p) => match p.parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Batch::Percent(p)),
                _ => Err(bad()),
            },
            None => match s.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Batch::Hosts(n)),
                _ => Err(bad()),
            },
        }
    }
}

/// The switch order: the puma hosts in batches (all at once without `--batch`), then every
/// other host (sidekiq, faye) once every puma batch is healthy.
pub fn switch_groups(is_puma: &[bool], batch: Option<Batch>) -> Vec<Vec<usize>> {
    let puma: Vec<usize> = (0..is_puma.len()).filter(|&i| is_puma[i]).collect();
    let rest: Vec<usize> = (0..is_puma.len()).filter(|&i| !is_puma[i]).collect();
    let size = match batch {
        None => return vec![(0..is_puma.len()).collect()],
        Some(Batch::Hosts(n)) => n,
        Some(Batch::Percent(p)) => (puma.len() * p as usize).div_ceil(100).max(1),
    };
    let mut groups: Vec<Vec<usize>> = puma.chunks(size.max(1)).map(<[usize]>::to_vec).collect();
    if !rest.is_empty() {
        groups.push(rest);
    }
    groups
}

/// A host taking part, with its open connection.
pub struct Target {
    pub host: Host,
    pub cfg: HostCfg,
    pub secrets: Secrets,
    pub conn: Connection,
}

fn num(vars: &serde_yaml::Mapping, name: &str, default: u64, errors: &mut Diagnostics, host: &Host) -> u64 {
    match var_str(vars, name) {
        None => default,
        Some(s) => s.trim().parse().unwrap_or_else(|_| {
            errors.push(Diagnostic::new(format!("host `{}`: `{name}` must be a whole number, found `{s}`", host.name)));
            default
        }),
    }
}

fn rel_path_ok(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('/') && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Reads a host's release settings from its variables.
pub fn host_cfg(project: &Project, host: &Host) -> Result<(HostCfg, Secrets), Diagnostics> {
    let (vars, secrets) = project.host_vars(host)?;
    let mut errors = Diagnostics::default();
    let roles = project.roles.with_dependencies(&host.roles);
    let has = |r: &str| roles.iter().any(|x| x == r);
    let deploy_to = var_str(&vars, "deploy_to").unwrap_or_default();
    if !deploy_to.starts_with('/') || deploy_to.len() < 2 || deploy_to.contains("..") {
        errors.push(
            Diagnostic::new(format!("host `{}`: `deploy_to` must be an absolute path, found `{deploy_to}`", host.name))
                .at(Location::file(&project.inventory.doc.path))
                .help("set `deploy_to: /var/www/APP` in the inventory's vars or a role's defaults"),
        );
    }
    let deploy_user = var_str(&vars, "deploy_user").unwrap_or_else(|| "deploy".into());
    let linked_files = var_list(&vars, "linked_files").unwrap_or_else(|| vec!["config/database.yml".into()]);
    let linked_dirs = var_list(&vars, "linked_dirs").unwrap_or_else(|| vec!["log".into(), "tmp/pids".into(), "tmp/sockets".into()]);
    for p in linked_files.iter().chain(&linked_dirs) {
        if !rel_path_ok(p) {
            errors.push(Diagnostic::new(format!("host `{}`: linked path `{p}` must be relative to the release, without `..`", host.name)));
        }
    }
    let words = |name: &str, default: &str| var_list(&vars, name).unwrap_or_else(|| vec![default.to_string()]);
    let puma = if has("puma") { words("puma_service", "puma") } else { Vec::new() };
    let sidekiq = if has("sidekiq") { words("sidekiq_units", "sidekiq") } else { Vec::new() };
    let faye = if has("faye") { words("faye_service", "faye") } else { Vec::new() };
    for u in puma.iter().chain(&sidekiq).chain(&faye) {
        if !u.chars().all(|c| c.is_ascii_alphanumeric() || "-_@.".contains(c)) {
            errors.push(Diagnostic::new(format!("host `{}`: `{u}` is not a systemd unit name", host.name)));
        }
    }
    if !deploy_user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') || deploy_user.starts_with('-') || deploy_user.is_empty() {
        errors.push(Diagnostic::new(format!("host `{}`: `deploy_user: {}` is not a user name", host.name, crate::terminal::printable(&deploy_user))));
    }
    let health_url = if has("puma") {
        let port = var_str(&vars, "puma_port").unwrap_or_else(|| "3000".into());
        let path = var_str(&vars, "release_health_path").unwrap_or_else(|| "/up".into());
        if port.trim().parse::<u16>().is_err() || !path.trim().starts_with('/') || !path.trim().chars().all(|c| c.is_ascii_alphanumeric() || "/_.-~".contains(c)) {
            errors.push(
                Diagnostic::new(format!("host `{}`: the health check `{}` on port `{}` is not a plain path and port", host.name, crate::terminal::printable(&path), crate::terminal::printable(&port)))
                    .help("set `release_health_path` to a path such as `/up` and `puma_port` to a number"),
            );
        }
        Some(format!("http://127.0.0.1:{}{}", port.trim(), path.trim()))
    } else {
        None
    };
    let gate = match (&health_url, has("puma")) {
        (Some(_), true) => {
            let port: u16 = var_str(&vars, "puma_port").and_then(|p| p.trim().parse().ok()).unwrap_or(3000);
            let gate_port = num(&vars, "release_gate_port", u64::from(port) + 10000, &mut errors, host);
            let puma_bin = var_str(&vars, "puma_bin").unwrap_or_else(|| "/usr/bin/puma".into());
            if !puma_bin.starts_with('/') || puma_bin.chars().any(|c| c.is_control() || c == ' ') {
                errors.push(Diagnostic::new(format!("host `{}`: `puma_bin: {}` must be an absolute path", host.name, crate::terminal::printable(&puma_bin))));
            }
            if gate_port == u64::from(port) || gate_port == 0 || gate_port > 65535 {
                errors.push(Diagnostic::new(format!("host `{}`: `release_gate_port: {gate_port}` must be a free port other than puma's", host.name)));
            }
            Some(GateCfg {
                puma_bin,
                port: gate_port.min(65535) as u16,
                path: var_str(&vars, "release_health_path").unwrap_or_else(|| "/up".into()).trim().to_string(),
                // A cold boot (a Rails app loading) takes longer than a phased restart's check.
                retries: num(&vars, "release_gate_retries", 60, &mut errors, host) as u32,
                answered_retries: num(&vars, "release_health_retries", 15, &mut errors, host).max(1) as u32,
                interval: num(&vars, "release_gate_interval", 1, &mut errors, host) as u32,
                timeout: num(&vars, "release_health_timeout", 5, &mut errors, host).max(1) as u32,
            })
        }
        _ => None,
    };
    let cfg = HostCfg {
        gate,
        keep_releases: num(&vars, "keep_releases", 5, &mut errors, host).max(1) as usize,
        health_retries: num(&vars, "release_health_retries", 15, &mut errors, host) as u32,
        health_interval: num(&vars, "release_health_interval", 2, &mut errors, host) as u32,
        health_timeout: num(&vars, "release_health_timeout", 5, &mut errors, host).max(1) as u32,
        restart_timeout: num(&vars, "release_restart_timeout", 120, &mut errors, host).max(1) as u32,
        lock_ttl: num(&vars, "deploy_lock_ttl", 3600, &mut errors, host).max(60),
        deploy_to: deploy_to.trim_end_matches('/').to_string(),
        deploy_user,
        linked_files,
        linked_dirs,
        migrate: var_str(&vars, "release_migrate"),
        env_file: var_str(&vars, "app_env_file"),
        puma,
        sidekiq,
        faye,
        health_url,
    };
    errors.into_result()?;
    Ok((cfg, secrets))
}

/// The hosts that receive releases (after `--limit`), with their settings.
pub fn release_hosts(project: &Project, limits: &[String]) -> Result<Vec<(Host, HostCfg, Secrets)>, Diagnostics> {
    let mut errors = Diagnostics::default();
    let mut out = Vec::new();
    for host in project.limited(limits)? {
        let (vars, _) = match project.host_vars(&host) {
            Ok(v) => v,
            Err(e) => {
                errors.0.extend(e.0);
                continue;
            }
        };
        let wanted = var_list(&vars, "release_roles").unwrap_or_else(|| DEFAULT_RELEASE_ROLES.iter().map(|s| s.to_string()).collect());
        if !host.roles.iter().any(|r| wanted.contains(r)) {
            continue;
        }
        match host_cfg(project, &host) {
            Ok((cfg, s)) => out.push((host, cfg, s)),
            Err(e) => errors.0.extend(e.0),
        }
    }
    errors.into_result()?;
    if out.is_empty() {
        return Err(Diagnostic::new(format!(
            "no inventory host{} has a role that receives releases ({})",
            if limits.is_empty() { String::new() } else { format!(" within --limit {}", limits.join(",")) },
            DEFAULT_RELEASE_ROLES.join(", ")
        ))
        .at(Location::file(&project.inventory.doc.path))
        .help("give the app hosts the puma/sidekiq/faye/nginx roles, or set `release_roles`")
        .into());
    }
    let primaries: Vec<&str> = out.iter().filter(|(h, _, _)| h.primary).map(|(h, _, _)| h.name.as_str()).collect();
    if primaries.len() > 1 {
        return Err(Diagnostic::new(format!("more than one release host is flagged `primary: true`: {}", primaries.join(", ")))
            .at(Location::file(&project.inventory.doc.path))
            .help("flag exactly one host: migrations run there only")
            .into());
    }
    Ok(out)
}

/// The host that runs migrations: the one flagged primary, else the first puma host.
pub fn migration_host(targets: &[(Host, HostCfg, Secrets)]) -> Option<usize> {
    targets
        .iter()
        .position(|(h, _, _)| h.primary)
        .or_else(|| targets.iter().position(|(_, c, _)| !c.puma.is_empty()))
}

// ------------------------------------------------------------------ artifact

/// Packs `--dir` (sorted, owner-neutral, `gzip -n`, so the same tree gives the same
/// sha256) or reads `--artifact`.
pub fn artifact(source: &Source, revision: Option<&str>) -> Result<Artifact> {
    let (bytes, git_dir) = match source {
        Source::Artifact(p) => {
            let b = std::fs::read(p).with_context(|| format!("cannot read the artifact {}", p.display()))?;
            if b.len() < 2 || b[0] != 0x1f || b[1] != 0x8b {
                bail!("{} is not a gzip file (the artifact must be a .tar.gz)", p.display());
            }
            (b, None)
        }
        Source::Dir(d) => {
            if !d.is_dir() {
                bail!("--dir {}: not a directory", d.display());
            }
            let out = std::process::Command::new("tar")
                .arg("-C")
                .arg(d)
                .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--exclude=./.git", "--exclude=./log", "--exclude=./tmp", "-I", "gzip -n", "-cf", "-", "."])
                .output()
                .context("cannot run tar on the controller")?;
            if !out.status.success() {
                bail!("packing {} failed: {}", d.display(), String::from_utf8_lossy(&out.stderr).trim());
            }
            (out.stdout, Some(d.clone()))
        }
    };
    let sha256 = sha256_hex(&bytes);
    let revision = match revision {
        Some(r) => r.to_string(),
        None => git_dir
            .and_then(|d| {
                let o = std::process::Command::new("git").arg("-C").arg(d).args(["rev-parse", "--short", "HEAD"]).output().ok()?;
                o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| sha256[..12].to_string()),
    };
    if revision.chars().any(|c| c.is_control()) || revision.len() > 200 {
        bail!("--revision must be one printable line of at most 200 characters");
    }
    Ok(Artifact { bytes, sha256, revision })
}

pub use crate::release_scripts::*; // the scripts and the settings they are made from

// ------------------------------------------------------------------ running

/// What one script printed, split into `@@PV` markers and other lines.
#[derive(Debug, Default, Clone)]
pub struct Out {
    pub status: Option<i32>,
    pub marks: Vec<String>,
    pub other: Vec<String>,
    pub stderr: String,
}

impl Out {
    pub fn mark(&self, key: &str) -> Option<&str> {
        self.marks.iter().find_map(|m| m.strip_prefix(key).map(|r| r.trim_start()))
    }
    pub fn marks_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.marks.iter().filter_map(move |m| m.strip_prefix(key).map(|r| r.trim_start()))
    }
    pub fn why(&self) -> String {
        if let Some(f) = self.mark("failed").or_else(|| self.mark("unhealthy")) {
            return f.to_string();
        }
        let mut parts: Vec<String> = self.other.iter().rev().take(5).rev().cloned().collect();
        parts.extend(self.stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().map(String::from));
        format!("exit status {}: {}", self.status.map(|s| s.to_string()).unwrap_or_else(|| "(killed)".into()), parts.join(" | "))
    }
}

async fn run(t: &Target, script: &Script, timeout: Duration, echo: bool) -> Result<Out> {
    let mut out = Out::default();
    let name = t.host.name.clone();
    let secrets = t.secrets.clone();
    let (status, stderr) = t
        .conn
        .run_script_streaming(script, timeout, |line| {
            if let Some(m) = line.strip_prefix("@@PV ") {
                out.marks.push(secrets.redact(m));
            } else {
                if echo {
                    println!("  {name}: {}", secrets.redact(line));
                }
                out.other.push(secrets.redact(line));
            }
        })
        .await
        .map_err(|e| anyhow!("{}", t.secrets.redact(&format!("{e:#}"))))?;
    out.status = status;
    out.stderr = t.secrets.redact(&stderr);
    if echo {
        for l in out.stderr.lines() {
            println!("  {name}: {l}");
        }
    }
    Ok(out)
}

/// Runs one script per target (None: skip) in parallel, at most `forks` at once.
async fn phase(targets: &Arc<Vec<Target>>, scripts: Vec<Option<Script>>, timeout: Duration, forks: usize) -> Vec<Option<Result<Out>>> {
    let lazy = scripts.into_iter().map(|s| s.map(|s| Box::new(move || s) as LazyScript)).collect();
    phase_lazy(targets, lazy, timeout, forks).await
}

/// A script made only when its host's turn comes, so that at most `forks` copies of a large
/// upload are in memory at once.
type LazyScript = Box<dyn FnOnce() -> Script + Send>;

async fn phase_lazy(targets: &Arc<Vec<Target>>, scripts: Vec<Option<LazyScript>>, timeout: Duration, forks: usize) -> Vec<Option<Result<Out>>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, make) in scripts.into_iter().enumerate() {
        let Some(make) = make else { continue };
        let targets = targets.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            let s = make();
            match targets.get(i) {
                Some(t) => (i, run(t, &s, timeout, false).await),
                None => (i, Err(anyhow!("internal error: no target {i}"))),
            }
        });
    }
    let mut out: Vec<Option<Result<Out>>> = (0..targets.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((i, res)) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(res);
                }
            }
            Err(e) => eprintln!("internal error: a host task panicked: {e}"),
        }
    }
    out
}

async fn connect_all(project: &Project, hosts: Vec<(Host, HostCfg, Secrets)>, dir: &Path, forks: usize) -> Result<Vec<Target>> {
    let ssh = Arc::new(project.inventory.ssh.clone());
    let sem = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, (host, cfg, secrets)) in hosts.into_iter().enumerate() {
        let ssh = ssh.clone();
        let sem = sem.clone();
        let dir = dir.to_path_buf();
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            let c = Connection::connect(&host, &ssh, &dir, false).await;
            (i, host, cfg, secrets, c)
        });
    }
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, host, cfg, secrets, c) = r.map_err(|e| anyhow!("internal error: {e}"))?;
        match c {
            Ok(conn) => ok.push((i, Target { host, cfg, secrets, conn })),
            Err(e) => errors.push(format!("{}: {}", host.name, secrets.redact(&format!("{e:#}")))),
        }
    }
    if !errors.is_empty() {
        for (_, t) in ok {
            t.conn.close().await;
        }
        bail!("cannot connect, nothing was changed:\n  {}", errors.join("\n  "));
    }
    ok.sort_by_key(|(i, _)| *i);
    Ok(ok.into_iter().map(|(_, t)| t).collect())
}

async fn close_all(targets: Arc<Vec<Target>>) {
    if let Ok(ts) = Arc::try_unwrap(targets) {
        for t in ts {
            t.conn.close().await;
        }
    }
}

fn controller_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "controller".into())
}

fn utc_stamp() -> Result<String> {
    let o = std::process::Command::new("date").args(["-u", "+%Y%m%d%H%M%S"]).output().context("cannot run date")?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if s.len() != 14 || !s.chars().all(|c| c.is_ascii_digit()) {
        bail!("`date -u +%Y%m%d%H%M%S` gave `{s}`");
    }
    Ok(s)
}

fn iso_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn random_token() -> String {
    let mut seed = format!("{:?}{}{:?}", std::time::SystemTime::now(), std::process::id(), std::thread::current().id());
    if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
        seed.push_str(&String::from_utf8_lossy(&b));
    }
    sha256_hex(seed.as_bytes())[..16].to_string()
}

/// Whether a lock holder's info names a provision process on this controller that is gone.
fn holder_is_dead_here(info: &str, controller: &str) -> Option<String> {
    let get = |k: &str| info.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from));
    let (c, pid, tok) = (get("controller")?, get("pid")?, get("token")?);
    if c != controller {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "provision" {
        None
    } else {
        Some(tok)
    }
}

fn epoch_utc(secs: &str) -> String {
    std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", secs.trim()), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// A lock's info (`key=value ...`) for people: who, which process where, since when.
pub fn describe_holder(info: &str) -> String {
    let get = |k: &str| info.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from));
    match (get("who"), get("pid"), get("controller"), get("started"), get("expires")) {
        (Some(who), Some(pid), Some(ctl), Some(started), Some(exp)) if started.chars().all(|c| c.is_ascii_digit()) => format!(
            "{who} (provision pid {pid} on {ctl}) since {}; stale after {} or once that process is gone",
            epoch_utc(&started),
            epoch_utc(&exp)
        ),
        _ => info.trim().to_string(),
    }
}

/// "a b c: what" lines, hosts grouped by what was said about them.
fn grouped(items: Vec<(String, String)>) -> Vec<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (host, what) in items {
        match groups.iter_mut().find(|(w, _)| *w == what) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((what, vec![host])),
        }
    }
    groups.into_iter().map(|(what, hosts)| format!("{}: {what}", hosts.join(" "))).collect()
}

/// Takes the lock on every target, recovering locks left by dead runs of this controller.
/// On a held lock, releases the ones taken and fails naming the holder.
async fn lock_all(targets: &Arc<Vec<Target>>, token: &str, who: &str, sha: Option<&str>, forks: usize) -> Result<Vec<Out>> {
    let controller = controller_name();
    let pid = std::process::id();
    let scripts = targets.iter().map(|t| Some(lock_script(&t.cfg, token, who, &controller, pid, "", sha))).collect();
    let mut results = phase(targets, scripts, Duration::from_secs(120), forks).await;
    // Locks of dead runs from this controller: break them by their token.
    let mut retry: Vec<Option<Script>> = vec![None; targets.len()];
    let mut notes = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if let Some(Ok(o)) = r {
            if let Some(info) = o.mark("lock held") {
                if let (Some(tok), Some(t)) = (holder_is_dead_here(info, &controller), targets.get(i)) {
                    notes.push((t.host.name.clone(), format!("the deploy lock of a run that is gone ({}) is stale: taking it over", describe_holder(info))));
                    retry[i] = Some(lock_script(&t.cfg, token, who, &controller, pid, &tok, sha));
                }
            }
        }
    }
    for l in grouped(notes) {
        println!("  {l}");
    }
    let broken: Vec<bool> = retry.iter().map(Option::is_some).collect();
    if retry.iter().any(Option::is_some) {
        let again = phase(targets, retry, Duration::from_secs(120), forks).await;
        for (i, r) in again.into_iter().enumerate() {
            if r.is_some() {
                results[i] = r;
            }
        }
    }
    let mut outs = Vec::new();
    let mut problems = Vec::new();
    let mut recovered = Vec::new();
    let mut taken = vec![false; targets.len()];
    for (i, r) in results.into_iter().enumerate() {
        let name = targets.get(i).map(|t| t.host.name.clone()).unwrap_or_default();
        match r {
            Some(Ok(o)) if o.mark("probed").is_some() => {
                taken[i] = true;
                if let (Some(old), false) = (o.mark("lock recovered"), broken[i]) {
                    recovered.push((name.clone(), format!("recovered a stale deploy lock ({})", describe_holder(old))));
                }
                if let Some(orphan) = o.mark("orphan") {
                    recovered.push((name.clone(), format!("removed releases/{orphan}, left unfinished by a run that died")));
                }
                outs.push(o);
            }
            Some(Ok(o)) if o.mark("lock held").is_some() => {
                taken[i] = o.mark("lock taken").is_some() || o.mark("lock recovered").is_some();
                problems.push((name.clone(), format!("another release holds the deploy lock: {}", describe_holder(o.mark("lock held").unwrap_or_default()))));
                outs.push(o);
            }
            Some(Ok(o)) => {
                taken[i] = o.mark("lock taken").is_some() || o.mark("lock recovered").is_some();
                problems.push((name.clone(), o.why()));
                outs.push(o);
            }
            Some(Err(e)) => {
                problems.push((name.clone(), format!("{e:#}")));
                outs.push(Out::default());
            }
            None => outs.push(Out::default()),
        }
    }
    for l in grouped(recovered) {
        println!("  {l}");
    }
    if !problems.is_empty() {
        let scripts = targets.iter().enumerate().map(|(i, t)| taken[i].then(|| {
            let mut s = header(&t.cfg);
            s.push(unlock_lines(token));
            s
        })).collect();
        phase(targets, scripts, Duration::from_secs(60), forks).await;
        bail!("{}\nnothing was changed", grouped(problems).join("\n"));
    }
    Ok(outs)
}

fn is_stamp(n: &str) -> bool {
    n.len() == 14 && n.chars().all(|c| c.is_ascii_digit())
}

/// Releases of a host from its probe: (name, revision), oldest first, and the current one.
fn releases_of(o: &Out) -> (Vec<(String, String)>, String) {
    let mut list: Vec<(String, String)> = o
        .marks_of("release")
        .map(|r| {
            let (n, rev) = r.split_once(' ').unwrap_or((r, ""));
            (n.to_string(), rev.trim().to_string())
        })
        .collect();
    // Releases not named by a timestamp (made by hand or by another tool) count as oldest.
    list.sort_by_key(|(n, _)| (is_stamp(n), n.clone()));
    (list, o.mark("current").unwrap_or_default().trim().to_string())
}

/// Outcome of `provision release`.
pub struct ReleaseReport {
    pub release: String,
    pub ok: bool,
    pub rolled_back: bool,
}

/// Runs `provision release`. Ok(report) when it ran to an end (with or without rollback);
/// Err for failures that changed nothing or could not be cleaned up.
pub async fn release(opts: &ReleaseOptions, source: &Source, revision: Option<&str>) -> Result<ReleaseReport> {
    let t_start = Instant::now();
    let (project, hosts, secrets) = load_release_hosts(opts)?;
    let host_list: Vec<Host> = hosts.iter().map(|(h, _, _)| h.clone()).collect();
    project.preflight(&host_list, &secrets).map_err(anyhow::Error::from)?;
    // The migration host is chosen among all release hosts, so that --limit never moves
    // migrations to another host: a limit that leaves it out runs none.
    let migrate_name = if opts.limits.is_empty() {
        migration_host(&hosts).and_then(|i| hosts.get(i)).map(|(h, _, _)| h.name.clone())
    } else {
        let all = release_hosts(&project, &[]).map_err(anyhow::Error::from)?;
        migration_host(&all).and_then(|i| all.get(i)).map(|(h, _, _)| h.name.clone())
    };
    let migrate_at = hosts.iter().position(|(h, c, _)| Some(&h.name) == migrate_name.as_ref() && c.migrate.is_some());
    if migrate_at.is_none() && !opts.limits.is_empty() {
        if let Some(n) = &migrate_name {
            println!("note: migrations run on {n} only, which --limit leaves out: none will run");
        }
    }
    let art = artifact(source, revision)?;
    println!(
        "release of revision {} (artifact sha256 {}, {} KiB) to {} hosts: {}",
        art.revision,
        &art.sha256[..12],
        art.bytes.len().div_ceil(1024),
        hosts.len(),
        host_list.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(" ")
    );
    let dir = control_dir()?;
    let forks = opts.forks;
    let targets = Arc::new(connect_all(&project, hosts, dir.path(), forks).await?);
    let token = random_token();
    let who = format!("{}@{}", std::env::var("USER").unwrap_or_else(|_| "root".into()), controller_name());
    let result = release_locked(&targets, &token, &who, &art, migrate_at, forks, opts.verbose, opts.batch).await;
    if opts.verbose {
        for t in targets.iter() {
            println!("  {}: {} round trips", t.host.name, t.conn.round_trips());
        }
    }
    close_all(targets).await;
    let r = result?;
    println!("{} in {:.1} s", if r.ok { "released" } else { "release failed" }, t_start.elapsed().as_secs_f64());
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
async fn release_locked(targets: &Arc<Vec<Target>>, token: &str, who: &str, art: &Artifact, migrate_at: Option<usize>, forks: usize, verbose: bool, batch: Option<Batch>) -> Result<ReleaseReport> {
    // 1. lock + probe
    let probes = lock_all(targets, token, who, Some(&art.sha256), forks).await?;
    println!("[1/8] deploy lock taken on {} hosts", targets.len());
    let mut ts = utc_stamp()?;
    let newest = probes.iter().flat_map(|o| releases_of(o).0.into_iter().map(|(n, _)| n)).filter(|n| is_stamp(n)).max();
    if let Some(n) = newest {
        if n >= ts {
            // Two releases in one second, or a clock behind the hosts' newest: one past it.
            ts = (n.parse::<u64>().unwrap_or(0) + 1).to_string();
        }
    }
    let previous: Vec<String> = probes.iter().map(|o| releases_of(o).1).collect();

    let abort = |why: String, ts: Option<String>| async move {
        let scripts = targets.iter().map(|t| Some(abort_script(&t.cfg, token, ts.as_deref()))).collect();
        let cleaned = phase(targets, scripts, Duration::from_secs(120), forks).await;
        // Say only what is true: a host that could not be cleaned keeps the lock until it expires.
        let left: Vec<String> = cleaned
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Some(Ok(o)) if o.mark("unlocked").is_some() => None,
                Some(Ok(o)) => Some(format!("{}: {}", targets[i].host.name, o.why())),
                Some(Err(e)) => Some(format!("{}: {e:#}", targets[i].host.name)),
                None => None,
            })
            .collect();
        if left.is_empty() {
            anyhow!("{why}\nthe release was removed again and the lock released; `current` was not changed on any host")
        } else {
            anyhow!(
                "{why}\n`current` was not changed on any host; the release could not be removed and the lock not released on:\n  {}\n(the lock expires after deploy_lock_ttl)",
                left.join("\n  ")
            )
        }
    };

    // 2-3. upload, unpack, shared links
    let t = Instant::now();
    let uploaded: Vec<String> = targets.iter().zip(&probes).filter(|(_, p)| p.mark("have-artifact").is_none()).map(|(t, _)| t.host.name.clone()).collect();
    let payload = Arc::new(if uploaded.is_empty() { Script::new() } else { upload_payload(&art.bytes) });
    let scripts: Vec<Option<LazyScript>> = targets
        .iter()
        .zip(&probes)
        .map(|(tg, p)| {
            let (cfg, ts, sha, rev, payload) = (tg.cfg.clone(), ts.clone(), art.sha256.clone(), art.revision.clone(), payload.clone());
            let upload = p.mark("have-artifact").is_none();
            Some(Box::new(move || prepare_script_with(&cfg, &ts, &sha, &rev, upload.then_some(&*payload))) as LazyScript)
        })
        .collect();
    // At most 4 uploads at once: each holds its own copy of the script in memory.
    let prepared = phase_lazy(targets, scripts, Duration::from_secs(1800), forks.min(4)).await;
    let mut failures = Vec::new();
    for (i, r) in prepared.iter().enumerate() {
        let name = &targets[i].host.name;
        match r {
            Some(Ok(o)) if o.mark("prepared").is_some() => {
                for n in o.marks_of("note") {
                    println!("  {name}: note: {n}");
                }
            }
            Some(Ok(o)) => failures.push(format!("{name}: {}", o.why())),
            Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
            None => failures.push(format!("{name}: not run")),
        }
    }
    println!(
        "[2/8] artifact uploaded to {} ({} already had it); unpacked to releases/{ts} in {} ms",
        if uploaded.is_empty() { "no host".to_string() } else { uploaded.join(" ") },
        targets.len() - uploaded.len(),
        t.elapsed().as_millis()
    );
    if !failures.is_empty() {
        return Err(abort(format!("preparing the release failed:\n  {}", failures.join("\n  ")), Some(ts.clone())).await);
    }
    let cfg0 = &targets[0].cfg;
    println!("[3/8] shared links: {}", cfg0.linked_files.iter().chain(&cfg0.linked_dirs).cloned().collect::<Vec<_>>().join(" "));

    // 4. migrations on the one primary
    match migrate_at.and_then(|i| targets.get(i)) {
        Some(t) => {
            let cmd = t.cfg.migrate.clone().unwrap_or_default();
            let why = if t.host.primary { "the primary" } else { "the first puma host: no release host is flagged primary" };
            println!("[4/8] migrations on {} ({why}): {}", t.host.name, t.secrets.redact(&cmd));
            // `release_migrate` is the role's code (a variable of its defaults, or the
            // inventory's on purpose): it runs as written.
            let o = run(t, &migrate_script(&t.cfg, &ts, &Script::user_code(cmd.clone())), Duration::from_secs(3600), true).await;
            match o {
                Ok(o) if o.status == Some(0) => {}
                Ok(o) => return Err(abort(format!("the migration failed on {}: {}", t.host.name, o.why()), Some(ts.clone())).await),
                Err(e) => return Err(abort(format!("the migration failed on {}: {e:#}", t.host.name), Some(ts.clone())).await),
            }
        }
        None => println!("[4/8] migrations: none (no `release_migrate` for the primary host, or --limit leaves it out)"),
    }

    // 5. the health gate: on every puma host the new release runs beside the old one, on a
    // loopback port, and must answer the health check before anything is switched anywhere.
    let t = Instant::now();
    let scripts = targets.iter().map(|tg| tg.cfg.gate.as_ref().map(|_| gate_script(&tg.cfg, &ts))).collect();
    let gated = phase(targets, scripts, Duration::from_secs(900), forks).await;
    let mut failures = Vec::new();
    let mut passed = 0;
    for (i, r) in gated.iter().enumerate() {
        let (name, secrets) = (&targets[i].host.name, &targets[i].secrets);
        match r {
            None => {}
            Some(Ok(o)) if o.mark("healthy").is_some() => {
                passed += 1;
                if verbose {
                    println!("  {name}: {}", o.mark("healthy").unwrap_or_default());
                }
            }
            Some(Ok(o)) => {
                let mut f = format!("{name}: {}", o.mark("gate-failed").map(str::to_string).unwrap_or_else(|| o.why()));
                f.push_str("\n    the candidate's last log lines:");
                for l in o.marks_of("gate-log") {
                    f.push_str(&format!("\n    | {}", crate::terminal::printable(&secrets.redact_error(l))));
                }
                failures.push(f);
            }
            Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
        }
    }
    if passed > 0 || !failures.is_empty() {
        println!("[5/8] health gate: the new release answered on {passed} puma hosts before taking traffic ({} ms)", t.elapsed().as_millis());
    }
    if !failures.is_empty() {
        return Err(abort(
            format!("the new release failed its health gate, so it took no traffic:\n  {}", failures.join("\n  ")),
            Some(ts.clone()),
        )
        .await);
    }

    // 6-7. switch, restart, health: puma hosts batch by batch (all at once by default), the
    // others (sidekiq, faye) after every puma batch is healthy.
    let t = Instant::now();
    let is_puma: Vec<bool> = targets.iter().map(|tg| !tg.cfg.puma.is_empty()).collect();
    let groups = switch_groups(&is_puma, batch);
    let mut switched: Vec<usize> = Vec::new();
    let mut failures = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let scripts = targets.iter().enumerate().map(|(i, tg)| group.contains(&i).then(|| switch_script(&tg.cfg, &ts, true))).collect();
        let results = phase(targets, scripts, Duration::from_secs(900), forks).await;
        switched.extend(group);
        for &i in group {
            let name = &targets[i].host.name;
            match &results[i] {
                Some(Ok(o)) => {
                    for s in o.marks_of("step") {
                        if verbose || !s.starts_with("current") {
                            println!("  {name}: {s}");
                        }
                    }
                    if let Some(h) = o.mark("healthy") {
                        println!("  {name}: healthy: {h}");
                    }
                    if o.mark("switched").is_none() {
                        failures.push(format!("{name}: {}", o.why()));
                    }
                }
                Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
                None => failures.push(format!("{name}: not run")),
            }
        }
        if groups.len() > 1 {
            let names: Vec<&str> = group.iter().map(|&i| targets[i].host.name.as_str()).collect();
            println!("  batch {}/{}: {} {}", g + 1, groups.len(), names.join(" "), if failures.is_empty() { "switched and healthy" } else { "FAILED" });
        }
        if !failures.is_empty() {
            break;
        }
    }
    println!("[6-7/8] current -> releases/{ts} on {} of {} hosts, restarted, health checked in {} ms", switched.len(), targets.len(), t.elapsed().as_millis());
    if !failures.is_empty() {
        println!("release {ts} FAILED:\n  {}", failures.join("\n  "));
        println!("rolling back every switched host to its previous release");
        let scripts = targets
            .iter()
            .zip(&previous)
            .enumerate()
            .map(|(i, (tg, prev))| {
                let mut s = header(&tg.cfg);
                if !switched.contains(&i) {
                    // Never switched: only the new release goes.
                    s.push(crate::sh!("rm -rf \"$D/releases/\"{}\necho '@@PV switched'\n", ts));
                    return Some(s);
                }
                if prev.is_empty() {
                    s.push(crate::sh!("echo '@@PV failed no previous release to return to'\n"));
                    return Some(s);
                }
                let mut s = switch_script(&tg.cfg, prev, true);
                s.push(crate::sh!("rm -rf \"$D/releases/\"{}\n", ts));
                Some(s)
            })
            .collect();
        let back = phase(targets, scripts, Duration::from_secs(900), forks).await;
        let mut rb_fail = Vec::new();
        for (i, r) in back.iter().enumerate() {
            let name = &targets[i].host.name;
            match r {
                Some(Ok(o)) if o.mark("switched").is_some() && switched.contains(&i) => println!("  {name}: back on releases/{}", previous[i]),
                Some(Ok(o)) if o.mark("switched").is_some() => {}
                Some(Ok(o)) => rb_fail.push(format!("{name}: {}", o.why())),
                Some(Err(e)) => rb_fail.push(format!("{name}: {e:#}")),
                None => {}
            }
        }
        let line = format!("{} release {ts} (revision {}) failed its health check by {who}; rolled back", iso_now(), art.revision);
        let scripts = targets.iter().map(|tg| Some(finish_script(&tg.cfg, token, &line, false))).collect();
        phase(targets, scripts, Duration::from_secs(120), forks).await;
        if !rb_fail.is_empty() {
            println!("ROLLBACK FAILED on:\n  {}", rb_fail.join("\n  "));
        } else {
            println!("rolled back: every host is on its previous release again");
        }
        return Ok(ReleaseReport { release: ts, ok: false, rolled_back: rb_fail.is_empty() });
    }

    // 8. revisions log, cleanup, unlock
    let line = format!("{} release {ts} (revision {}, sha256 {}) deployed by {who}", iso_now(), art.revision, art.sha256);
    let scripts = targets.iter().map(|tg| Some(finish_script(&tg.cfg, token, &line, true))).collect();
    let finished = phase(targets, scripts, Duration::from_secs(300), forks).await;
    let mut removed = 0;
    for (i, r) in finished.iter().enumerate() {
        match r {
            Some(Ok(o)) => removed += o.marks_of("removed").count(),
            Some(Err(e)) => println!("  {}: finishing failed: {e:#}", targets[i].host.name),
            None => {}
        }
    }
    println!("[8/8] revisions.log appended; {removed} old release dir(s) removed (keep_releases {})", targets[0].cfg.keep_releases);
    Ok(ReleaseReport { release: ts, ok: true, rolled_back: false })
}

/// A release host: who it is, what it runs, its secrets.
type ReleaseHost = (Host, HostCfg, Secrets);

/// The project, its release hosts (limited), and every secret of theirs.
fn load_release_hosts(opts: &ReleaseOptions) -> Result<(Project, Vec<ReleaseHost>, Secrets)> {
    let project = Project::load(&opts.inventory, &opts.extra_vars).map_err(anyhow::Error::from)?;
    let hosts = release_hosts(&project, &opts.limits).map_err(anyhow::Error::from)?;
    let mut secrets = Secrets::default();
    for (_, _, s) in &hosts {
        secrets.merge(s);
    }
    Ok((project, hosts, secrets))
}

/// `provision rollback [--to RELEASE]`: every host back to RELEASE (default: the release
/// before its current one), restarted and health-checked. Returns whether all went well.
pub async fn rollback(opts: &ReleaseOptions, to: Option<&str>) -> Result<bool> {
    let t_start = Instant::now();
    let (project, hosts, secrets) = load_release_hosts(opts)?;
    project.preflight(&hosts.iter().map(|(h, _, _)| h.clone()).collect::<Vec<_>>(), &secrets).map_err(anyhow::Error::from)?;
    if let Some(t) = to {
        if t.is_empty() || t.contains('/') || t.starts_with('.') {
            bail!("--to {t}: give a release name as `provision releases` lists it");
        }
    }
    let dir = control_dir()?;
    let targets = Arc::new(connect_all(&project, hosts, dir.path(), opts.forks).await?);
    let token = random_token();
    let who = format!("{}@{}", std::env::var("USER").unwrap_or_else(|_| "root".into()), controller_name());
    let res = async {
        let probes = lock_all(&targets, &token, &who, None, opts.forks).await?;
        let mut dest = Vec::new();
        let mut problems = Vec::new();
        for (t, p) in targets.iter().zip(&probes) {
            let (list, cur) = releases_of(p);
            let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            let d = match to {
                Some(t) if names.contains(&t) => Some(t.to_string()),
                Some(want) => {
                    problems.push(format!("{}: has no release {want} (it has: {})", t.host.name, names.join(" ")));
                    None
                }
                None => match names.iter().position(|n| *n == cur) {
                    Some(i) if i > 0 => Some(names[i - 1].to_string()),
                    _ => {
                        problems.push(format!("{}: no release before the current one ({})", t.host.name, if cur.is_empty() { "none" } else { &cur }));
                        None
                    }
                },
            };
            dest.push(d.unwrap_or_default());
        }
        if !problems.is_empty() {
            let scripts = targets.iter().map(|t| Some(abort_script(&t.cfg, &token, None))).collect();
            phase(&targets, scripts, Duration::from_secs(60), opts.forks).await;
            bail!("cannot roll back, nothing was changed:\n  {}", problems.join("\n  "));
        }
        let scripts = targets.iter().zip(&dest).map(|(t, d)| Some(switch_script(&t.cfg, d, true))).collect();
        let out = phase(&targets, scripts, Duration::from_secs(900), opts.forks).await;
        let mut ok = true;
        for (i, r) in out.iter().enumerate() {
            let name = &targets[i].host.name;
            match r {
                Some(Ok(o)) if o.mark("switched").is_some() => {
                    println!("{name}: current -> releases/{}", dest[i]);
                    for s in o.marks_of("step").filter(|s| !s.starts_with("current")) {
                        println!("  {name}: {s}");
                    }
                    if let Some(h) = o.mark("healthy") {
                        println!("  {name}: healthy: {h}");
                    }
                }
                Some(Ok(o)) => {
                    ok = false;
                    println!("{name}: FAILED: {}", o.why());
                }
                Some(Err(e)) => {
                    ok = false;
                    println!("{name}: FAILED: {e:#}");
                }
                None => {}
            }
        }
        let scripts = targets
            .iter()
            .zip(&dest)
            .map(|(t, d)| Some(finish_script(&t.cfg, &token, &format!("{} rolled back to release {d} by {who}{}", iso_now(), if ok { "" } else { " (with failures)" }), false)))
            .collect();
        phase(&targets, scripts, Duration::from_secs(120), opts.forks).await;
        Ok::<bool, anyhow::Error>(ok)
    }
    .await;
    close_all(targets).await;
    let ok = res?;
    println!("{} in {:.1} s", if ok { "rolled back" } else { "rollback failed" }, t_start.elapsed().as_secs_f64());
    Ok(ok)
}

/// `provision releases`: the releases of every host, the current one marked.
pub async fn list(opts: &ReleaseOptions) -> Result<bool> {
    let project = Project::load(&opts.inventory, &opts.extra_vars).map_err(anyhow::Error::from)?;
    let hosts = release_hosts(&project, &opts.limits).map_err(anyhow::Error::from)?;
    let dir = control_dir()?;
    {
        let host_list: Vec<Host> = hosts.iter().map(|(h, _, _)| h.clone()).collect();
        let mut secrets = Secrets::default();
        for (_, _, s) in &hosts {
            secrets.merge(s);
        }
        project.preflight(&host_list, &secrets).map_err(anyhow::Error::from)?;
    }
    let targets = Arc::new(connect_all(&project, hosts, dir.path(), opts.forks).await?);
    let scripts = targets.iter().map(|t| Some(list_script(&t.cfg))).collect();
    let out = phase(&targets, scripts, Duration::from_secs(60), opts.forks).await;
    let mut ok = true;
    for (i, r) in out.iter().enumerate() {
        let t = &targets[i];
        match r {
            Some(Ok(o)) if o.mark("probed").is_some() => {
                let (list, cur) = releases_of(o);
                println!("{} ({}/releases):", t.host.name, t.cfg.deploy_to);
                if list.is_empty() {
                    println!("    (no releases)");
                }
                for (n, rev) in &list {
                    let mark = if *n == cur { "*" } else { " " };
                    let tail = if *n == cur { "  (current)" } else { "" };
                    println!("  {mark} {n}  {rev}{tail}");
                }
                if let Some(l) = o.mark("locked") {
                    println!("    deploy lock held: {}", l.trim());
                }
            }
            Some(Ok(o)) => {
                ok = false;
                println!("{}: FAILED: {}", t.host.name, o.why());
            }
            Some(Err(e)) => {
                ok = false;
                println!("{}: FAILED: {e:#}", t.host.name);
            }
            None => {}
        }
    }
    close_all(targets).await;
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> HostCfg {
        HostCfg {
            deploy_to: dir.to_string_lossy().into_owned(),
            deploy_user: "nobody-such-user".into(),
            keep_releases: 2,
            linked_files: vec!["config/database.yml".into()],
            linked_dirs: vec!["log".into(), "tmp/pids".into()],
            migrate: None,
            env_file: None,
            puma: vec![],
            sidekiq: vec![],
            faye: vec![],
            health_url: None,
            gate: None,
            health_retries: 1,
            health_interval: 1,
            health_timeout: 1,
            restart_timeout: 5,
            lock_ttl: 3600,
        }
    }

    fn sh(script: &str) -> Out {
        let o = std::process::Command::new("sh").arg("-c").arg(script).output().expect("sh");
        let mut out = Out { status: o.status.code(), stderr: String::from_utf8_lossy(&o.stderr).into_owned(), ..Default::default() };
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            match l.strip_prefix("@@PV ") {
                Some(m) => out.marks.push(m.to_string()),
                None => out.other.push(l.to_string()),
            }
        }
        out
    }

    fn art(content: &str) -> Artifact {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("app.rb"), content).unwrap();
        std::fs::create_dir_all(src.path().join("log")).unwrap();
        std::fs::create_dir_all(src.path().join("public/assets")).unwrap();
        std::fs::write(src.path().join(format!("public/assets/{content}.css")), content).unwrap();
        artifact(&Source::Dir(src.path().to_path_buf()), Some(content)).unwrap()
    }

    /// The release scripts, run with a local sh against a temp dir: lock, upload once,
    /// unpack, links, switch, keep_releases, unlock. (The real hosts are in tests/release.rs.)
    #[test]
    fn scripts_work_on_a_local_tree() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(&d.path().join("app"));
        let a1 = art("v1");
        let p = sh(&lock_script(&c, "tok1", "me", "ctl", 1, "", Some(&a1.sha256)));
        assert!(p.mark("lock taken").is_some(), "{p:?}");
        assert!(p.mark("have-artifact").is_none());
        // A second locker is refused and told who holds it.
        let q = sh(&lock_script(&c, "tok2", "other", "ctl", 2, "", None));
        assert!(q.mark("lock held").unwrap().contains("who=me"), "{q:?}");
        // Breaking by token recovers it.
        let q = sh(&lock_script(&c, "tok2", "other", "ctl", 2, "tok1", None));
        assert!(q.mark("lock recovered").is_some(), "{q:?}");
        let u = sh(&format!("{}{}", header(&c).as_str(), unlock_lines("tok1").as_str()));
        assert!(u.mark("unlocked").is_none(), "only the holder unlocks");
        sh(&format!("{}{}", header(&c).as_str(), unlock_lines("tok2").as_str()));

        let mut names = Vec::new();
        let mut last = None;
        for (i, v) in ["v1", "v2", "v3", "v4"].iter().enumerate() {
            let a = art(v);
            let p = sh(&lock_script(&c, "t", "me", "ctl", 1, "", Some(&a.sha256)));
            let ts = format!("2026010100000{i}");
            let o = sh(&prepare_script(&c, &ts, &a, p.mark("have-artifact").is_none()));
            assert!(o.mark("prepared").is_some(), "{o:?}");
            let o = sh(&switch_script(&c, &ts, true));
            assert!(o.mark("switched").is_some(), "{o:?}");
            let o = sh(&finish_script(&c, "t", &format!("release {ts}"), true));
            assert!(o.mark("unlocked").is_some(), "{o:?}");
            names.push(ts);
            last = Some(a);
        }
        let rel = d.path().join("app/releases");
        let mut kept: Vec<String> = std::fs::read_dir(&rel).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        kept.sort();
        assert_eq!(kept, names[2..].to_vec());
        let cur = std::fs::read_link(d.path().join("app/current")).unwrap();
        assert!(cur.ends_with(&names[3]));
        assert_eq!(std::fs::read_to_string(d.path().join("app/current/app.rb")).unwrap(), "v4");
        assert_eq!(std::fs::read_to_string(d.path().join("app/current/REVISION")).unwrap().trim(), "v4");
        assert!(std::fs::symlink_metadata(d.path().join("app/current/log")).unwrap().file_type().is_symlink());
        assert!(std::fs::symlink_metadata(d.path().join("app/current/tmp/pids")).unwrap().file_type().is_symlink());
        assert!(std::fs::symlink_metadata(d.path().join("app/current/config/database.yml")).unwrap().file_type().is_symlink());
        // Assets: each release has its own and the one before's, never older ones.
        let assets: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(d.path().join("app/current/public/assets")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(assets, vec!["v3.css", "v4.css"]);
        let log = std::fs::read_to_string(d.path().join("app/revisions.log")).unwrap();
        assert_eq!(log.lines().count(), 4);
        // Artifacts of removed releases are removed too.
        assert_eq!(std::fs::read_dir(d.path().join("app/.artifacts")).unwrap().count(), 2);
        // The same artifact again is not uploaded again.
        let a = last.expect("an artifact");
        let p = sh(&lock_script(&c, "t", "me", "ctl", 1, "", Some(&a.sha256)));
        assert!(p.mark("have-artifact").is_some(), "{p:?}");
        // A corrupt upload is refused.
        let mut bad = art("v5");
        bad.bytes[20] ^= 0xff;
        let o = sh(&prepare_script(&c, "20260101000009", &bad, true));
        assert!(o.mark("prepared").is_none() && o.status != Some(0), "{o:?}");
        // Rolling back by switching to an older release keeps the others.
        let o = sh(&switch_script(&c, &names[2], true));
        assert!(o.mark("switched").is_some());
        assert!(std::fs::read_link(d.path().join("app/current")).unwrap().ends_with(&names[2]));
        let o = sh(&list_script(&c));
        assert_eq!(o.mark("current"), Some(names[2].as_str()));
    }

    #[test]
    fn a_dead_runs_unfinished_release_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(&d.path().join("app"));
        let a = art("v1");
        sh(&lock_script(&c, "t1", "me", "ctl", 1, "", None));
        assert!(sh(&prepare_script(&c, "20260101000001", &a, true)).mark("prepared").is_some());
        // The run dies here; the next one breaks its lock and removes the release.
        let p = sh(&lock_script(&c, "t2", "me", "ctl", 1, "t1", None));
        assert_eq!(p.mark("orphan"), Some("20260101000001"), "{p:?}");
        assert!(!d.path().join("app/releases/20260101000001").exists());
        // A release that went live before the run died stays.
        assert!(sh(&prepare_script(&c, "20260101000002", &a, false)).mark("prepared").is_some());
        assert!(sh(&switch_script(&c, "20260101000002", true)).mark("switched").is_some());
        let p = sh(&lock_script(&c, "t3", "me", "ctl", 1, "t2", None));
        assert!(p.mark("orphan").is_none(), "{p:?}");
        assert!(d.path().join("app/releases/20260101000002").exists());
    }

    /// The health check against a local server, with curl and with bash's /dev/tcp.
    #[test]
    fn health_check_with_and_without_curl() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut c) = conn else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut req = String::new();
                let mut buf = [0u8; 1024];
                while !req.contains("\r\n\r\n") {
                    match std::io::Read::read(&mut c, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.push_str(&String::from_utf8_lossy(&buf[..n])),
                    }
                }
                // /up answers 503 twice, then 200; /down always 500.
                let code = if req.starts_with("GET /up ") && n >= 2 { "200 OK" } else if req.starts_with("GET /up ") { "503 No" } else { "500 No" };
                let _ = std::io::Write::write_all(&mut c, format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
                let _ = c.shutdown(std::net::Shutdown::Write);
                let _ = std::io::Read::read(&mut c, &mut buf);
            }
        });
        let up = sh(&health_lines(&format!("http://127.0.0.1:{port}/up"), 5, 0, 2));
        assert!(up.mark("healthy").is_some_and(|h| h.contains("try 3")), "{up:?}");
        let down = sh(&health_lines(&format!("http://127.0.0.1:{port}/down"), 2, 0, 2));
        assert!(down.mark("unhealthy").is_some_and(|h| h.contains("500")), "{down:?}");
        assert_eq!(down.status, Some(5));
        // Without curl: bash's /dev/tcp.
        let nocurl = format!("curl() {{ return 127; }}\ncommand() {{ [ \"$2\" = curl ] && return 1; builtin command \"$@\"; }}\n{}", health_lines(&format!("http://127.0.0.1:{port}/down"), 1, 0, 2).as_str());
        let o = sh(&nocurl);
        assert!(o.mark("unhealthy").is_some_and(|h| h.contains("tcp")), "{o:?}");
        let nocurl = format!("command() {{ [ \"$2\" = curl ] && return 1; builtin command \"$@\"; }}\n{}", health_lines(&format!("http://127.0.0.1:{port}/up"), 3, 0, 2).as_str());
        let o = sh(&nocurl);
        assert!(o.mark("healthy").is_some_and(|h| h.contains("tcp")), "{o:?}");
    }

    #[test]
    fn expired_lock_is_recovered() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(&d.path().join("app"));
        c.lock_ttl = 60;
        let lock = d.path().join("app/.deploy-lock");
        std::fs::create_dir_all(&lock).unwrap();
        std::fs::write(lock.join("info"), "token=old\nwho=ghost\nexpires=1000\n").unwrap();
        let p = sh(&lock_script(&c, "new", "me", "ctl", 1, "", None));
        assert!(p.mark("lock recovered").unwrap().contains("who=ghost"), "{p:?}");
    }

    #[test]
    fn command_lines_parse() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let c = Cli::try_parse_from(["provision", "release", "inv.yml", "--dir", "app", "--revision", "r1", "--limit", "app1"]).unwrap();
        assert!(matches!(c.command, Some(Command::Release(ref a)) if a.dir.is_some() && a.target.hosts.limits == ["app1"]));
        assert!(Cli::try_parse_from(["provision", "release", "inv.yml"]).is_err(), "a source is required");
        assert!(Cli::try_parse_from(["provision", "release", "--dir", "a", "--artifact", "b.tar.gz"]).is_err(), "one source");
        let c = Cli::try_parse_from(["provision", "rollback", "--to", "20260101000000"]).unwrap();
        assert!(matches!(c.command, Some(Command::Rollback(ref a)) if a.to.as_deref() == Some("20260101000000")));
        let c = Cli::try_parse_from(["provision", "do", "inv.yml", "sidekiq:quiet", "--limit", "worker1"]).unwrap();
        assert!(matches!(c.command, Some(Command::Do(ref a)) if a.args == ["inv.yml", "sidekiq:quiet"]));
        let c = Cli::try_parse_from(["provision", "do", "puma:status"]).unwrap();
        assert!(matches!(c.command, Some(Command::Do(ref a)) if a.args == ["puma:status"]));
        assert!(matches!(Cli::try_parse_from(["provision", "tasks"]).unwrap().command, Some(Command::Tasks(_))));
        assert!(matches!(Cli::try_parse_from(["provision", "releases", "inv.yml"]).unwrap().command, Some(Command::Releases(_))));
    }

    #[test]
    fn dead_holder_on_this_controller() {
        assert_eq!(holder_is_dead_here("token=abc who=x controller=me pid=999999999 started=1", "me"), Some("abc".into()));
        assert_eq!(holder_is_dead_here("token=abc controller=other pid=999999999", "me"), None);
    }

    #[test]
    fn migration_script_runs_in_the_release() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(&d.path().join("app"));
        std::fs::create_dir_all(d.path().join("app/releases/1")).unwrap();
        let o = sh(&migrate_script(&c, "1", &Script::user_code("pwd; echo migrated")));
        assert_eq!(o.status, Some(0), "{o:?}");
        assert!(o.other.iter().any(|l| l.ends_with("/app/releases/1")), "{o:?}");
    }
}

// ------------------------------------------------------------------ command line

/// Shared by `release`, `rollback` and `releases`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeployTarget {
    /// The inventory file [default: $PROVISION_INVENTORY, else inventories/staging.yml]
    pub inventory: Option<PathBuf>,
    #[command(flatten)]
    pub hosts: HostOptions,
}

pub use crate::flags::HostOptions;

impl DeployTarget {
    fn options(&self) -> ReleaseOptions {
        let inventory = crate::inventory::inventory_path(self.inventory.clone());
        let h = &self.hosts;
        ReleaseOptions { inventory, limits: h.limits.clone(), extra_vars: h.extra_vars.clone(), forks: h.forks, verbose: h.verbose, batch: None }
    }
}

pub const RELEASE_HELP: &str = "Examples:
  provision release inventories/staging.yml --dir ../flipper
      pack a directory (build its assets first) and release it
  provision release --artifact build/flipper-1a2b3c.tar.gz --revision 1a2b3c
  provision release inventories/staging.yml --dir . --limit app1

Steps: deploy lock; upload once per host (by sha256) and unpack to releases/TIMESTAMP;
shared links (linked_files, linked_dirs); migrations (release_migrate) on the primary host
only; switch `current` on every host once all are prepared; restart (puma phased restart or
start, sidekiq quieted before and restarted after, faye restarted); GET /up on every puma
host; on failure every host goes back to its previous release and the exit status is 1;
revisions.log; keep the last keep_releases (default 5).

Exit status: 0 released, 1 failed (rolled back when the health check failed).";

pub const ROLLBACK_HELP: &str = "Examples:
  provision rollback inventories/staging.yml       back to the release before current
  provision rollback inventories/staging.yml --to 20261122093000

Exit status: 0 rolled back and healthy, 1 otherwise.";

pub const RELEASES_HELP: &str = "Example:
  provision releases inventories/staging.yml    every host's releases; * marks current";

/// `provision release`.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["dir", "artifact"])))]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub target: DeployTarget,
    /// Pack this directory (build assets in it first) and release it
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Release this .tar.gz
    #[arg(long, value_name = "FILE.tar.gz")]
    pub artifact: Option<PathBuf>,
    /// The revision recorded in REVISION and revisions.log [default: git HEAD of --dir, else the artifact's sha256]
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Switch the puma hosts N (or N%) at a time, each batch healthy before the next [default: all at once]
    #[arg(long, value_name = "N|N%")]
    pub batch: Option<Batch>,
}

/// `provision rollback`.
#[derive(clap::Args, Debug, Clone)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: DeployTarget,
    /// The release to return to [default: the one before current]
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("cannot start the async runtime")
}

fn report_err(e: anyhow::Error) -> i32 {
    match e.downcast_ref::<Diagnostics>() {
        // Input errors print as themselves: file:line, the message and the help.
        Some(d) => eprintln!("{d}"),
        None => eprintln!("error: {e:#}"),
    }
    1
}

pub fn cli_release(a: ReleaseArgs) -> i32 {
    let source = match (&a.dir, &a.artifact) {
        (Some(d), _) => Source::Dir(d.clone()),
        (None, Some(f)) => Source::Artifact(f.clone()),
        (None, None) => return report_err(anyhow!("give --dir PATH or --artifact FILE.tar.gz")),
    };
    let mut opts = a.target.options();
    opts.batch = a.batch;
    match runtime().and_then(|rt| rt.block_on(release(&opts, &source, a.revision.as_deref()))) {
        Ok(r) if r.ok => 0,
        Ok(r) => {
            eprintln!("error: release {} failed{}", r.release, if r.rolled_back { "; rolled back to the previous release" } else { "" });
            1
        }
        Err(e) => report_err(e),
    }
}

pub fn cli_rollback(a: RollbackArgs) -> i32 {
    let opts = a.target.options();
    match runtime().and_then(|rt| rt.block_on(rollback(&opts, a.to.as_deref()))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => report_err(e),
    }
}

pub fn cli_releases(a: DeployTarget) -> i32 {
    let opts = a.options();
    match runtime().and_then(|rt| rt.block_on(list(&opts))) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => report_err(e),
    }
}
