//! The `repflow` binary: parse, set up logging, run, exit with a
//! documented code (see `repflow::cli`).

use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn main() {
    let cli = repflow::cli::Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, _) => log::LevelFilter::Debug,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format_timestamp(None)
        .init();
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        log::warn!("Ctrl-C will not stop runs cleanly: {e}");
    }

    let exit = repflow::cli::main(cli, &INTERRUPTED);
    if let Some(msg) = exit.message {
        eprintln!("{msg}");
    }
    std::process::exit(exit.code);
}
