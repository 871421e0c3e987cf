//! `command`: the escape hatch. A sh script guarded by `creates` (a path) and/or `unless`
//! (a read-only check that exits 0 when the work is already done), so it stays idempotent
//! and reports a change only when it runs. `stdin` is fed to the script from a file, the
//! way to hand it a secret without a command line that `ps` would show.

use super::{Args, LowerCx, Module, Resource};
use crate::error::Diagnostic;
use crate::facts::{FactRequest, Facts};
use crate::plan::{Action, Change, PlanContext};
use crate::sh;
use crate::shell::{heredoc_base64, sha256_hex, Script};
use crate::template::CodeKind;

pub struct CommandModule;

#[derive(Debug)]
pub struct Command {
    pub name: String,
    pub run: Script,
    pub creates: Option<String>,
    pub unless: Option<Script>,
    pub stdin: Option<Vec<u8>>,
}

impl Command {
    fn check_id(&self) -> String {
        format!("unless:{}", &sha256_hex(format!("{}\0{}", self.name, self.unless.as_ref().map(Script::as_str).unwrap_or_default()).as_bytes())[..16])
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
        let script = match &self.stdin {
            // No `exit` on success: the apply appends more to this change (a handler
            // clears its journal entry after its steps).
            Some(input) => sh!(
                "base64 -d > \"$PV_RUN/stdin\" {}pv_rc=0; ( {}\n) < \"$PV_RUN/stdin\" || pv_rc=$?; rm -f \"$PV_RUN/stdin\"; [ \"$pv_rc\" -eq 0 ] || exit \"$pv_rc\"\n",
                heredoc_base64(input),
                self.run
            ),
            None => sh!("( {}\n) </dev/null\n", self.run),
        };
        let mut c = Change::new("command", &self.name, Action::Run).shell(script);
        if let Some(p) = &self.creates {
            c.details.push(format!("creates {p}"));
        }
        Ok(Some(c))
    }
}

impl Module for CommandModule {
    fn name(&self) -> &'static str {
        "command"
    }
    fn code_args(&self) -> &'static [(&'static str, CodeKind)] {
        &[("run", CodeKind::Shell), ("unless", CodeKind::Shell), ("sql", CodeKind::Sql)]
    }

    fn lower(&self, args: &Args, cx: &LowerCx) -> Result<Vec<Box<dyn Resource>>, Diagnostic> {
        let mut r = args.reader("command")?;
        let run = r.string("run", "`command`")?;
        let creates = r.opt_string("creates")?;
        if let Some(p) = &creates {
            if cx.secrets.touches(p) {
                return Err(args
                    .doc
                    .value_error(&r.path_of("creates"), "a secret appears in `creates`; the probe passes it to `find`, where `ps` on the host would show it")
                    .help("name the created path without the secret"));
            }
            super::check_path(p, args, "creates")?;
        }
        let unless = r.opt_string("unless")?;
        let stdin = r.opt_string("stdin")?.map(String::into_bytes);
        // `sql:` is SQL for `run` (usually `mysql`) on stdin, its values rendered as SQL
        // string literals (see `code_args`): the way to pass a password to the database.
        let sql = r.opt_string("sql")?;
        if sql.is_some() && stdin.is_some() {
            return Err(args.error("`command` takes `stdin` or `sql`, not both"));
        }
        let stdin = match sql {
            Some(sql) => Some(format!("{}{sql}", crate::shell::SQL_SESSION_PRELUDE).into_bytes()),
            None => stdin,
        };
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
        // The role's own code; its template values were quoted when it was rendered.
        Ok(vec![Box::new(Command { name, run: Script::user_code(run), creates, unless: unless.map(Script::user_code), stdin })])
    }
}
