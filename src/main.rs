use clap::Parser;

fn main() {
    let cli = radlens::cli::Cli::parse();
    let code = radlens::cli::run(cli);
    std::process::exit(code);
}
