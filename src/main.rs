use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = serin::cli::Cli::parse();
    cli.init_logging();
    match serin::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serin: {e}");
            ExitCode::FAILURE
        }
    }
}
