//! `assert`: a check of the variables, made on the controller before anything connects.
//! `that` is an expression; when it is false, the run stops with `message`, naming the
//! task. For rules such as "the database pool must be at least sidekiq's concurrency".

use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use serde_yaml::Value;

pub struct AssertModule;

impl Module for AssertModule {
    fn name(&self) -> &'static str {
        "assert"
    }

    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("assert")?;
        let that = r.get("that").cloned();
        let message = r.opt_string("message")?;
        r.finish("`assert` arguments")?;
        let holds = match that {
            Some(Value::Bool(b)) => b,
            Some(Value::String(expr)) => {
                let that = crate::yaml::key(&args.path, "that");
                let value = cx.templates.evaluate(&expr, cx.vars, &|| args.doc.value_span(&that))?;
                // Holds when it is true, as `{{ that }}` printing `true` (not any truthy value).
                matches!(&value, serde_json::Value::Bool(true)) || matches!(value.as_str(), Some("true" | "True"))
            }
            Some(other) => return Err(args.value_error("that", format!("`that` must be an expression, found {}", crate::yaml::type_name(&other)))),
            None => return Err(args.error("`assert` has no `that`").help("write `that: \"{{ a >= b }}\"`")),
        };
        if holds {
            return Ok(Vec::new());
        }
        // A message may print a secret variable: it is redacted like every other output.
        let what = cx.secrets.redact(&message.unwrap_or_else(|| "an assertion failed".into()));
        Err(Diagnostic::new(what).at(cx.location.clone()).help(match &cx.task_name {
            Some(n) => format!("checked by the task `{n}` of role `{}`; change the variables it names", cx.role),
            None => format!("checked by role `{}`; change the variables it names", cx.role),
        }))
    }
}
