//! Variables: the precedence merge, and the per-host variable set that templates see.
//!
//! Precedence, lowest first: role defaults < inventory `vars` < group `vars` (in the order
//! the groups are written) < host `vars` < `-e`.
//! String values may themselves be templates (`deploy_to: /var/www/{{ app }}`); they are
//! resolved against the merged set until nothing changes, as Ansible users expect.

use crate::inventory::{Host, Inventory};
use crate::roles::Roles;
use crate::yaml::{key, Doc, Seg};
pub use crate::secrets::{extract_role_secrets, extract_secrets, Secrets, REDACTED};
use serde_yaml::{Mapping, Value};

/// Parses `-e key=value` arguments; values are YAML scalars (`-e workers=4` is a number).
pub fn parse_extra_vars(args: &[String]) -> Result<Mapping, String> {
    let mut m = Mapping::new();
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("`-e {arg}` is not KEY=VALUE; write for example `-e puma_workers=4`"))?;
        if !crate::inventory::is_identifier(k) {
            return Err(format!("`-e {arg}`: `{k}` is not a valid variable name"));
        }
        let value: Value = serde_yaml::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        let value = if value.is_null() && !v.is_empty() { Value::String(v.to_string()) } else { value };
        m.insert(Value::String(k.to_string()), value);
    }
    Ok(m)
}

/// Overlays `top` on `base`, key by key (a later layer replaces a whole value).
pub fn overlay(base: &mut Mapping, top: &Mapping) {
    for (k, v) in top {
        base.insert(k.clone(), v.clone());
    }
}

/// The variables of `host` itself that every template of it sees: who the host is and the
/// stage. (The inventory-wide `hosts` and `groups` join in [`crate::context::of`].)
pub fn inventory_facts(inv: &Inventory, host: &Host) -> Mapping {
    let mut m = Mapping::new();
    m.insert("inventory_hostname".into(), host.name.clone().into());
    m.insert("stage".into(), inv.stage.clone().into());
    m.insert("host".into(), crate::context::host_value(host));
    m
}

/// A variable of a host as a string, if set and not blank.
pub fn var_str(vars: &Mapping, name: &str) -> Option<String> {
    vars.get(name).and_then(crate::yaml::scalar_string).filter(|s| !s.trim().is_empty())
}

/// A variable as a list of strings: a YAML list, or a string of whitespace-separated words.
pub fn var_list(vars: &Mapping, name: &str) -> Option<Vec<String>> {
    match vars.get(name)? {
        Value::Sequence(items) => Some(items.iter().filter_map(crate::yaml::scalar_string).collect()),
        Value::Null => None,
        other => crate::yaml::scalar_string(other).map(|s| s.split_whitespace().map(String::from).collect()),
    }
}

/// A variable computed from a secret (`"{{ password | urlencode }}"`, a URL holding it) is
/// a secret too, whatever its text looks like: repeated until nothing new is found.
pub fn taint_derived_secrets(raw: &Mapping, resolved: &Mapping, secrets: &mut Secrets) {
    let templates = variable_templates();
    let is_secret = |v: &Value, secrets: &Secrets| {
        let mut hit = false;
        collect_strings(v, &mut |s| hit |= secrets.touches(s));
        hit
    };
    loop {
        let mut grew = false;
        for (k, raw_value) in raw {
            let Some(value) = resolved.get(k) else { continue };
            if is_secret(value, secrets) {
                continue;
            }
            let mut refs = Vec::new();
            collect_strings(raw_value, &mut |s| refs.extend(templates.referenced(s)));
            if refs.iter().any(|r| resolved.get(r.as_str()).is_some_and(|v| is_secret(v, secrets))) {
                // Only new secrets count: a derived value with no string to add (a length, a
                // boolean) would otherwise make this loop forever.
                let before = secrets.count();
                collect_strings(value, &mut |s| secrets.add(s));
                grew |= secrets.count() > before;
            }
        }
        if !grew {
            break;
        }
    }
}

/// Calls `f` with every string inside `v`.
pub fn collect_strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Sequence(items) => items.iter().for_each(|i| collect_strings(i, f)),
        Value::Mapping(m) => m.values().for_each(|i| collect_strings(i, f)),
        _ => {}
    }
}

/// The environment variables' values are rendered in (they include no files): one for the
/// whole run, so each value's template is compiled once, not once per host.
pub fn variable_templates() -> &'static crate::template::Templates {
    static TEMPLATES: std::sync::OnceLock<crate::template::Templates> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(|| crate::template::Templates::new(std::path::Path::new("/nonexistent")))
}

/// Where a variable's winning value is written (its file and path), for errors in it; none
/// for an extra variable (`-e`).
pub fn var_origin<'a>(name: &str, inv: &'a Inventory, host: &Host, roles: &'a Roles, role_names: &[String]) -> Option<(&'a Doc, Vec<Seg>)> {
    if host.vars.contains_key(name) {
        return Some((&inv.doc, key(&key(&host.path, "vars"), name)));
    }
    if let Some((group, _)) = inv.group_vars.iter().rev().find(|(g, v)| v.contains_key(name) && inv.group_members(g).iter().any(|h| h.name == host.name)) {
        return Some((&inv.doc, vec![Seg::Key("groups".into()), Seg::Key(group.clone()), Seg::Key("vars".into()), Seg::Key(name.into())]));
    }
    if inv.vars.contains_key(name) {
        return Some((&inv.doc, vec![Seg::Key("vars".into()), Seg::Key(name.into())]));
    }
    for r in role_names.iter().rev() {
        if let Some(doc) = roles.get(r).and_then(|r| r.defaults_doc.as_ref()) {
            if let Value::Mapping(m) = &doc.value {
                if m.contains_key(name) {
                    return Some((doc, vec![Seg::Key(name.into())]));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_vars_are_yaml_scalars() {
        let m = parse_extra_vars(&["n=4".into(), "s=hello world".into(), "b=true".into()]).unwrap();
        assert_eq!(m.get("n"), Some(&Value::from(4)));
        assert_eq!(m.get("s"), Some(&Value::from("hello world")));
        assert!(parse_extra_vars(&["novalue".into()]).is_err());
    }
}
