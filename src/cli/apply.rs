//! `promoter apply`: carry out a plan file `run --plan-out` wrote, only if
//! it is still exactly what the manifests produce against the registries.

use std::path::PathBuf;

use clap::Args;

use promoter::promote::{self, Applied, Run};

use super::args::{self, Format, ManifestArgs, RegistryArgs};
use super::output::{self, say, Exit};
use super::run::Finish;
use super::Ctx;

/// `apply`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter run --manifest promote.yaml --plan-out plan.json    make a plan to review
  promoter apply plan.json --manifest promote.yaml              carry it out if nothing drifted
  promoter run --manifest m.yaml --plan-out - | promoter apply - --manifest m.yaml

Exit: 0 applied (or applied already), 1 invalid input, 2 usage, 3 the plan drifted or was not
made from these manifests (nothing written), 4 edges failed.")]
pub(crate) struct ApplyArgs {
    /// A plan file written by `promoter run --plan-out` (`-`: standard input).
    plan: PathBuf,
    /// The manifests the plan was made from: apply writes only what they
    /// promote, never what a field of the plan file says.
    #[command(flatten)]
    manifests: ManifestArgs,
    #[command(flatten)]
    promotion: args::PromotionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format of the report.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
    #[command(flatten)]
    wide: args::WideArgs,
}

/// `promoter apply`.
pub(crate) async fn apply(args: ApplyArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let reviewed = promote::read_plan(&args.plan)?;
    let loaded = promoter::manifest::load(args.manifests.input());
    super::output::diagnostics(&loaded.diagnostics);
    if loaded.has_errors() {
        output::error("the manifests have problems; nothing was applied");
        return Ok(Exit::Invalid);
    }
    let open = args.registry.open_options()?;
    let names = promote::registry_names(&loaded.manifests);
    let registries = promoter::registry::open_all(names.iter(), &open)?;
    let mut exec = args.promotion.exec_options();
    exec.stop = ctx.stop_on_signals();
    let run = Run::new(&registries, &exec, ctx.progress());
    let wants = promoter::plan::wants(&loaded.manifests);
    let shown = args.plan.display();
    match promote::apply(&run, &reviewed, &wants).await {
        Err(mismatch) => {
            output::error(format_args!(
                "{shown} was not made from these manifests: {mismatch}"
            ));
            say("help: pass the manifests the plan was made from, or make a new plan (`promoter run ... --plan-out FILE`); nothing was written");
            Ok(Exit::Refused)
        }
        Ok(Applied::Already) => {
            say(format_args!(
                "{shown}: already applied, the destinations hold all of it: nothing to do"
            ));
            Ok(Exit::Ok)
        }
        Ok(Applied::Drifted(diff)) => {
            output::error(format_args!("the plan is no longer what was reviewed: the registries changed since {shown} was written, or the file was edited:"));
            say(diff.trim_end());
            say("help: review the new plan (`promoter run ... --plan-out FILE`) and apply that instead; nothing was written");
            Ok(Exit::Refused)
        }
        Ok(Applied::Done { plan, report }) => {
            let finish = Finish {
                format: args.output.unwrap_or_default(),
                style: ctx.style(args.wide),
                fail_on_lost: args.promotion.writes.fail_on_lost,
                to_stderr: false,
                interrupted: exec.stop.requested(),
            };
            Ok(finish.report(&plan, Some(&report)))
        }
    }
}
