//! `runner`: the command line. Parses arguments, calls the library, maps the
//! outcome to an exit code. Nothing else lives here.
//!
//! Exit codes: 0 ok, 1 problems found (a pipeline that does not compile, a
//! rejected payload, a failing test case), 2 usage error (bad arguments, an
//! input that cannot be read).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use traksense_ingest::graph::{compile, run};
use traksense_ingest::telemetry::{init_tracing, LogFormat, Telemetry};
use traksense_ingest::tools::dry_run_report::Expectation;
use traksense_ingest::tools::error::ToolError;
use traksense_ingest::tools::graph::Notation;
use traksense_ingest::tools::{
    cases, check, dry_run, dry_run_report, graph, inputs, schema, verdict,
};

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
    /// Compile pipeline files exactly as `run` does, connecting nothing, and
    /// report every problem.
    Check {
        /// Pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Treat warnings (an unreachable stage, a format no payload can
        /// select…) as errors.
        #[arg(long)]
        deny_warnings: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Push payloads through the compiled stages, without broker or database,
    /// and show where each went and what it became.
    DryRun {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The topic the payloads are published on.
        #[arg(long)]
        topic: String,
        /// Payload files or directories; `-` (or nothing) reads one payload
        /// per line of standard input.
        inputs: Vec<PathBuf>,
        /// Output format: text, or one JSON object per payload.
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
        /// Exit 0 only if every payload is stored (`ok`, the default) or
        /// every payload is rejected (`rejected`).
        #[arg(long, value_enum, default_value = "ok")]
        expect: Expect,
    },
    /// Run the test cases beside each pipeline (NAME.tests.yaml).
    Test {
        /// Pipeline files (or their .tests.yaml files).
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Text for people, or one JSON object per case and a summary line.
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Print the compiled pipeline as a graph.
    Graph {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Mermaid (default) or Graphviz DOT.
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
    /// Print the JSON Schema of the pipeline file format, for editors.
    Schema,
}

/// Output of `check`, `dry-run` and `test`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// `dry-run --expect`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Expect {
    Ok,
    Rejected,
}

/// `graph --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// mimalloc instead of glibc's malloc: the runner allocates per message
/// (topic captures, the parsed document, rows) and frees on another thread;
/// glibc's allocator was ~20 % of the runner's CPU samples, and mimalloc
/// cuts the runner's CPU per point by 10-20 % (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the Rust binding has
/// no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed memory back to the OS at once instead of after
/// its default delay (1 s): a burst's backlog is freed as it drains, so the
/// peak RSS absorbing 60 000 messages stays at ~135 MB instead of ~160 MB,
/// for a few % more CPU. `MIMALLOC_PURGE_DELAY` still overrides it.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores one integer option of the allocator;
        // it is thread-safe and takes no pointers.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    init_tracing(match cli.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    });
    let result = match (cli.command, cli.pipeline) {
        (Some(Command::Run { pipeline }), _) | (None, Some(pipeline)) => run_pipeline(pipeline),
        (None, None) => {
            eprintln!("usage: runner PIPELINE.yaml   (see runner --help)");
            return ExitCode::from(2);
        }
        (Some(tool), _) => run_tool(tool),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<ToolError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// 0 when `ok`, else 1.
fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes to stdout; a closed pipe (`runner schema | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// Compiles `file`, printing its errors to stderr when it does not compile.
fn compile_or_report(file: &Path) -> Option<traksense_ingest::graph::plan::Plan> {
    match compile::compile(file) {
        Ok(plan) => Some(plan),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

/// The editing tools: check, dry-run, test, graph, schema.
fn run_tool(tool: Command) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    match tool {
        Command::Run { pipeline } => run_pipeline(pipeline),
        Command::Check {
            pipelines,
            deny_warnings,
            format,
        } => {
            let report = check::CheckReport::run(&pipelines, &env, deny_warnings);
            match format {
                Output::Text => emit(&report.text())?,
                Output::Json => emit(&format!("{:#}\n", report.json()))?,
            }
            Ok(status(report.passed()))
        }
        Command::DryRun {
            pipeline,
            topic,
            inputs,
            format,
            expect,
        } => {
            let reads_stdin = inputs.is_empty() || inputs.iter().any(|i| i.as_os_str() == "-");
            if reads_stdin && std::io::stdin().is_terminal() {
                eprintln!("reading payloads from standard input, one JSON document per line; end with Ctrl-D");
            }
            let payloads = inputs::read_inputs(&inputs, &mut std::io::stdin().lock())?;
            let Some(plan) = compile_or_report(&pipeline) else {
                return Ok(ExitCode::FAILURE);
            };
            let mut traces = Vec::new();
            for input in payloads {
                let trace =
                    dry_run::dry_run(&plan, &topic, input.payload).map_err(ToolError::from)?;
                traces.push((input.label, trace));
            }
            match format {
                Output::Text => emit(&dry_run_report::text(&traces))?,
                Output::Json => emit(&dry_run_report::json_lines(&traces))?,
            }
            let expect = match expect {
                Expect::Ok => Expectation::Ok,
                Expect::Rejected => Expectation::Rejected,
            };
            Ok(status(dry_run_report::meets(&traces, expect)))
        }
        Command::Test { pipelines, format } => {
            let mut all = Vec::new();
            let mut ok = true;
            for given in pipelines {
                let (pipeline, tests) = cases::locate(&given);
                if !tests.exists() {
                    return Err(ToolError::NoCases {
                        pipeline,
                        expected: tests,
                    }
                    .into());
                }
                let file = match cases::load(&tests) {
                    Ok(file) => file,
                    Err(errors) => {
                        eprintln!("{errors}");
                        ok = false;
                        continue;
                    }
                };
                let Some(plan) = compile_or_report(&pipeline) else {
                    ok = false;
                    continue;
                };
                let verdicts = verdict::run_cases(&plan, &file).map_err(ToolError::from)?;
                emit(&match format {
                    Output::Text => verdict::text(&file, &verdicts),
                    Output::Json => verdict::json_lines(&file, &verdicts),
                })?;
                all.extend(verdicts);
            }
            emit(&match format {
                Output::Text => verdict::summary(&all),
                Output::Json => verdict::summary_json(&all),
            })?;
            Ok(status(ok && all.iter().all(verdict::Verdict::passed)))
        }
        Command::Graph { pipeline, format } => {
            let Some(plan) = compile_or_report(&pipeline) else {
                return Ok(ExitCode::FAILURE);
            };
            let notation = match format {
                GraphFormat::Mermaid => Notation::Mermaid,
                GraphFormat::Dot => Notation::Dot,
            };
            emit(&graph::render(&plan, notation))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            emit(&format!("{:#}\n", schema::pipeline_schema()))?;
            Ok(ExitCode::SUCCESS)
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if plan.worker_threads > 0 {
        builder.worker_threads(plan.worker_threads);
    }
    let runtime = builder.build().context("starting the tokio runtime")?;
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
