//! `command`: the escape hatch. A sh script guarded by `creates` (a path) and/or `unless`
//! (a read-only check that exits 0 when the work is already done), so it stays idempotent
//! and reports a change only when it runs. `stdin` is fed to the script from a file, the
//! way to hand it a secret without a command line that `ps` would show.

use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts};
use crate::plan::{Action, Change, PlanContext};
use crate::shell::{heredoc_base64, quote, sha256_hex};

pub struct CommandModule;

#[derive(Debug)]
pub struct Command {
    pub name: String,
    pub run: String,
    pub creates: Option<String>,
    pub unless: Option<String>,
    pub stdin: Option<Vec<u8>>,
}

impl Command {
    fn check_id(&self) -> String {
        format!("unless:{}", &sha256_hex(format!("{}\0{}", self.name, self.unless.as_deref().unwrap_or_default()).as_bytes())[..16])
    }
}

impl Resource for Command {
    fn kind(&self) -> &'static str {
        "command"
    }
    fn target(&self) -> String {
        self.name.clone()
    }
    fn probe(&self, req: &mut FactRequest) {
        if let Some(p) = &self.creates {
            req.path(p);
        }
        if let Some(u) = &self.unless {
            req.checks.push((self.check_id(), u.clone()));
        }
    }

    fn plan(&self, facts: &Facts, _cx: &PlanContext) -> Result<Option<Change>, String> {
        if let Some(p) = &self.creates {
            if facts.paths.contains_key(p) {
                return Ok(None);
            }
        }
        if self.unless.is_some() && facts.checks.get(&self.check_id()) == Some(&0) {
            return Ok(None);
        }
        self.plan_as_handler(facts, _cx)
    }

    fn plan_as_handler(&self, _facts: &Facts, _cx: &PlanContext) -> Result<Option<Change>, String> {
        let mut script = String::new();
        match &self.stdin {
            Some(input) => {
                script.push_str(&format!("base64 -d > \"$PV_RUN/stdin\" {}", heredoc_base64(input)));
                // No `exit` on success: the apply appends more to this change (a handler
                // clears its journal entry after its steps).
                script.push_str(&format!(
                    "pv_rc=0; ( {}\n) < \"$PV_RUN/stdin\" || pv_rc=$?; rm -f \"$PV_RUN/stdin\"; [ \"$pv_rc\" -eq 0 ] || exit \"$pv_rc\"\n",
                    self.run
                ));
            }
            None => script.push_str(&format!("( {}\n) </dev/null\n", self.run)),
        }
        let mut c = Change::new("command", &self.name, Action::Run).shell(script);
        if let Some(p) = &self.creates {
            c.details.push(format!("creates {}", quote(p)));
        }
        Ok(Some(c))
    }
}

impl Module for CommandModule {
    fn name(&self) -> &'static str {
        "command"
    }

    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("command")?;
        let run = r.string("run", "`command`")?;
        let creates = r.opt_string("creates")?;
        let unless = r.opt_string("unless")?;
        let stdin = r.opt_string("stdin")?.map(String::into_bytes);
        r.finish("`command` arguments")?;
        if creates.is_none() && unless.is_none() && !cx.is_handler {
            return Err(args
                .error("this `command` has no guard, so it would run and report a change on every run")
                .help("add `creates: /path/it/makes` or `unless: a check that exits 0 when it is done`"));
        }
        if cx.secrets.touches(&run) || unless.as_deref().is_some_and(|u| cx.secrets.touches(u)) {
            return Err(args
                .error("a secret appears in the command line of this `command`; on the host it would be visible in `ps`")
                .help("pass secrets through `stdin:` (for example `run: mysql` with the SQL in `stdin`)"));
        }
        let name = cx
            .task_name
            .clone()
            .unwrap_or_else(|| run.lines().next().unwrap_or_default().chars().take(60).collect());
        Ok(vec![Box::new(Command { name, run, creates, unless, stdin })])
    }
}
