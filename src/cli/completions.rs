//! `promoter completions` and `promoter man`, generated from the clap
//! definition, written whole (a closed pipe ends the program quietly).

use clap::{Args, CommandFactory};

use super::output::{self, emit_bytes, Exit};
use super::Cli;

/// `completions`' flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter completions bash > /etc/bash_completion.d/promoter
  promoter completions zsh > \"${fpath[1]}/_promoter\"
  promoter completions fish > ~/.config/fish/completions/promoter.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// `man`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter man | man -l -          the whole tool
  promoter man run | man -l -      one subcommand")]
pub(crate) struct ManArgs {
    /// The subcommand whose page to write.
    subcommand: Option<String>,
}

/// `promoter completions SHELL`.
pub(crate) fn completions(args: CompletionsArgs) -> Exit {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "promoter", &mut script);
    emit_bytes(&script);
    Exit::Ok
}

/// `promoter man [SUBCOMMAND]`.
pub(crate) fn man(args: ManArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    if let Some(name) = args.subcommand {
        command.build();
        match command.find_subcommand(&name) {
            Some(sub) => {
                let sub = sub.clone();
                command = sub.name(format!("promoter-{name}"));
            }
            None => {
                output::error(format_args!(
                    "no subcommand {name:?}; `promoter --help` lists them"
                ));
                return Ok(Exit::Usage);
            }
        }
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| anyhow::anyhow!("cannot render the manual page: {e}"))?;
    emit_bytes(&page);
    Ok(Exit::Ok)
}
