//! The binary's body: parse the command line, set up logging and the runtime, run one
//! command, map its outcome to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::commands;
use crate::config::LogFormat;
use crate::exit::{CommandError, CommandResult};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if crate::logging::is_json() => {
            tracing::error!(exit_code = error.code(), "{error}");
            ExitCode::from(error.code())
        }
        Err(error) => {
            eprintln!("kyma-certd: error: {error}");
            ExitCode::from(error.code())
        }
    }
}

fn run(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "kyma-certd", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => {
            crate::man::render(&mut std::io::stdout().lock()).map_err(CommandError::failed)
        }
        Command::CheckConfig => {
            init_logging(LogFormat::Text, "warn")?;
            commands::check_config(&cli.config)
        }
        Command::Check { name, json } => {
            init_logging(LogFormat::Text, "warn")?;
            block_on(commands::check(&cli.config, name.as_deref(), json))
        }
        Command::Status { name, json } => {
            init_logging(LogFormat::Text, "warn")?;
            commands::status(&cli.config, name.as_deref(), json)
        }
        Command::Enroll {
            name,
            token,
            token_file,
            url,
            if_needed,
        } => {
            init_one_shot_logging(&cli.config)?;
            race_key_searches();
            let args = commands::EnrollArgs {
                name,
                token,
                token_file,
                url,
                if_needed,
            };
            block_on(commands::enroll(&cli.config, args))
        }
        Command::Renew { name, force } => {
            init_one_shot_logging(&cli.config)?;
            race_key_searches();
            block_on(commands::renew(&cli.config, name.as_deref(), force))
        }
        Command::Revoke { name, yes } => {
            init_one_shot_logging(&cli.config)?;
            block_on(commands::revoke(&cli.config, &name, yes))
        }
        Command::Run => {
            let config = commands::load_config(&cli.config)?;
            init_logging(config.daemon.log_format, &config.daemon.log_level)?;
            let blocking = daemon_blocking_threads(config.daemon.max_concurrent_renewals);
            block_on_with(
                async {
                    crate::daemon::run(config)
                        .await
                        .map_err(CommandError::failed)
                },
                blocking,
                BLOCKING_THREAD_NICENESS,
            )
        }
        Command::Demo {
            validity,
            protocol,
            duration,
            verbose,
        } => {
            crate::demo::init_logging(verbose).map_err(CommandError::usage)?;
            block_on(crate::demo::run(crate::demo::DemoOptions {
                validity,
                protocol,
                duration,
                verbose,
            }))
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) -> CommandResult {
    crate::logging::init(format, filter).map_err(CommandError::usage)
}

/// The commands that act on certificates (`enroll`, `renew`, `revoke`) log as the
/// configuration says when it asks for JSON, at its `log_level`: an init container's
/// lines then parse like the daemon's. Otherwise, on a terminal, warnings and errors
/// only, as text. A configuration that does not load is reported by the command itself.
fn init_one_shot_logging(config: &std::path::Path) -> CommandResult {
    match crate::config::load(config) {
        Ok(config) if config.daemon.log_format == LogFormat::Json => {
            init_logging(LogFormat::Json, &config.daemon.log_level)
        }
        _ => init_logging(LogFormat::Text, "warn"),
    }
}

/// Someone waits for a one-shot command: its RSA key generation may race one search per
/// CPU (the daemon keeps one, see `keys::set_parallel_searches`).
fn race_key_searches() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    crate::pki::keys::set_parallel_searches(cpus);
}

/// One thread runs the event loop; key generation and disk writes go to the blocking pool.
fn block_on<F: std::future::Future<Output = CommandResult>>(future: F) -> CommandResult {
    block_on_with(future, ONE_SHOT_BLOCKING_THREADS, 0)
}

/// Blocking threads of the one-shot commands: they handle one certificate at a time.
const ONE_SHOT_BLOCKING_THREADS: usize = 4;

/// Blocking threads of the daemon: one per renewal that may run at once (key generation,
/// the durable swap), plus two for start-up recovery and `state.json` writes. Without a
/// bound, tokio's default of 512 lets the start-up recovery of many certificates spawn
/// hundreds of threads at once.
fn daemon_blocking_threads(max_concurrent_renewals: usize) -> usize {
    max_concurrent_renewals.max(1).saturating_add(2)
}

/// How much nicer than the event loop the daemon's blocking threads run. Key generation
/// is throughput work with days of slack; the event loop answers scrapes, health checks,
/// signals and watchdog pings. With four RSA renewals on two cores the loop otherwise
/// gets a fifth of the CPU, and a scrape waits tens of milliseconds.
const BLOCKING_THREAD_NICENESS: i32 = 10;

/// How long the blocking pool may finish its work once the command returned. A key
/// generation abandoned at shutdown may still run there: do not wait for it. A swap in
/// flight is atomic, and `recover` tidies up at the next start. The daemon's stop bound
/// counts it, so it is the daemon's.
use crate::daemon::BLOCKING_SHUTDOWN_GRACE;

/// Runs `future` on the current thread; blocking work goes to at most
/// `max_blocking_threads` threads, each `niceness` nicer than this one.
fn block_on_with<F: std::future::Future<Output = CommandResult>>(
    future: F,
    max_blocking_threads: usize,
    niceness: i32,
) -> CommandResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(max_blocking_threads)
        .on_thread_start(move || {
            if niceness > 0 {
                lower_this_threads_priority(niceness);
            }
        })
        .build()
        .map_err(CommandError::failed)?;
    let result = runtime.block_on(future);
    runtime.shutdown_timeout(BLOCKING_SHUTDOWN_GRACE);
    result
}

/// Linux keeps a nice value per thread: this raises the calling thread's by `by` (within
/// the allowed 19). A failure leaves the thread as it was, which is only slower to yield.
fn lower_this_threads_priority(by: i32) {
    let current = rustix::process::getpriority_process(None).unwrap_or(0);
    let _ = rustix::process::setpriority_process(None, current.saturating_add(by).min(19));
}
