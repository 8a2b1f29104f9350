//! `runner`: the command line. Parses arguments, calls the library, maps the
//! outcome to an exit code. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use traksense_ingest::graph::{compile, run};
use traksense_ingest::telemetry::{init_tracing, LogFormat, Telemetry};

/// TrakSense ingest: MQTT → PostgreSQL, configured as a YAML pipeline.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The pipeline file to run (same as `runner run FILE`).
    pipeline: Option<PathBuf>,
    /// Log format (also `LOG_FORMAT`).
    #[arg(
        long,
        value_enum,
        env = "LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: Format,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline until Ctrl-C or SIGTERM.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(match cli.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    });
    let pipeline = match (cli.command, cli.pipeline) {
        (Some(Command::Run { pipeline }), _) | (None, Some(pipeline)) => pipeline,
        (None, None) => {
            eprintln!("usage: runner PIPELINE.yaml   (see runner --help)");
            return ExitCode::from(2);
        }
    };
    match run_pipeline(pipeline) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_pipeline(file: PathBuf) -> anyhow::Result<ExitCode> {
    let plan = match compile::compile(&file) {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        let telemetry = Telemetry::new()?;
        let summary = run::run(plan, shutdown, telemetry).await?;
        tracing::info!(
            received = summary.received,
            acknowledged = summary.acknowledged,
            "stopped"
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn watch_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
