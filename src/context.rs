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

/// The name under which a host's facts are seen.
pub const FACTS: &str = "facts";

/// The context of a host whose variables are `vars` and whose facts are `facts` (see
/// [`crate::host_facts`]): `facts` and the shared part of `inv` win over a variable of the
/// same name, as the shared part always has. (In `merge_maps` the last map wins.)
pub fn of(vars: &Mapping, facts: &JValue, inv: &Inventory) -> JValue {
    merge_maps([JValue::from(Serde(vars)), minijinja::context! { facts => facts.clone() }, shared(inv)])
}

/// `base` with `item` (a loop's current item) added; the item wins over a variable `item`.
pub fn with_item(base: &JValue, item: &JValue) -> JValue {
    merge_maps([base.clone(), minijinja::context! { item => item.clone() }])
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
    m.insert("private_address".into(), h.private_address.clone().into());
    m.insert("port".into(), (h.port as u64).into());
    m.insert("user".into(), h.user.clone().into());
    m.insert("roles".into(), Value::Sequence(h.roles.iter().map(|r| Value::String(r.clone())).collect()));
    m.insert("primary".into(), h.primary.into());
    Value::Mapping(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        let text = "stage: s\nhosts:\n  h1: {address: 10.0.0.1, roles: [r]}\n  h2: {address: 10.0.0.2, roles: [r]}\n";
        let doc = crate::yaml::Doc::parse(std::path::Path::new("inv.yml"), text.to_string()).expect("parses");
        Inventory::from_doc(doc).expect("valid")
    }

    fn render(ctx: &JValue, src: &str) -> String {
        minijinja::Environment::new().render_str(src, ctx.clone()).expect("renders")
    }

    #[test]
    fn the_inventory_wins_over_a_variable_of_its_name_and_the_item_over_a_variable_item() {
        let inv = inventory();
        let mut vars = Mapping::new();
        vars.insert("groups".into(), Value::Mapping(Mapping::new()));
        vars.insert("hosts".into(), "mine".into());
        vars.insert("item".into(), "fixed".into());
        vars.insert("app".into(), "shop".into());
        let ctx = of(&vars, &JValue::UNDEFINED, &inv);
        assert_eq!(render(&ctx, "{{ groups.r | join(',') }} {{ hosts.h2.address }} {{ app }} {{ item }}"), "h1,h2 10.0.0.2 shop fixed");
        let looped = with_item(&ctx, &JValue::from("a"));
        assert_eq!(render(&looped, "{{ item }} {{ app }} {{ groups.r | length }}"), "a shop 2");
    }
}
