//! `yingji-sim`: drills against a Yingji platform, and the one-command demo.

use std::process::ExitCode;

use clap::Parser;
use yingji_simulator::cli::{self, Args};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging(&args);
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("yingji-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}
