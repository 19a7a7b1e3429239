//! The command line: `repflow run`, `sweep`, `validate` and `inspect`.
//!
//! Exit codes: 0 when everything asked for completed; 1 on a runtime
//! error (a file that cannot be written or read); 2 on bad input (a
//! scenario error, a bad flag, an output that exists without `--force`);
//! 3 when the file was written but some run stopped early (step budget,
//! step-size underflow, divergence, failure); 130 when interrupted.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::{Args, Parser, Subcommand};

use crate::inspect;
use crate::plan::Plan;
use crate::run::{PlanStatus, RunError, RunOptions};
use crate::scenario::Scenario;
use crate::sweep::{self, Study, dry_run};

/// Gradient-flow and SGD learning dynamics of one-hidden-layer networks.
#[derive(Debug, Parser)]
#[command(name = "repflow", version, about)]
pub struct Cli {
    /// More log output (-v: per-run results, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr, no progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (the built-in default when none is given).
    Run {
        /// The scenario file (TOML).
        scenario: Option<PathBuf>,
        /// Where to write, and how.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run a sweep (a scenario with a [sweep] table), or list its points.
    Sweep {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// List the points and estimate the work, without running.
        #[arg(long)]
        dry_run: bool,
        /// Where to write, and how.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check a scenario and print the resolved plan (or a sweep's points),
    /// without running it.
    Validate {
        /// The scenario file (TOML).
        scenario: PathBuf,
    },
    /// Summarise a repflow HDF5 file.
    Inspect {
        /// The file.
        file: PathBuf,
    },
}

/// An exit code with the message to print, if any.
pub struct Exit {
    /// The process exit code.
    pub code: i32,
    /// Printed to stderr.
    pub message: Option<String>,
}

impl Exit {
    fn ok() -> Self {
        Exit {
            code: 0,
            message: None,
        }
    }

    fn fail(code: i32, message: impl std::fmt::Display) -> Self {
        Exit {
            code,
            message: Some(format!("error: {message}")),
        }
    }
}

/// Runs a parsed command line; `interrupt` is set by the Ctrl-C handler.
pub fn main(cli: Cli, interrupt: &AtomicBool) -> Exit {
    match cli.command {
        Command::Run { scenario, run } => match load_study(scenario.as_deref()) {
            Ok(study) => run_study(&study, run, cli.quiet, interrupt),
            Err(msg) => Exit::fail(2, msg),
        },
        Command::Sweep {
            scenario,
            dry_run,
            run,
        } => match load_study(Some(&scenario)) {
            Ok(study) if dry_run => {
                print!("{}", dry_run::describe(&study));
                Exit::ok()
            }
            Ok(study) => run_study(&study, run, cli.quiet, interrupt),
            Err(msg) => Exit::fail(2, msg),
        },
        Command::Validate { scenario } => match load_study(Some(&scenario)) {
            Ok(study) if study.is_sweep() => {
                print!("{}", dry_run::describe(&study));
                Exit::ok()
            }
            Ok(study) => {
                print!("{}", describe(&study.points[0].plan));
                Exit::ok()
            }
            Err(msg) => Exit::fail(2, msg),
        },
        Command::Inspect { file } if sweep::inspect::is_sweep(&file) => {
            match sweep::inspect::summarise(&file) {
                Ok(summary) => {
                    print!("{summary}");
                    Exit::ok()
                }
                Err(e) => Exit::fail(1, e),
            }
        }
        Command::Inspect { file } => match inspect::summarise(&file) {
            Ok(summary) => {
                print!("{summary}");
                Exit::ok()
            }
            Err(e) => Exit::fail(1, e),
        },
    }
}

/// The flags of `run` and `sweep`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The output file (default: the scenario's output.path, or
    /// repflow-<name>.h5).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Worker threads (default: one per core).
    #[arg(short = 'j', long, default_value_t = 0)]
    pub threads: usize,
    /// Keep the finished runs of an existing output file made from the
    /// same scenario, run only the rest, and write the whole file.
    #[arg(long)]
    pub resume: bool,
}

/// Runs every point of a study and maps how it ended to an exit code.
fn run_study(study: &Study, args: RunArgs, quiet: bool, interrupt: &AtomicBool) -> Exit {
    let out = args.output.unwrap_or_else(|| study.output().to_path_buf());
    let opts = RunOptions {
        threads: args.threads,
        force: args.force || args.resume,
        progress: !quiet && std::io::stderr().is_terminal(),
        ..RunOptions::default()
    };
    let kept = if args.resume {
        match sweep::resume::kept(&out, study) {
            Ok(kept) => kept,
            Err(e) => return Exit::fail(1, e),
        }
    } else {
        sweep::run::empty_results(study)
    };
    if args.resume {
        let n = kept.iter().flatten().filter(|r| r.is_some()).count();
        log::info!("resuming {}: {n} finished runs kept", out.display());
    }
    match sweep::run::execute(study, &out, &opts, interrupt, kept) {
        Ok(status) => {
            println!("{}: {}", out.display(), status.name());
            exit_for(status, &out)
        }
        Err(e @ RunError::Exists(_)) => Exit::fail(2, e),
        Err(e) => Exit::fail(1, e),
    }
}

fn exit_for(status: PlanStatus, out: &std::path::Path) -> Exit {
    match status {
        PlanStatus::Complete => Exit::ok(),
        PlanStatus::Incomplete => Exit {
            code: 3,
            message: Some(format!(
                "warning: some runs stopped early; `repflow inspect {}` says which",
                out.display()
            )),
        },
        PlanStatus::Interrupted => Exit {
            code: 130,
            message: Some(format!(
                "interrupted; {} holds what finished",
                out.display()
            )),
        },
    }
}

/// Loads and resolves a scenario file with or without `[sweep]`, or the
/// built-in default.
fn load_study(path: Option<&std::path::Path>) -> Result<Study, String> {
    match path {
        Some(p) => Study::load(p).map_err(|e| e.to_string()),
        None => load(None).map(Study::plain),
    }
}

/// Loads and resolves a scenario, or the built-in default.
fn load(path: Option<&std::path::Path>) -> Result<Plan, String> {
    let (scenario, source) = match path {
        Some(p) => Scenario::load(p).map_err(|e| e.to_string())?,
        None => Scenario::builtin(),
    };
    Plan::build(scenario, source).map_err(|e| e.to_string())
}

/// What `repflow validate` prints: the plan in a few lines.
fn describe(plan: &Plan) -> String {
    let t = &plan.task;
    let mut s = format!(
        "{}: valid\ntask: {} with P = {}, D = {}, K = {}, alignment {:.6}\n",
        plan.source.file,
        t.kind,
        t.conditions(),
        t.dim,
        t.outputs,
        t.measured_alignment()
    );
    let names: Vec<&str> = plan.runs.iter().map(|r| r.name.as_str()).collect();
    s += &format!("runs ({}): {}\n", names.len(), names.join(", "));
    if let Some(f) = &plan.flow {
        let st = &f.settings;
        s += &format!(
            "flow: {} rtol {:e} atol {:e} to t = {} ({} saved times)\n",
            st.solver.name(),
            st.rtol,
            st.atol,
            st.save_times.last().unwrap_or(&0.0),
            st.save_times.len()
        );
    }
    if let Some(g) = &plan.sgd {
        let st = &g.settings;
        s += &format!(
            "sgd: eta {} batch {} epochs {} on {} samples (noise {})\n",
            st.eta, st.batch, st.epochs, plan.samples.0, plan.samples.1
        );
    }
    s += &format!("output: {}\n", plan.output.display());
    s
}
