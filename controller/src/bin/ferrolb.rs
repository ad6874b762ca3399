//! `ferrolb`: offline tools over ferrolb/MetalLB configuration
//! (`validate`, `convert`, `crds`).

use std::process::ExitCode;

use clap::Parser;
use ferrolb_controller::cli::{Cli, Io};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = Cli::parse();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    ExitCode::from(cli.command.run(&mut io).code())
}
