use clap::Parser;

use radlens::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let options = match cli.command {
        None => radlens::app::AppOptions::default(),
        Some(Command::View(args)) => radlens::app::AppOptions {
            open: Some(args.path),
            mask: args.mask,
            model: args.model,
            ..Default::default()
        },
        Some(command) => std::process::exit(radlens::cli::run(Cli { command: Some(command) })),
    };
    if let Err(e) = radlens::app::run(options) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
