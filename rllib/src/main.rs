//! The `rllib` command. Its subcommands (`train`, `evaluate`, `example`) arrive with PPO; until
//! then it reports its version and what it knows, and refuses anything else clearly.

use std::process::ExitCode;

const USAGE: &str = "usage: rllib <command>

commands available in this build:
  envs        list the registered environment ids
  --version   print the version

train, evaluate and example arrive with the PPO learner.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("rllib {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("envs") => {
            for id in envs::ids() {
                println!("{id}");
            }
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("rllib: unknown command '{other}'\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
