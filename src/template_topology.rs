//! Template helpers that compute peers from the inventory's topology (`hosts`, `groups`),
//! so that every role asks the same question the same way: "which addresses may reach this
//! service" is one filter, not a loop copied into the firewall, MariaDB and nginx.

use minijinja::{Environment, Error, ErrorKind, State, Value as JValue};

/// Registers the topology filters.
pub fn add(env: &mut Environment<'static>) {
    env.add_filter("private_addresses", private_addresses);
}

/// `["puma", "sidekiq"] | private_addresses`: the private address of every host in those
/// groups (a role's hosts, or an inventory group of that name), each once, in inventory
/// order. A group nobody has is empty, not an error: a role's peers may be optional.
fn private_addresses(state: &State, groups: Vec<String>) -> Result<JValue, Error> {
    let all_groups = state.lookup("groups").unwrap_or_default();
    let hosts = state.lookup("hosts").unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for group in &groups {
        let members = match all_groups.get_item(&JValue::from(group.as_str())) {
            Ok(m) if !m.is_undefined() && !m.is_none() => m,
            _ => continue,
        };
        for name in members.try_iter()? {
            let address = hosts.get_item(&name)?.get_attr("private_address")?;
            let Some(address) = address.as_str() else {
                return Err(Error::new(ErrorKind::InvalidOperation, format!("host `{name}` of group `{group}` has no private_address")));
            };
            if !out.iter().any(|a| a == address) {
                out.push(address.to_string());
            }
        }
    }
    Ok(JValue::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(src: &str) -> String {
        let mut env = Environment::new();
        add(&mut env);
        let hosts = context! {
            web1 => context! { private_address => "10.0.0.1" },
            app1 => context! { private_address => "10.0.0.2" },
            both => context! { private_address => "10.0.0.3" },
        };
        let groups = context! { nginx => vec!["web1"], puma => vec!["app1", "both"], sidekiq => vec!["both"] };
        env.render_str(src, context! { hosts, groups }).unwrap()
    }

    #[test]
    fn addresses_of_several_groups_each_once_in_order() {
        assert_eq!(render("{{ ['puma', 'sidekiq'] | private_addresses | join(',') }}"), "10.0.0.2,10.0.0.3");
        assert_eq!(render("{{ ['sidekiq', 'nginx'] | private_addresses | join(',') }}"), "10.0.0.3,10.0.0.1");
    }

    #[test]
    fn a_group_nobody_has_is_empty() {
        assert_eq!(render("{{ ['redis'] | private_addresses | length }}"), "0");
    }
}
