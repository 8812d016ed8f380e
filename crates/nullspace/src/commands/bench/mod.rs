//! `nullspace bench`: measures a running server, each figure beside a baseline measured in the same run
//! (absolute times swing on a shared machine; the ratio is the figure), one module per mode: `files`
//! (API transfers vs `cp`), `exec` (round trip vs `GET /healthz`), `create` (create→first exec vs bare
//! `runc run`), `concurrent` (N creates→first exec at once vs one after another), `fork` (vs `cp -a` of
//! the change set), `resume` (vs a cold create), `density` (MiB per idle sandbox at 10, 100 and 1,000
//! from the host's free memory), and the template, code-interpreter and desktop figures of `templates`,
//! `code` and `desktop`. `report` holds the rows and prints them (`--json` writes the same).

mod code;
mod concurrent;
mod create;
mod density;
mod desktop;
mod exec;
mod files;
mod fork;
mod report;
mod resume;
mod rfb;
mod templates;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::ValueEnum;
use nullspace_client::Client;
use nullspace_node::template::TemplateStore;
use nullspace_types::exec_api::ExecRequest;
use serde_json::json;

use self::report::{Row, Summary};
use self::templates::TemplateBench;
use crate::cli::{BenchArgs, BenchMode, GlobalArgs};
use crate::exit::ExitStatus;

/// What every mode measures against: the server, its data dir and the run's sizes.
pub(super) struct Bench<'a> {
    client: Client,
    global: &'a GlobalArgs,
    data_dir: PathBuf,
    quick: bool,
    sandboxes: usize,
    execs: usize,
    file_mb: usize,
    concurrency: usize,
}

impl Bench<'_> {
    /// The rootfs of the server's built `base` template (what bare `runc run` starts).
    fn base_rootfs(&self) -> anyhow::Result<PathBuf> {
        TemplateStore::new(self.data_dir.join("templates")).get("base").map(|layer| layer.rootfs).with_context(|| {
            format!("no built base template under {}; pass the server's --data-dir", self.data_dir.display())
        })
    }
}

fn exec_true() -> ExecRequest {
    ExecRequest { command: "true".to_owned(), ..ExecRequest::default() }
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let sized =
        |value: Option<usize>, full: usize, quick: usize| value.unwrap_or(if args.quick { quick } else { full });
    let bench = Bench {
        client: super::client(global)?,
        global,
        data_dir: super::data_dir(args.data_dir.clone())?,
        quick: args.quick,
        sandboxes: sized(args.sandboxes, 20, 3),
        execs: sized(args.execs, 200, 20),
        file_mb: sized(args.file_mb, 1024, 16),
        concurrency: sized(args.concurrency, 100, 10),
    };
    if bench.sandboxes == 0 || bench.execs == 0 || bench.file_mb == 0 || bench.concurrency == 0 {
        bail!("--sandboxes, --execs, --file-mb and --concurrency must be at least 1");
    }
    let mut modes = args.modes.clone();
    if modes.is_empty() {
        // Concurrent creates and density hold many sandboxes at once: they need the server's overcommit
        // flags, so they run only when asked for.
        let by_default = |mode: &&BenchMode| !matches!(mode, BenchMode::Concurrent | BenchMode::Density);
        modes = BenchMode::value_variants().iter().filter(by_default).copied().collect();
    }
    modes.sort();
    modes.dedup();

    let mut rows: Vec<Row> = Vec::new();
    let (mut template_figures, mut code_figures, mut desktop_figures) = (None, None, None);
    for mode in &modes {
        match mode {
            BenchMode::Files => rows.extend(files::measure(&bench).await?),
            BenchMode::Exec => rows.extend(exec::measure(&bench).await?),
            BenchMode::Create => rows.extend(create::measure(&bench).await?),
            BenchMode::Concurrent => rows.extend(concurrent::measure(&bench).await?),
            BenchMode::Fork => rows.extend(fork::measure(&bench).await?),
            BenchMode::Resume => rows.extend(resume::measure(&bench).await?),
            BenchMode::Density => {
                let steps = match &args.density_steps {
                    Some(steps) => steps.clone(),
                    None if args.quick => vec![10, 50],
                    None => vec![10, 100, 1000],
                };
                rows.extend(density::measure(&bench, &steps).await?)
            }
            BenchMode::Templates => template_figures = measure_templates(&bench, &args).await?,
            BenchMode::Code => {
                code_figures = if args.no_code_interpreter {
                    eprintln!("bench: code-interpreter figures skipped (--no-code-interpreter)");
                    None
                } else {
                    let (sandboxes, runs) = (args.code_sandboxes as usize, args.code_runs as usize);
                    code::measure(&bench.client, sandboxes, runs, args.code_warm_pool).await?
                }
            }
            BenchMode::Desktop => {
                desktop_figures = if args.no_desktop {
                    eprintln!("bench: desktop figures skipped (--no-desktop)");
                    None
                } else {
                    desktop::measure(&bench.client, bench.global, args.desktop_samples as usize).await?
                }
            }
        }
    }

    if global.json {
        let body = json!({
            "quick": bench.quick,
            "modes": modes,
            "rows": report::rows_json(&rows),
            "templates": template_figures,
            "code_interpreter": code_figures,
            "desktop": desktop_figures,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitStatus::Success);
    }
    if !rows.is_empty() {
        report::print_rows(&rows);
    }
    let row = |name: &str, s: &Summary| {
        println!(
            "{name:<24} p50 {:>8.2} ms   p90 {:>8.2} ms   mean {:>8.2} ms   n={}",
            s.p50_ms, s.p90_ms, s.mean_ms, s.samples
        )
    };
    if modes.contains(&BenchMode::Templates) {
        match &template_figures {
            Some(figures) => templates::print_rows(figures, row),
            None => println!("{:<24} skipped: pass --registry-image (see `nullspace bench --help`)", "templates"),
        }
    }
    if modes.contains(&BenchMode::Code) {
        code::print_rows(code_figures.as_ref(), args.no_code_interpreter, row);
    }
    if modes.contains(&BenchMode::Desktop) {
        desktop::print_rows(desktop_figures.as_ref(), args.no_desktop, row);
    }
    Ok(ExitStatus::Success)
}

async fn measure_templates(bench: &Bench<'_>, args: &BenchArgs) -> anyhow::Result<Option<templates::TemplateFigures>> {
    let Some(image) = &args.registry_image else {
        eprintln!("bench: template figures skipped (no --registry-image): {}", templates::IMAGE_HINT);
        return Ok(None);
    };
    let template_bench = TemplateBench {
        image,
        data_dir: args.data_dir.as_deref(),
        pulls: args.pulls as usize,
        templates: args.templates as usize,
    };
    Ok(Some(templates::measure(&bench.client, &template_bench).await?))
}
