//! Template contexts: what a template of one host sees. The host's own variables are
//! converted per host; the inventory-wide part (`hosts`, `groups`) is converted once per
//! inventory and shared by every host (cloning a minijinja value is a reference count).
//! Building a context thus costs the host's own variables, never the inventory's size, so
//! loading N hosts is linear in N (it was quadratic: every task of every host converted
//! every host of the inventory).

use crate::inventory::{Host, Inventory};
use minijinja::value::{merge_maps, Serde, Value as JValue};
use serde_yaml::{Mapping, Value};

/// The inventory-wide variables, the same for every host: `hosts` (every host by name) and
/// `groups` (group or role name → host names).
pub const SHARED: [&str; 2] = ["hosts", "groups"];

/// The context of a host whose variables are `vars`: the shared part of `inv` wins over a
/// host variable of the same name, as it always has.
pub fn of(vars: &Mapping, inv: &Inventory) -> JValue {
    merge_maps([shared(inv), JValue::from(Serde(vars))])
}

/// `base` with `item` (a loop's current item) added.
pub fn with_item(base: &JValue, item: &JValue) -> JValue {
    merge_maps([minijinja::context! { item => item.clone() }, base.clone()])
}

/// The shared part, converted on first use.
fn shared(inv: &Inventory) -> JValue {
    inv.template_topology.get_or_init(|| JValue::from(Serde(topology(inv)))).clone()
}

/// `hosts` and `groups` as YAML, so roles can compute topology (nginx upstreams from the
/// puma hosts).
pub fn topology(inv: &Inventory) -> Mapping {
    let mut m = Mapping::new();
    let mut hosts = Mapping::new();
    for h in &inv.hosts {
        hosts.insert(h.name.clone().into(), host_value(h));
    }
    m.insert("hosts".into(), Value::Mapping(hosts));
    let mut groups = Mapping::new();
    for g in inv.group_names() {
        let members: Vec<Value> = inv.group_members(&g).iter().map(|h| Value::String(h.name.clone())).collect();
        groups.insert(g.into(), Value::Sequence(members));
    }
    m.insert("groups".into(), Value::Mapping(groups));
    m
}

/// One host as templates see it: under `host`, and under `hosts.NAME`.
pub fn host_value(h: &Host) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), h.name.clone().into());
    m.insert("address".into(), h.address.clone().into());
    m.insert("port".into(), (h.port as u64).into());
    m.insert("user".into(), h.user.clone().into());
    m.insert("roles".into(), Value::Sequence(h.roles.iter().map(|r| Value::String(r.clone())).collect()));
    m.insert("primary".into(), h.primary.into());
    Value::Mapping(m)
}
