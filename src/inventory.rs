//! Inventory: which hosts exist, how to reach them, their roles, flags and variables.
//!
//! The whole file is validated before anything connects: unknown keys (with a "did you
//! mean"), wrong types, duplicate hosts and malformed addresses are all reported with
//! `file:line:column`. Whether each role exists is checked by the role loader.

use crate::error::{Diagnostic, Diagnostics};
use crate::secrets::{extract_secrets, Secrets};
use crate::yaml::{key, Doc, MapReader, Seg, YPath};
use indexmap::IndexMap;
use serde_yaml::{Mapping, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How to reach the hosts.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub connect_timeout_secs: u64,
    /// Who `provision bootstrap` logs in as on a fresh server (root, or a cloud image's sudo user).
    pub initial_user: String,
    /// Keep each host's SSH master this many seconds after its last use, for the next run
    /// (0: close it at the end of the run). See [`crate::ssh_persist`].
    pub persist_secs: u64,
}

/// One host of the inventory.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    /// The address the host's private services listen on and its peers reach it at (a
    /// private network's); `address` when not given.
    pub private_address: String,
    pub port: u16,
    pub user: String,
    pub roles: Vec<String>,
    /// Capistrano's `primary: true`: the one host that runs one-off commands such as migrations.
    pub primary: bool,
    pub vars: Mapping,
    /// Where the host is defined, for errors about it.
    pub path: YPath,
}

/// A loaded, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub doc: Doc,
    pub stage: String,
    pub ssh: SshSettings,
    pub vars: Mapping,
    pub hosts: Vec<Host>,
    /// Explicit groups; roles act as groups too (see [`Inventory::group_members`]).
    pub groups: IndexMap<String, Vec<String>>,
    /// Groups' own variables, in the order the groups are written (a later group wins).
    pub group_vars: IndexMap<String, Mapping>,
    pub secrets: Secrets,
    /// `hosts` and `groups` as one template value, built once (see [`crate::context`]).
    pub template_topology: std::sync::OnceLock<minijinja::Value>,
}

impl Inventory {
    /// Loads and validates the inventory at `path`. Every error found is returned.
    pub fn load(path: &Path) -> Result<Inventory, Diagnostics> {
        let doc = Doc::load(path)?;
        Inventory::from_doc(doc)
    }

    /// Validates a parsed inventory document.
    pub fn from_doc(doc: Doc) -> Result<Inventory, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut secrets = Secrets::default();
        secrets.base_dir = doc.path.parent().map(Path::to_path_buf);
        let root = doc.value.clone();
        let mut top = MapReader::new(&doc, vec![], &root, "the inventory").map_err(Diagnostics::from)?;

        let stage = match top.opt_string("stage") {
            Ok(Some(s)) if !s.trim().is_empty() => s,
            Ok(_) => {
                errors.push(
                    doc.error(&[], "the inventory has no `stage`")
                        .help("add `stage: staging` (or production, sandbox, ...) at the top"),
                );
                String::new()
            }
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };

        let ssh = read_ssh(&doc, top.get("ssh")).unwrap_or_else(|e| {
            errors.push(e);
            default_ssh(&doc.path)
        });

        let vars = match top.get("vars") {
            None | Some(Value::Null) => Mapping::new(),
            Some(v) => match read_vars(&doc, &[Seg::Key("vars".into())], v, &mut secrets) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(e);
                    Mapping::new()
                }
            },
        };

        let mut hosts = Vec::new();
        match top.get("hosts") {
            None | Some(Value::Null) => errors.push(
                doc.error(&[], "the inventory has no `hosts`").help("add a `hosts:` mapping of host name to address and roles"),
            ),
            Some(Value::Mapping(map)) => {
                for (name, value) in map {
                    let Some(name) = name.as_str() else {
                        errors.push(doc.error(&[Seg::Key("hosts".into())], "host names must be strings"));
                        continue;
                    };
                    match read_host(&doc, name, value, &mut secrets) {
                        Ok(h) => hosts.push(h),
                        Err(e) => errors.push(e),
                    }
                }
            }
            Some(other) => errors.push(
                doc.value_error(&[Seg::Key("hosts".into())], format!("`hosts` must be a mapping, found {}", crate::yaml::type_name(other)))
                    .help("write `hosts:` followed by `  NAME: {address: ..., roles: [...]}` entries"),
            ),
        }
        // serde_yaml rejects duplicate keys at parse time, so duplicates here come from
        // two names for one address, which is almost always a copy-paste mistake.
        let mut seen: IndexMap<(String, u16), &str> = IndexMap::new();
        for h in &hosts {
            if let Some(first) = seen.insert((h.address.clone(), h.port), &h.name) {
                errors.push(
                    doc.value_error(&key(&h.path, "address"), format!("hosts `{first}` and `{}` have the same address {}:{}", h.name, h.address, h.port))
                        .help("each host must have its own address; remove the duplicate"),
                );
            }
        }

        let (groups, group_vars) = match top.get("groups") {
            None | Some(Value::Null) => Default::default(),
            Some(v) => read_groups(&doc, v, &hosts, &mut secrets).unwrap_or_else(|e| {
                errors.push(e);
                Default::default()
            }),
        };

        if let Err(e) = top.finish("the inventory") {
            errors.push(e);
        }
        errors.into_result()?;
        Ok(Inventory { doc, stage, ssh, vars, hosts, groups, group_vars, secrets, template_topology: Default::default() })
    }

    /// The hosts of a group: an explicit group, or every host that has a role of that name.
    pub fn group_members(&self, group: &str) -> Vec<&Host> {
        if let Some(names) = self.groups.get(group) {
            return self.hosts.iter().filter(|h| names.contains(&h.name)).collect();
        }
        self.hosts.iter().filter(|h| h.roles.iter().any(|r| r == group)).collect()
    }

    /// The variables of every group `host` belongs to, merged in the order the groups are
    /// written: what sits between the inventory's `vars` and the host's own.
    pub fn group_vars_of(&self, host: &Host) -> Mapping {
        let mut out = Mapping::new();
        for (group, vars) in &self.group_vars {
            if self.group_members(group).iter().any(|h| h.name == host.name) {
                for (k, v) in vars {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    /// All group names: explicit groups and roles.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.groups.keys().cloned().collect();
        for h in &self.hosts {
            for r in &h.roles {
                if !names.contains(r) {
                    names.push(r.clone());
                }
            }
        }
        names
    }

    /// The hosts matching `limits` (host or group names; none given: every host), in
    /// inventory order. An unknown name is an error with a "did you mean".
    pub fn limited(&self, limits: &[String]) -> Result<Vec<&Host>, Diagnostics> {
        let groups = self.group_names();
        let mut errors = Diagnostics::default();
        for l in limits {
            if !self.hosts.iter().any(|h| &h.name == l) && !groups.contains(l) {
                let names = self.hosts.iter().map(|h| h.name.as_str()).chain(groups.iter().map(String::as_str));
                errors.push(Diagnostic::new(format!("`--limit {l}` matches no host or group of the inventory")).did_you_mean(l, names));
            }
        }
        errors.into_result()?;
        Ok(self
            .hosts
            .iter()
            .filter(|h| limits.is_empty() || limits.iter().any(|l| l == &h.name || self.group_members(l).iter().any(|m| m.name == h.name)))
            .collect())
    }

    /// Errors for what provision must not connect with: hosts with a placeholder address,
    /// and `!env` secrets whose environment variable is not set.
    pub fn preflight<'a>(&self, hosts: impl IntoIterator<Item = &'a Host>, missing_env: impl IntoIterator<Item = &'a String>) -> Result<(), Diagnostics> {
        let mut errors = Diagnostics::default();
        for host in hosts {
            if is_documentation_address(&host.address) {
                errors.push(
                    self.doc
                        .value_error(&key(&host.path, "address"), format!("host `{}` has the placeholder address {} (an RFC 5737 documentation range); provision does not connect to it", host.name, host.address))
                        .help("put the server's real address in the inventory; `provision validate` checks placeholder inventories without connecting"),
                );
            }
        }
        let mut missing: Vec<String> = self.secrets.missing_env.clone();
        missing.extend(missing_env.into_iter().cloned());
        missing.sort();
        missing.dedup();
        for m in missing {
            errors.push(
                Diagnostic::new(format!("a secret of the inventory needs the environment variable {m}, which is not set"))
                    .at(self.doc.locate(&[Seg::Key("vars".into())]))
                    .help(format!("export {m}=... before running provision")),
            );
        }
        errors.into_result()
    }

    /// The directory the inventory lives in; relative paths in it are relative to this.
    pub fn dir(&self) -> PathBuf {
        self.doc.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

fn default_ssh(inventory: &Path) -> SshSettings {
    let dir = inventory.parent().unwrap_or(Path::new("."));
    SshSettings { identity_file: None, known_hosts: dir.join("known_hosts"), connect_timeout_secs: 10, initial_user: "root".into(), persist_secs: 0 }
}

fn read_ssh(doc: &Doc, value: Option<&Value>) -> Result<SshSettings, Diagnostic> {
    let mut ssh = default_ssh(&doc.path);
    let Some(value) = value else { return Ok(ssh) };
    let dir = doc.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut r = MapReader::new(doc, vec![Seg::Key("ssh".into())], value, "`ssh`")?;
    if let Some(f) = r.opt_string("identity_file")? {
        ssh.identity_file = Some(dir.join(expand_home(&f)));
    }
    if let Some(f) = r.opt_string("known_hosts")? {
        ssh.known_hosts = dir.join(expand_home(&f));
    }
    if let Some(t) = r.opt_string("connect_timeout")? {
        ssh.connect_timeout_secs = t.parse().map_err(|_| {
            doc.value_error(&r.path_of("connect_timeout"), format!("`connect_timeout` must be a number of seconds, found `{t}`"))
        })?;
    }
    if let Some(u) = r.opt_string("initial_user")? {
        ssh.initial_user = u;
    }
    if let Some(t) = r.opt_string("persist")? {
        ssh.persist_secs = t.parse().map_err(|_| {
            doc.error(&r.path_of("persist"), format!("`persist` must be a number of seconds, found `{t}`")).help("for example `persist: 600` keeps each host's connection ten minutes after its last use; 0 closes it at the end of each run")
        })?;
    }
    r.finish("`ssh`")?;
    Ok(ssh)
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn read_vars(doc: &Doc, path: &[Seg], value: &Value, secrets: &mut Secrets) -> Result<Mapping, Diagnostic> {
    match extract_secrets(value.clone(), secrets).map_err(|e| doc.error(path, e))? {
        Value::Mapping(m) => {
            for (k, _) in &m {
                if !k.as_str().is_some_and(is_identifier) {
                    return Err(doc
                        .error(path, format!("variable name {k:?} is not a valid identifier"))
                        .help("use letters, digits and `_`, starting with a letter or `_`"));
                }
            }
            Ok(m)
        }
        other => Err(doc.value_error(path, format!("`vars` must be a mapping, found {}", crate::yaml::type_name(&other)))),
    }
}

/// Whether `s` can be used as a template variable name.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn read_host(doc: &Doc, name: &str, value: &Value, secrets: &mut Secrets) -> Result<Host, Diagnostic> {
    let path = vec![Seg::Key("hosts".into()), Seg::Key(name.to_string())];
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.is_empty() {
        return Err(doc.error(&path, format!("host name `{name}` may only contain letters, digits, `-`, `_` and `.`")));
    }
    let mut r = MapReader::new(doc, path.clone(), value, &format!("host `{name}`"))?;
    let address = r.string("address", &format!("host `{name}`"))?;
    if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c == '@' || c == '/') {
        return Err(doc
            .value_error(&r.path_of("address"), format!("`{address}` is not a host name or IP address"))
            .help("write an IP address or a DNS name, without user@ or a port"));
    }
    let private_address = match r.opt_string("private_address")? {
        None => address.clone(),
        Some(a) => match a.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => {
                return Err(doc
                    .value_error(&r.path_of("private_address"), format!("`private_address: {a}` is not an IP address"))
                    .help("write the host's address on the private network, such as 10.0.0.12"))
            }
        },
    };
    let port = match r.opt_string("port")? {
        None => 22,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            doc.value_error(&r.path_of("port"), format!("`port` must be a number from 1 to 65535, found `{p}`"))
        })?,
    };
    let user = r.opt_string("user")?.unwrap_or_else(|| "root".to_string());
    let roles = r.opt_strings("roles")?.unwrap_or_default();
    let primary = r.opt_bool("primary")?.unwrap_or(false);
    let vars = match r.get("vars") {
        None | Some(Value::Null) => Mapping::new(),
        Some(v) => read_vars(doc, &key(&path, "vars"), v, secrets)?,
    };
    r.finish(&format!("host `{name}`"))?;
    Ok(Host { name: name.to_string(), address, private_address, port, user, roles, primary, vars, path })
}

/// Groups and their variables. A group is a list of host names, or a mapping with `hosts`
/// (that list) and `vars`; without `hosts`, the group is the hosts of the role of its name.
type Groups = (IndexMap<String, Vec<String>>, IndexMap<String, Mapping>);

fn read_groups(doc: &Doc, value: &Value, hosts: &[Host], secrets: &mut Secrets) -> Result<Groups, Diagnostic> {
    let path = vec![Seg::Key("groups".into())];
    let Value::Mapping(map) = value else {
        return Err(doc.error(&path, "`groups` must be a mapping of group name to a list of host names, or to `{hosts: [...], vars: {...}}`"));
    };
    let (mut groups, mut group_vars) = (IndexMap::new(), IndexMap::new());
    for (name, spec) in map {
        let name = name.as_str().unwrap_or_default().to_string();
        let gpath = key(&path, &name);
        let (members, members_path) = match spec {
            Value::Mapping(_) => {
                let mut r = MapReader::new(doc, gpath.clone(), spec, &format!("group `{name}`"))?;
                let members = match r.get("hosts") {
                    None => None,
                    Some(list) => Some(
                        crate::yaml::string_list(list).ok_or_else(|| doc.value_error(&key(&gpath, "hosts"), format!("group `{name}`: `hosts` must be a list of host names")))?,
                    ),
                };
                if let Some(v) = r.get("vars") {
                    group_vars.insert(name.clone(), read_vars(doc, &key(&gpath, "vars"), v, secrets)?);
                }
                r.finish(&format!("group `{name}`"))?;
                (members, key(&gpath, "hosts"))
            }
            other => (
                Some(crate::yaml::string_list(other).ok_or_else(|| doc.value_error(&gpath, format!("group `{name}` must be a list of host names, or `{{hosts: [...], vars: {{...}}}}`")))?),
                gpath.clone(),
            ),
        };
        let Some(members) = members else {
            if !hosts.iter().any(|h| h.roles.contains(&name)) {
                return Err(doc
                    .error(&gpath, format!("group `{name}` has no `hosts`, and no host has a role `{name}`"))
                    .help("list its hosts (`hosts: [web1]`), or name the group after a role to give that role's hosts variables"));
            }
            continue;
        };
        for (i, m) in members.iter().enumerate() {
            if !hosts.iter().any(|h| &h.name == m) {
                return Err(doc
                    .error(&crate::yaml::index(&members_path, i), format!("group `{name}` names unknown host `{m}`"))
                    .did_you_mean(m, hosts.iter().map(|h| h.name.as_str())));
            }
        }
        groups.insert(name, members);
    }
    Ok((groups, group_vars))
}

/// Whether `address` is in an RFC 5737 documentation range. Such inventories are examples:
/// they are validated but never connected to.
/// The inventory to use: the one given, `$PROVISION_INVENTORY`, or `inventories/staging.yml`.
/// Never production by default.
pub fn inventory_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("PROVISION_INVENTORY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("inventories/staging.yml"))
}

pub fn is_documentation_address(address: &str) -> bool {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            let o = ip.octets();
            matches!((o[0], o[1], o[2]), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        Ok(IpAddr::V6(ip)) => ip.segments()[0] == 0x2001 && ip.segments()[1] == 0x0db8,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Inventory, Diagnostics> {
        Inventory::from_doc(Doc::parse(Path::new("inv.yml"), src.to_string()).map_err(Diagnostics::from)?)
    }

    #[test]
    fn loads_hosts_groups_and_flags() {
        let inv = parse("stage: staging\nvars: {app: x}\nhosts:\n  db1: {address: 10.0.0.1, roles: [mysql], primary: yes}\n  web1: {address: 10.0.0.2, port: 2222, user: admin, roles: [nginx]}\ngroups:\n  front: [web1]\n").unwrap();
        assert_eq!(inv.hosts.len(), 2);
        assert!(inv.hosts[0].primary);
        assert_eq!(inv.hosts[1].port, 2222);
        assert_eq!(inv.group_members("front")[0].name, "web1");
        assert_eq!(inv.group_members("mysql")[0].name, "db1");
    }

    #[test]
    fn private_address_defaults_to_the_address_and_must_be_an_ip() {
        let inv = parse("stage: s\nhosts:\n  a: {address: 203.0.113.9, private_address: 10.0.0.9}\n  b: {address: 10.0.0.2}\n").unwrap();
        assert_eq!((inv.hosts[0].private_address.as_str(), inv.hosts[1].private_address.as_str()), ("10.0.0.9", "10.0.0.2"));
        for bad in ["db.internal", "10.0.0.0/8", "10.0.0.1 0.0.0.0", "\"10.0.0.1\\nbind 0.0.0.0\"", "\"'10.0.0.1'\"", "'\"10.0.0.1\"'", "\"10.0.0.1\\\\\"", "\"$(id)\"", "\"-10.0.0.1\""] {
            let errs = parse(&format!("stage: s\nhosts:\n  a: {{address: 10.0.0.1, private_address: {bad}}}\n")).unwrap_err();
            assert!(errs.to_string().contains("is not an IP address"), "{bad}: {errs}");
        }
    }

    #[test]
    fn reports_every_error_with_a_line() {
        let errs = parse("stage: staging\nhosts:\n  web1:\n    adress: 10.0.0.1\n  web2:\n    address: 10.0.0.2\n    port: http\n").unwrap_err();
        let text = errs.to_string();
        assert!(text.contains("inv.yml:3:3"), "{text}");
        assert!(text.contains("has no `address`"), "{text}");
        // The wrong port's value, not its key.
        assert!(text.contains("inv.yml:7:11"), "{text}");
        assert_eq!(errs.len(), 2);
    }

    #[test]
    fn unknown_key_gets_did_you_mean() {
        let errs = parse("stage: s\nhosts:\n  web1:\n    address: 10.0.0.1\n    rols: [nginx]\n").unwrap_err();
        assert!(errs.to_string().contains("did you mean `roles`?"), "{errs}");
        assert!(errs.to_string().contains("inv.yml:5:5"), "{errs}");
    }

    #[test]
    fn duplicate_addresses_are_errors() {
        let errs = parse("stage: s\nhosts:\n  a: {address: 10.0.0.1}\n  b: {address: 10.0.0.1}\n").unwrap_err();
        assert!(errs.to_string().contains("same address"));
    }

    #[test]
    fn documentation_ranges() {
        assert!(is_documentation_address("192.0.2.10"));
        assert!(is_documentation_address("198.51.100.7"));
        assert!(is_documentation_address("203.0.113.1"));
        assert!(!is_documentation_address("10.77.0.11"));
        assert!(!is_documentation_address("example.com"));
    }
}
