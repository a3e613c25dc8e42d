//! `trainer`: trains, evaluates, exports and runs the age and gender model. The work is in the
//! library (`trainer::commands`); this only parses the command line and reports the error.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match trainer::commands::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        // The library's errors name their causes in their own message.
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
