//! Who receives a release and how: each release host's settings from its variables
//! (`deploy_to`, `deploy_user`, linked paths, services, the health check and the gate),
//! the host that runs migrations, and the order in which hosts switch (`--batch`).

use crate::error::{Diagnostic, Diagnostics, Location};
use crate::inventory::Host;
use crate::project::Project;
use crate::release_scripts::{GateCfg, HostCfg, StepCmd};
use crate::secrets::Secrets;
use crate::vars::{var_list, var_str};

/// Roles whose hosts receive the release, unless `release_roles` says otherwise.
pub const DEFAULT_RELEASE_ROLES: [&str; 4] = ["puma", "sidekiq", "faye", "nginx"];

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


fn num(vars: &serde_yaml::Mapping, name: &str, default: u64, errors: &mut Diagnostics, host: &Host) -> u64 {
    match var_str(vars, name) {
        None => default,
        Some(s) => s.trim().parse().unwrap_or_else(|_| {
            errors.push(Diagnostic::new(format!("host `{}`: `{name}` must be a whole number, found `{s}`", host.name)));
            default
        }),
    }
}

/// A variable's string as it is, an empty one included (None: not set, or null).
fn raw_str(vars: &serde_yaml::Mapping, name: &str) -> Option<String> {
    vars.get(name).and_then(crate::yaml::scalar_string)
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
        // Puma listens on the host's private address (the puma role); the check runs on the
        // host itself. The address was checked to be an IP when the inventory was read.
        let ip = if host.private_address.contains(':') { format!("[{}]", host.private_address) } else { host.private_address.clone() };
        Some(format!("http://{ip}:{}{}", port.trim(), path.trim()))
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
        // An empty `release_migrate`/`release_bundle` turns the step off, so the raw value
        // (var_str reads an empty string as unset).
        migrate: StepCmd::from_var(raw_str(&vars, "release_migrate")),
        bundle: StepCmd::from_var(raw_str(&vars, "release_bundle")),
        assets: var_str(&vars, "release_assets"),
        rails_env: var_str(&vars, "rails_env"),
        env_file: var_str(&vars, "app_env_file"),
        puma,
        sidekiq,
        faye,
        health_url,
    };
    errors.into_result()?;
    Ok((cfg, secrets))
}

/// A release host: who it is, what it runs, its secrets.
pub type ReleaseHost = (Host, HostCfg, Secrets);

/// Those of `hosts` that receive releases, with their settings.
pub fn release_hosts(project: &Project, hosts: &[Host]) -> Result<Vec<ReleaseHost>, Diagnostics> {
    let limits = &project.selection.limits;
    let mut errors = Diagnostics::default();
    let mut out = Vec::new();
    for host in hosts.iter().cloned() {
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
pub fn migration_host(targets: &[ReleaseHost]) -> Option<usize> {
    targets
        .iter()
        .position(|(h, _, _)| h.primary)
        .or_else(|| targets.iter().position(|(_, c, _)| !c.puma.is_empty()))
}


/// The project (by [`Project::load`]), its selected release hosts with their settings, and
/// every secret of theirs; checked so that each can be connected to.
pub fn load(selection: &crate::project::Selection) -> Result<(Project, Vec<ReleaseHost>, Secrets), Diagnostics> {
    let project = Project::load(selection)?;
    let hosts = release_hosts(&project, &project.hosts)?;
    let mut secrets = Secrets::default();
    for (_, _, s) in &hosts {
        secrets.merge(s);
    }
    project.preflight(hosts.iter().map(|(h, _, _)| h), &secrets)?;
    Ok((project, hosts, secrets))
}
