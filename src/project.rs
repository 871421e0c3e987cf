//! The project: an inventory, the roles beside it and the `-e` variables, loaded once by
//! [`Project::load`] for every verb, with the hosts a [`Selection`] picks. Nothing connects.

use crate::error::{Diagnostic, Diagnostics, Location};
use crate::inventory::{Host, Inventory};
use crate::host_facts::{FactsUsed, HostFacts};
use crate::resources::{check_host_roles, lower_host, HostResources, Relower};
use crate::roles::{find_roles_dir, Roles};
use crate::vars::{parse_extra_vars, Secrets};
use serde_yaml::Mapping;
use std::path::PathBuf;
use std::sync::Arc;

/// What to load and which hosts: the inventory, `--limit`, `--role` and `-e`, the same for
/// every verb.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub inventory: PathBuf,
    /// Only hosts that have one of these roles (converge also applies only these roles).
    pub roles: Vec<String>,
    /// Only these hosts or groups.
    pub limits: Vec<String>,
    /// `KEY=VALUE`, over every other variable.
    pub extra_vars: Vec<String>,
    /// Only this share of the selected hosts (`--shard K/N`).
    pub shard: Option<Shard>,
    /// `--persist SECONDS`: overrides the inventory's `ssh.persist`.
    pub persist: Option<u64>,
}

/// Share K of N of the selected hosts, by a hash of each host's name: N controllers running
/// shards 1/N to N/N together cover every selected host exactly once, and a host stays in
/// its shard when others are added to or removed from the inventory (a retried shard, or an
/// Indexed Job's next run, works on the same hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let wrong = || format!("`{s}` is not a shard: write K/N with 1 <= K <= N, such as 2/4");
        let (k, n) = s.split_once('/').ok_or_else(wrong)?;
        let (index, count) = (k.trim().parse::<usize>().map_err(|_| wrong())?, n.trim().parse::<usize>().map_err(|_| wrong())?);
        if index == 0 || index > count {
            return Err(wrong());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the host named `name` is in this shard.
    pub fn has(&self, name: &str) -> bool {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % self.count as u64) as usize == self.index - 1
    }
}

/// A loaded project.
pub struct Project {
    pub inventory: Inventory,
    pub roles: Roles,
    /// The `-e` variables.
    pub extra: Mapping,
    pub selection: Selection,
    /// The selected hosts, in inventory order.
    pub hosts: Vec<Host>,
}

impl Project {
    /// Loads the inventory, the roles (beside or above the inventory, else `./roles`) and
    /// `-e`, and selects the hosts. Every input error is returned at once, each with its
    /// file and line.
    pub fn load(selection: &Selection) -> Result<Project, Diagnostics> {
        let mut inventory = Inventory::load(&selection.inventory)?;
        if let Some(secs) = selection.persist {
            inventory.ssh.persist_secs = secs;
        }
        let roles_dir = find_roles_dir(&selection.inventory).ok_or_else(|| {
            Diagnostic::new("no `roles/` directory found beside or above the inventory, nor in the current directory")
                .at(Location::file(&selection.inventory))
                .help("run provision from the project's directory, which holds roles/ and inventories/")
        })?;
        let roles = Roles::load(&roles_dir)?;
        let extra = parse_extra_vars(&selection.extra_vars).map_err(Diagnostic::new)?;
        let mut errors = Diagnostics::default();
        for host in &inventory.hosts {
            if let Err(e) = check_host_roles(&inventory, host, &roles) {
                errors.0.extend(e.0);
            }
        }
        for r in &selection.roles {
            if roles.get(r).is_none() {
                errors.push(Diagnostic::new(format!("`--role {r}`: no such role")).did_you_mean(r, roles.roles.keys().map(String::as_str)));
            }
        }
        let hosts: Vec<Host> = match inventory.limited(&selection.limits) {
            Ok(hosts) => hosts
                .into_iter()
                .filter(|h| selection.roles.is_empty() || h.roles.iter().any(|r| selection.roles.contains(r)))
                .filter(|h| selection.shard.map_or(true, |s| s.has(&h.name)))
                .cloned()
                .collect(),
            Err(e) => {
                errors.0.extend(e.0);
                Vec::new()
            }
        };
        errors.into_result()?;
        Ok(Project { inventory, roles, extra, selection: selection.clone(), hosts })
    }

    /// The merged variables of `host` (role defaults of its roles and their dependencies <
    /// inventory < host < `-e`), and the secrets to redact from its output. The verbs that
    /// use these (release, do, db-copy) do not probe: a variable computed from `facts` holds
    /// the value of the host's facts at its last converge from this controller, or of the
    /// stand-ins ([`HostFacts::stand_in`]) when there was none.
    pub fn host_vars(&self, host: &Host) -> Result<(Mapping, Secrets), Diagnostics> {
        let mut secrets = self.inventory.secrets.clone();
        let role_names = self.roles.with_dependencies(&host.roles);
        let login = format!("{}@{}:{}", host.user, host.address, host.port);
        let known = crate::host_facts::last_known(&login).unwrap_or_else(HostFacts::stand_in);
        let facts = known.template_value(&FactsUsed::default());
        let vars = crate::resources::host_vars(&self.inventory, host, &self.roles, &role_names, &self.extra, &facts, &mut secrets)?;
        Ok((vars, secrets))
    }

    /// `host`'s resources (its roles, or only `only_roles` and their dependencies), lowered
    /// with the host's last known facts when `known` and kept, else the stand-ins; when a
    /// template read them, the result can lower the host again once its facts are probed.
    pub fn lower_host(self: &Arc<Self>, host: &Host, only_roles: &[String], known: bool) -> Result<HostResources, Diagnostics> {
        let login = format!("{}@{}:{}", host.user, host.address, host.port);
        let assumed = known.then(|| crate::host_facts::last_known(&login)).flatten().unwrap_or_else(HostFacts::stand_in);
        let used = FactsUsed::default();
        let lowered = lower_host(&self.inventory, host, &self.roles, &self.extra, only_roles, &assumed, &used);
        let (project, h, only) = (self.clone(), host.clone(), only_roles.to_vec());
        let lower = Arc::new(move |facts: &HostFacts| lower_host(&project.inventory, &h, &project.roles, &project.extra, &only, facts, &FactsUsed::default()));
        let mut res = match lowered {
            Ok(res) => res,
            // An error found with assumed facts that read them may not be the host's: a
            // converge probes the host's facts and lowers it again before saying so. Unless
            // a host unlike them in every fact has the same errors (a pool smaller than the
            // threads, a bad value): those are the inventory's, said before connecting.
            Err(e) if known && used.get() && !same_errors_with_other_facts(&e, &(lower)(&HostFacts::contrast())) => HostResources {
                host: host.name.clone(),
                secrets: self.inventory.secrets.clone(),
                uses_facts: true,
                deferred_error: Some(e.to_string()),
                ..Default::default()
            },
            Err(e) => return Err(e),
        };
        if res.uses_facts {
            res.relower = Some(Relower { lower, assumed, login });
        }
        Ok(res)
    }

    /// Every selected host's resources (its roles, or only `--role`'s), all errors at once,
    /// with stand-in facts (`validate`: the same answer on every machine).
    pub fn lower(self: &Arc<Self>) -> Result<Vec<(Host, HostResources)>, Diagnostics> {
        self.lower_hosts(false)
    }

    /// As [`Project::lower`], with each host's last known facts (a converge, which probes).
    pub fn lower_known(self: &Arc<Self>) -> Result<Vec<(Host, HostResources)>, Diagnostics> {
        self.lower_hosts(true)
    }

    fn lower_hosts(self: &Arc<Self>, known: bool) -> Result<Vec<(Host, HostResources)>, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut out = Vec::new();
        for host in &self.hosts {
            match self.lower_host(host, &self.selection.roles, known) {
                Ok(res) => out.push((host.clone(), res)),
                Err(e) => {
                    for d in e.0 {
                        if !errors.0.contains(&d) {
                            errors.push(d);
                        }
                    }
                }
            }
        }
        errors.into_result()?;
        Ok(out)
    }

    /// Errors when a host can't be connected to (placeholder address, unset `!env`).
    pub fn preflight<'a>(&self, hosts: impl IntoIterator<Item = &'a Host>, secrets: &'a Secrets) -> Result<(), Diagnostics> {
        self.inventory.preflight(hosts, &secrets.missing_env)
    }
}

/// Whether lowering with other facts failed with exactly the errors `e` holds.
fn same_errors_with_other_facts(e: &Diagnostics, other: &Result<HostResources, Diagnostics>) -> bool {
    match other {
        Err(o) => e.0.iter().all(|d| o.0.contains(d)),
        Ok(_) => false,
    }
}
