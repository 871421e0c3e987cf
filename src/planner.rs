//! Planner: facts + resources → the [`HostPlan`]. Pure: no I/O. Each resource compares
//! what the probe saw with what it wants; later resources see what earlier changes will
//! provide, so a dependent change carries its assumption instead of failing. Handlers
//! notified by a change (or left pending in the host's journal by a run that died) are
//! planned after their role's changes.

use crate::facts::Facts;
use crate::plan::{Action, Change, HostPlan, PlanContext};
use crate::resources::HostResources;

/// A problem found while planning, before anything changed on the host.
#[derive(Debug, Clone)]
pub struct PlanError {
    pub role: String,
    pub resource: String,
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: role `{}`: {}: {}", self.location, self.role, self.resource, self.message)
    }
}

/// Plans one host. Any error means nothing will be applied to it.
pub fn plan_host(res: &HostResources, facts: &Facts) -> Result<HostPlan, Vec<PlanError>> {
    let mut changes: Vec<Change> = Vec::new();
    let mut unchanged = 0;
    let mut errors = Vec::new();
    let mut handler_roles: Vec<String> = res.roles.clone();
    for h in &res.handlers {
        if !handler_roles.contains(&h.role) {
            handler_roles.push(h.role.clone());
        }
    }
    for role in &handler_roles {
        let mut notified: Vec<String> = facts
            .pending_handlers
            .iter()
            .filter_map(|k| k.split_once('/'))
            .filter(|(r, _)| r == role)
            .map(|(_, h)| h.to_string())
            .collect();
        let pending_from_journal = notified.clone();
        for entry in res.entries.iter().filter(|e| &e.role == role) {
            let cx = PlanContext { earlier: &changes };
            match entry.resource.plan(facts, &cx) {
                Ok(Some(mut c)) => {
                    c.role = role.clone();
                    c.notify = entry.notify.clone();
                    for n in &entry.notify {
                        if !notified.contains(n) {
                            notified.push(n.clone());
                        }
                    }
                    changes.push(c);
                }
                Ok(None) => unchanged += 1,
                Err(message) => errors.push(PlanError {
                    role: role.clone(),
                    resource: format!("{} {}", entry.resource.kind(), entry.resource.target()),
                    location: entry.location.to_string(),
                    message,
                }),
            }
        }
        // Handlers run in the order handlers.yml lists them, once each.
        for h in res.handlers.iter().filter(|h| &h.role == role && notified.contains(&h.name)) {
            let mut c = Change::new("handler", &h.name, Action::Run);
            c.role = role.clone();
            c.clears_journal = Some(h.key());
            if pending_from_journal.contains(&h.name) {
                c.assumption = Some("notified by a change of an earlier run that stopped before its handlers ran".into());
            }
            for r in &h.resources {
                let cx = PlanContext { earlier: &changes };
                match r.plan_as_handler(facts, &cx) {
                    Ok(Some(hc)) => {
                        c.details.push(format!("{} {} {}", hc.kind, hc.target, hc.details.join(", ")).trim_end().to_string());
                        c.steps.extend(hc.steps);
                    }
                    Ok(None) => {}
                    Err(message) => errors.push(PlanError {
                        role: role.clone(),
                        resource: format!("handler {}", h.name),
                        location: String::from("handlers.yml"),
                        message,
                    }),
                }
            }
            changes.push(c);
        }
    }
    if errors.is_empty() {
        Ok(HostPlan { host: res.host.clone(), changes, unchanged })
    } else {
        Err(errors)
    }
}
