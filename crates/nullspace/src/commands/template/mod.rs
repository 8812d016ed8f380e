//! `nullspace template …`: the clap tree of the template group and the dispatch to its modules —
//! refs and their management (`refs`), builds and their logs (`build`, from flags turned into a
//! request by `spec`/`steps`/`credentials`/`request`/`context`), checks that build nothing
//! (`check`: validate, plan, dry run), past builds (`history`: builds, retry, promote), local
//! rendering (`render`) and warm pools (`warm_pool`).

mod build;
mod check;
mod context;
mod credentials;
mod history;
mod refs;
mod render;
mod request;
mod spec;
mod steps;
mod warm_pool;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

pub use build::LogFormat;
pub use spec::SpecArgs;
pub use warm_pool::WarmPoolCommand;

use crate::cli::{parse_field, GlobalArgs};
use crate::exit::ExitStatus;

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Write a starter build request, nullspace.template.json (build it with `template build --file`).
    Init {
        /// Directory to write it in.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// List the templates sandboxes can start from.
    #[command(visible_alias = "ls")]
    List {
        /// Only these fields (comma-separated), e.g. id,canonical_ref,visibility.
        #[arg(long, value_delimiter = ',', value_parser = parse_field)]
        fields: Vec<String>,
    },
    /// Show one template (by id, ref such as team/app:stable, or alias).
    Get {
        /// Template id, ref or alias.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// Only these fields (comma-separated).
        #[arg(long, value_delimiter = ',', value_parser = parse_field)]
        fields: Vec<String>,
    },
    /// Say whether a template ref resolves (exit 1 when it does not).
    Exists {
        /// Template id, ref or alias.
        #[arg(value_name = "REF")]
        template_ref: String,
    },
    /// Build a template from an image, a template or a Dockerfile plus steps; streams the build log.
    Build(Box<BuildArgs>),
    /// Ask the server whether the flags make a valid build request, without building (exit 1 when
    /// invalid; errors and warnings listed, secrets redacted).
    Validate(Box<SpecArgs>),
    /// Show the steps the server would run for the flags, with digests and warnings, without building.
    Plan(Box<SpecArgs>),
    /// Print the build request or a Dockerfile for the flags, without building (secrets redacted).
    #[command(subcommand)]
    Render(RenderCommand),
    /// List a template's builds, newest first.
    Builds {
        /// Template id, ref or alias.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// Only builds in this status.
        #[arg(long, value_enum)]
        status: Option<history::BuildStatusArg>,
        /// At most this many builds (1-100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: Option<u32>,
        /// Page cursor printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Run a build again from its stored request (a failed or cancelled one, or any other); prints the
    /// new build.
    Retry(history::RetryArgs),
    /// Point a tag of the build's template name at the template this build produced.
    Promote {
        /// Build id (`tb_…`), of a ready build.
        build_id: String,
        /// Tag to move, e.g. stable.
        tag: String,
    },
    /// Show a build and its log entries from an offset.
    BuildStatus {
        /// Build id (`tb_…`).
        build_id: String,
        /// First log offset to include.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Print a build's log (streamed; --follow waits for the build to end).
    Logs {
        /// Build id.
        build_id: String,
        /// Keep following until the build ends.
        #[arg(long)]
        follow: bool,
        /// First log offset to include.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Wait for a background build to end, showing its log (exit 1 unless it is ready).
    Wait {
        /// Build id.
        build_id: String,
        /// First log offset to show.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 250)]
        poll_interval_ms: u64,
        /// How log entries are shown on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Cancel a queued or running build.
    Cancel {
        /// Build id.
        build_id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reserve a template name before its first build.
    Reserve {
        /// Ref to reserve, e.g. team/app.
        #[arg(value_name = "REF")]
        template_ref: String,
    },
    /// Rename a template; the old name stays as an alias.
    Rename {
        /// Current ref.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// New name.
        new_name: String,
    },
    /// Inspect template namespaces.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Manage template name claims.
    #[command(subcommand)]
    Claim(ClaimCommand),
    /// Manage a template's tags.
    #[command(subcommand)]
    Tag(TagCommand),
    /// Manage a template's aliases.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Set who may use a template.
    #[command(subcommand)]
    Visibility(VisibilityCommand),
    /// Delete a template ref.
    #[command(visible_alias = "rm")]
    Delete {
        /// Template id, ref or alias.
        #[arg(value_name = "REF")]
        template_ref: String,
    },
    /// Keep sandboxes of a template ready for instant creates.
    #[command(subcommand, name = "warm-pool")]
    WarmPool(WarmPoolCommand),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Queue the build and return its id at once (follow it with `template logs ID --follow`).
    #[arg(long)]
    pub background: bool,
    /// Build nothing: print the request as it would be sent (build secrets and registry passwords
    /// redacted) and, when the server can be reached, its plan.
    #[arg(long, conflicts_with = "background")]
    pub dry_run: bool,
    /// Who may use the template once built: private (this tenant) or public (every tenant).
    #[arg(long, value_enum, value_name = "VISIBILITY")]
    pub visibility: Option<VisibilityArg>,
    /// How log entries are shown on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// The build request as JSON (what `template build` would send, minus uploads).
    Json(Box<SpecArgs>),
    /// The template as a Dockerfile.
    Dockerfile(Box<SpecArgs>),
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Show a namespace.
    Get {
        /// Namespace slug.
        slug: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClaimCommand {
    /// Release a name claim.
    Release {
        /// Claim token from `template reserve`.
        claim_token: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TagCommand {
    /// Point tags at this template.
    Assign {
        /// Template ref.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// Tags.
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// List a template's tags.
    List {
        /// Template ref.
        #[arg(value_name = "REF")]
        template_ref: String,
    },
    /// Remove a tag.
    Remove {
        /// Template ref.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// Tag.
        tag: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// List a template's aliases.
    List {
        /// Template ref.
        #[arg(value_name = "REF")]
        template_ref: String,
    },
    /// Remove an alias.
    Remove {
        /// Template ref.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// Alias.
        alias: String,
    },
}

/// Who may use a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VisibilityArg {
    Private,
    Public,
}

impl VisibilityArg {
    fn as_str(self) -> &'static str {
        match self {
            VisibilityArg::Private => "private",
            VisibilityArg::Public => "public",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum VisibilityCommand {
    /// Set the visibility.
    Set {
        /// Template ref.
        #[arg(value_name = "REF")]
        template_ref: String,
        /// private or public.
        #[arg(value_enum)]
        visibility: VisibilityArg,
    },
}

/// Runs a `template` subcommand.
pub async fn run(command: TemplateCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let json = global.json;
    // Commands that need no server first.
    match &command {
        TemplateCommand::Init { dir } => return refs::init(dir, json),
        TemplateCommand::Render(render) => {
            let (spec, as_json) = match render {
                RenderCommand::Json(spec) => (spec, true),
                RenderCommand::Dockerfile(spec) => (spec, false),
            };
            let prepared = request::prepare(spec, |name| std::env::var(name).ok())?;
            if as_json {
                build::print_request(&prepared)?;
            } else {
                print!("{}", render::dockerfile(&prepared));
            }
            return Ok(ExitStatus::Success);
        }
        TemplateCommand::Build(args) if args.dry_run => {
            let prepared = request::prepare(&args.spec, |name| std::env::var(name).ok())?;
            // No key or no server still shows the request; the plan is left out with the reason.
            let client = super::client(global).ok();
            return check::dry_run(client.as_ref(), &prepared, json).await;
        }
        _ => {}
    }
    let client = super::client(global)?;
    let client = &client;
    match command {
        TemplateCommand::Init { .. } | TemplateCommand::Render(_) => unreachable!("handled above"),
        TemplateCommand::Build(args) if args.dry_run => unreachable!("handled above"),
        TemplateCommand::List { fields } => refs::list(client, &fields, json).await,
        TemplateCommand::Get { template_ref, fields } => refs::get(client, &template_ref, &fields, json).await,
        TemplateCommand::Exists { template_ref } => refs::exists(client, &template_ref, json).await,
        TemplateCommand::Build(args) => {
            let prepared = request::prepare(&args.spec, |name| std::env::var(name).ok())?;
            let visibility = args.visibility.map(VisibilityArg::as_str);
            build::run_build(client, prepared, args.background, args.log_format, visibility, json).await
        }
        TemplateCommand::Validate(spec) => {
            let prepared = request::prepare(&spec, |name| std::env::var(name).ok())?;
            check::validate(client, &prepared, json).await
        }
        TemplateCommand::Plan(spec) => {
            let prepared = request::prepare(&spec, |name| std::env::var(name).ok())?;
            check::plan(client, &prepared, json).await
        }
        TemplateCommand::Builds { template_ref, status, limit, cursor } => {
            history::list(client, &template_ref, status, limit, cursor.as_deref(), json).await
        }
        TemplateCommand::Retry(args) => history::retry(client, &args, json).await,
        TemplateCommand::Promote { build_id, tag } => history::promote(client, &build_id, &tag, json).await,
        TemplateCommand::BuildStatus { build_id, offset } => build::status(client, &build_id, offset, json).await,
        TemplateCommand::Logs { build_id, follow, offset } => {
            build::logs(client, &build_id, offset, follow, json).await
        }
        TemplateCommand::Wait { build_id, offset, poll_interval_ms, log_format } => {
            let interval = Duration::from_millis(poll_interval_ms);
            build::wait(client, &build_id, offset, interval, log_format, Vec::new(), json).await
        }
        TemplateCommand::Cancel { build_id, reason } => build::cancel(client, &build_id, reason.as_deref(), json).await,
        TemplateCommand::Reserve { template_ref } => refs::reserve(client, &template_ref, json).await,
        TemplateCommand::Rename { template_ref, new_name } => {
            refs::rename(client, &template_ref, &new_name, json).await
        }
        TemplateCommand::Namespace(NamespaceCommand::Get { slug }) => refs::namespace(client, &slug, json).await,
        TemplateCommand::Claim(ClaimCommand::Release { claim_token }) => {
            refs::release(client, &claim_token, json).await
        }
        TemplateCommand::Tag(TagCommand::Assign { template_ref, tags }) => {
            refs::tag_assign(client, &template_ref, &tags, json).await
        }
        TemplateCommand::Tag(TagCommand::List { template_ref }) => refs::tag_list(client, &template_ref, json).await,
        TemplateCommand::Tag(TagCommand::Remove { template_ref, tag }) => {
            refs::tag_remove(client, &template_ref, &tag, json).await
        }
        TemplateCommand::Alias(AliasCommand::List { template_ref }) => {
            refs::alias_list(client, &template_ref, json).await
        }
        TemplateCommand::Alias(AliasCommand::Remove { template_ref, alias }) => {
            refs::alias_remove(client, &template_ref, &alias, json).await
        }
        TemplateCommand::Visibility(VisibilityCommand::Set { template_ref, visibility }) => {
            refs::visibility(client, &template_ref, visibility.as_str(), json).await
        }
        TemplateCommand::Delete { template_ref } => refs::delete(client, &template_ref, json).await,
        TemplateCommand::WarmPool(command) => warm_pool::run(client, command, json).await,
    }
}
