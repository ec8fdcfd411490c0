//! The `promoter` binary: parse the command line, start logging and one
//! async runtime, and dispatch to the subcommand (`cli/`), which calls the
//! library and picks the exit code from one table.

#![warn(clippy::too_many_lines)]

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            let exit = match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    cli::Exit::Ok
                }
                _ => cli::Exit::Usage,
            };
            return ExitCode::from(exit.code());
        }
    };
    let ctx = cli::Ctx::start(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cli::Exit::Failed.code());
        }
    };
    let exit = runtime.block_on(cli::dispatch(cli.command, &ctx));
    ExitCode::from(exit.code())
}
