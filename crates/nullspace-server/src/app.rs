//! Starting the server: open the store, make sure an API key exists, pick the runtime, build the node,
//! reconcile, serve, and build the base template in the background.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nullspace_node::{Node, NodeConfig};

use crate::api::{router, AppState};
use crate::control::capacity::Capacity;
use crate::control::disk_limits::DiskLimits;
use crate::control::preview_grants::{PreviewConfig, PreviewGrants};
use crate::control::{spawn_reaper, spawn_warm_pool_refiller, spawn_webhook_worker, Control};
use crate::preview::PreviewPorts;
use crate::signing::Signer;
use crate::store::{LimitsUpdate, Store, TenantLimits, TenantUsage};
use crate::ServerError;

/// Name of the tenant that bootstrap and default keys belong to.
pub const DEFAULT_TENANT: &str = "default";

/// Environment variable naming an API key that must exist for the default tenant.
pub const BOOTSTRAP_KEY_ENV: &str = "NULLSPACE_BOOTSTRAP_API_KEY";

/// Environment variable overriding where the guest daemon binary is.
pub const GUESTD_ENV: &str = "NULLSPACE_GUESTD";

/// Options of `nullspace server`.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (store, templates, sandboxes).
    pub data_dir: PathBuf,
    /// `auto`, `runc`, `crun` or `runsc`.
    pub runtime: String,
    /// Domain of preview hosts `{port}-{sandbox_id}.{domain}`, served by the API listener.
    pub preview_domain: String,
    /// Host bridge of the sandboxes (default `nsbr0`); servers sharing a host need distinct ones.
    pub bridge: Option<String>,
    /// Sandbox subnet (default `10.213.0.0/16`).
    pub subnet: Option<String>,
    /// Size limit of volumes created without one (`None`: unlimited).
    pub volume_size: Option<u64>,
    /// Disk of sandboxes whose create names none, bytes (`None`: `--sandbox-disk unlimited`).
    pub sandbox_disk: Option<u64>,
    /// Per-sandbox resource caps and overcommit ratios.
    pub capacity: crate::CapacitySettings,
    /// Which webhook destinations are allowed.
    pub webhook_targets: crate::TargetPolicy,
    /// Registry mirrors and insecure registries of template builds.
    pub registry: crate::RegistryConfig,
    /// Built-in templates not to build (`--without-template`), e.g. `code-interpreter`.
    pub without_templates: Vec<String>,
    /// Idle sandboxes kept started for each built-in template, shared by every tenant
    /// (`--builtin-warm-pool NAME=N`; absent or 0: none).
    pub builtin_pools: std::collections::BTreeMap<String, u32>,
    /// The CA bundle sandboxes trust instead of their image's (`--sandbox-ca-bundle`).
    pub sandbox_ca_bundle: Option<PathBuf>,
    /// Run runc/crun sandboxes' root as the host's root (`--allow-host-root`).
    pub allow_host_root: bool,
    /// Timeouts and connection caps of the listeners.
    pub http: crate::HttpLimits,
    /// Answer raw VNC addresses of desktops (`--desktop-raw-vnc`, operator-only).
    pub desktop_raw_vnc: bool,
    /// The rate limit per API key and the exec cap per sandbox.
    pub requests: crate::RequestSettings,
    /// Most sandboxes alive at once (`--max-sandboxes`); `None`: the limit derived from the host
    /// (`nullspace_node::host_limits`).
    pub max_sandboxes: Option<u64>,
}

/// The most sandboxes alive at once: `--max-sandboxes` when given, else what the host can hold.
fn sandbox_limit(node: &Node, disk_limits: &DiskLimits, configured: Option<u64>) -> usize {
    let derived = node.sandbox_limit(*disk_limits != DiskLimits::Unlimited);
    let bounds: Vec<String> =
        derived.bounds.iter().map(|b| format!("{} {} ({})", b.resource, b.sandboxes, b.detail)).collect();
    let max = match configured {
        Some(max) => {
            if max > derived.max {
                tracing::warn!(max_sandboxes = max, derived = derived.max, bounds = ?bounds, "--max-sandboxes is above what this host can hold");
            }
            max
        }
        None => derived.max,
    };
    tracing::info!(
        max_sandboxes = max,
        derived = derived.max,
        bound_by = derived.binding().map_or("", |b| b.resource),
        bounds = ?bounds,
        "most sandboxes alive at once"
    );
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// The disk limits of sandboxes under `--sandbox-disk` (`default_bytes`), bounded by the data dir's
/// filesystem.
fn sandbox_disk_limits(node: &Node, default_bytes: Option<u64>) -> Result<DiskLimits, ServerError> {
    let setting = |reason: String| ServerError::Setting { reason };
    let filesystem = nullspace_node::sandbox_disk::filesystem_bytes(node.data_dir())
        .map_err(|error| setting(format!("--sandbox-disk: cannot measure the data dir's filesystem: {error}")))?;
    let limits = DiskLimits::new(default_bytes, filesystem).map_err(setting)?;
    if limits != DiskLimits::Unlimited {
        node.probe_sandbox_disks().map_err(|error| {
            setting(format!(
                "--sandbox-disk: this host cannot limit sandbox disks ({}); install e2fsprogs and load the loop \
                 module (`nullspace doctor` checks both), or start with --sandbox-disk unlimited to run without limits",
                crate::error_chain(&error)
            ))
        })?;
    }
    match limits {
        DiskLimits::Limited { default_mb, max_mb } => {
            tracing::info!(default_mb, max_mb, "sandbox disks are limited")
        }
        DiskLimits::Unlimited => {
            tracing::warn!("--sandbox-disk unlimited: sandboxes write to plain host directories without a limit")
        }
    }
    Ok(limits)
}

async fn open_store(data_dir: &Path) -> Result<Store, ServerError> {
    nullspace_node::private_dir(data_dir)
        .map_err(|source| ServerError::DataDir { path: data_dir.to_path_buf(), source })?;
    Ok(Store::open_sqlite(&data_dir.join("nullspace.db")).await?)
}

/// Creates a new API key for `tenant` (created if missing) in the store under `data_dir`.
pub async fn create_api_key(data_dir: &Path, tenant: &str) -> Result<String, ServerError> {
    let store = open_store(data_dir).await?;
    let tenant = store.ensure_tenant(tenant).await?;
    let key = crate::ids::api_key();
    store.add_api_key(&tenant, &key).await?;
    Ok(key)
}

/// A tenant's limits and what it holds now (`nullspace tenant get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantReport {
    /// Tenant name.
    pub name: String,
    /// Tenant id.
    pub id: String,
    /// Its limits.
    pub limits: TenantLimits,
    /// What it holds.
    pub usage: TenantUsage,
}

/// The limits and use of tenant `name` in the store under `data_dir`, after applying `update` when
/// given; `None` when there is no such tenant. A running server applies changed limits to the next
/// request.
pub async fn tenant_limits(
    data_dir: &Path,
    name: &str,
    update: Option<&LimitsUpdate>,
) -> Result<Option<TenantReport>, ServerError> {
    let store = open_store(data_dir).await?;
    let Some(tenant) = store.tenant_by_name(name).await? else { return Ok(None) };
    let limits = match update {
        Some(update) => store.set_tenant_limits(&tenant.id, update).await?,
        None => store.tenant_limits(&tenant.id).await?,
    };
    let usage = store.tenant_usage(&tenant.id, None).await?;
    Ok(Some(TenantReport { name: tenant.name, id: tenant.id, limits, usage }))
}

/// Makes sure the bootstrap key exists, or that some key exists (creating and printing one).
async fn ensure_keys(store: &Store, listen: SocketAddr) -> Result<(), ServerError> {
    let tenant = store.ensure_tenant(DEFAULT_TENANT).await?;
    if let Some(key) = std::env::var(BOOTSTRAP_KEY_ENV).ok().filter(|key| !key.is_empty()) {
        store.add_api_key(&tenant, &key).await?;
        return Ok(());
    }
    if store.count_api_keys().await? > 0 {
        return Ok(());
    }
    let key = crate::ids::api_key();
    store.add_api_key(&tenant, &key).await?;
    let base_url = format!(
        "http://{}",
        if listen.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), listen.port()) } else { listen }
    );
    eprintln!("created API key for tenant {DEFAULT_TENANT} (shown once): {key}");
    if let Some(config) = dirs::config_dir().map(|dir| dir.join("nullspace").join("config.json")) {
        if !config.exists() {
            let body = serde_json::json!({ "api_key": key, "base_url": base_url });
            let written = config
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&config, serde_json::to_vec_pretty(&body).unwrap_or_default()));
            match written {
                Ok(()) => eprintln!("wrote {} (read by the official client)", config.display()),
                Err(error) => eprintln!("could not write {}: {error}", config.display()),
            }
        }
    }
    Ok(())
}

fn guestd_path() -> PathBuf {
    if let Some(path) = std::env::var_os(GUESTD_ENV) {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("nullspace-guestd")))
        .unwrap_or_else(|| PathBuf::from("nullspace-guestd"))
}

/// Runs the server until SIGINT or SIGTERM. Sandboxes keep running across a restart.
pub async fn run(options: ServerOptions) -> Result<(), ServerError> {
    let store = open_store(&options.data_dir).await?;
    ensure_keys(&store, options.listen).await?;

    let node = Node::new(NodeConfig {
        registry: options.registry.clone(),
        sandbox_ca_bundle: options.sandbox_ca_bundle.clone(),
        allow_host_root: options.allow_host_root,
        data_dir: options.data_dir.clone(),
        guestd_path: guestd_path(),
        runtime: options.runtime.clone(),
        bridge: options.bridge.clone(),
        subnet: match &options.subnet {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| ServerError::Subnet { subnet: text.clone() })?),
        },
    })
    .await?
    .with_id_ranges(std::sync::Arc::new(store.clone()));
    let capacity = Capacity::detect(&options.capacity).map_err(|reason| ServerError::Setting { reason })?;
    tracing::info!(
        host_cpus = capacity.host_cpus,
        host_memory_mb = capacity.host_memory_mb,
        max_vcpus = capacity.max_vcpus,
        max_memory_mb = capacity.max_memory_mb,
        vcpu_budget = capacity.vcpu_budget(),
        memory_budget_mb = capacity.memory_budget_mb(),
        "sandbox resource limits"
    );
    let disk_limits = sandbox_disk_limits(&node, options.sandbox_disk)?;
    let preview_ports = PreviewPorts::new(options.listen.ip(), options.http.max_connections);
    let max_sandboxes = sandbox_limit(&node, &disk_limits, options.max_sandboxes);
    let control = Control::new(store, Arc::new(node), max_sandboxes, preview_ports)
        .with_default_volume_size(options.volume_size)
        .with_capacity(capacity)
        .with_disk_limits(disk_limits)
        .with_webhook_targets(options.webhook_targets.clone())
        .with_template_dir(options.data_dir.join("template-blobs"));
    if let Some(size) = options.volume_size {
        control
            .node()
            .volumes()
            .check_size(size)
            .map_err(|error| ServerError::VolumeSize { reason: error.to_string() })?;
    }
    control.reconcile().await?;
    spawn_reaper(control.clone());
    crate::control::volumes::spawn_volume_guest_reaper(control.clone());
    spawn_webhook_worker(control.clone());
    spawn_warm_pool_refiller(control.clone());

    let builder = control.clone();
    let bin_dir = guestd_path().parent().map(Path::to_path_buf).unwrap_or_default();
    let without_templates = options.without_templates.clone();
    let builtin_pools = options.builtin_pools.clone();
    tokio::spawn(async move {
        let progress = |line: &str| tracing::info!(target: "nullspace::template", "{line}");
        match builder.node().templates().ensure_base(&progress).await {
            Ok(layer) => {
                tracing::info!(template = %layer.name, "base template ready; the server accepts sandboxes");
                builder.ensure_builtin_templates(&bin_dir, &without_templates, &builtin_pools).await;
            }
            Err(error) => {
                tracing::error!(error = %crate::error_chain(&error), "building the base template failed")
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServerError::Listen { address: options.listen, source })?;
    eprintln!("nullspace server listening on http://{}", options.listen);
    let signer = Signer::load_or_create(&options.data_dir.join("signing.key"))?;
    let preview = PreviewGrants::new(
        control.clone(),
        PreviewConfig {
            domain: options.preview_domain.trim_matches('.').to_ascii_lowercase(),
            api_port: options.listen.port(),
        },
    );
    preview.spawn_usage_writer();
    let desktop = crate::api::DesktopViewer::new(
        crate::control::desktop_streams::DesktopStreams::new(control.clone(), signer.clone()),
        options.desktop_raw_vnc,
        crate::api::novnc_dir(),
    );
    let limits = Arc::new(crate::api::limits::RequestLimits::from(&options.requests));
    let app =
        router(AppState { control: control.clone(), signer, preview, upstreams: Arc::default(), desktop, limits });
    crate::serve::serve(listener, app, &options.http, shutdown_signal())
        .await
        .map_err(|source| ServerError::Listen { address: options.listen, source })?;
    control.node().volume_guests().stop_all().await;
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down; sandboxes keep running and are reconciled at the next start");
}
