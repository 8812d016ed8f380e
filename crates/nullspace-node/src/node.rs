//! The node: launches sandboxes (overlay root + isolation runtime + guest), destroys them with one
//! idempotent teardown, and reconciles the host against the store's view at start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nullspace_runtime::{BindMount, IsolationRuntime, Limits, OciRuntime, SandboxSpec};
use nullspace_types::guest::{GuestConfig, GUEST_BINARY_PATH, GUEST_CONTROL_DIR};

use crate::layout::{is_sandbox_id, SandboxPaths};
use crate::metrics::{read_usage, SandboxUsage};
use crate::network::{Network, NetworkConfig, NetworkPolicy};
use crate::template::{TemplateLayer, TemplateStore};
use crate::{host_files, overlay, pinned_mounts};
use crate::{GuestLink, NodeError, NodeResult};

/// How long a new sandbox's guest gets to answer its first health check.
const GUEST_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Processes a sandbox may have at once (contains fork bombs).
const PIDS_LIMIT: u32 = 1024;

/// Static configuration of the node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory; the node owns `templates/`, `sandboxes/` and `runtime/` below it.
    pub data_dir: PathBuf,
    /// The guest daemon binary bind-mounted into every sandbox.
    pub guestd_path: PathBuf,
    /// Isolation runtime: `auto`, `runc`, `crun` or `runsc`.
    pub runtime: String,
    /// Host bridge of the sandboxes (`nsbr0` when `None`); one per server on a host.
    pub bridge: Option<String>,
    /// Sandbox subnet (`10.213.0.0/16` when `None`).
    pub subnet: Option<ipnet::Ipv4Net>,
    /// Registry mirrors and insecure registries image pulls go through.
    pub registry: nullspace_image::registry::RegistryConfig,
    /// A PEM bundle of the certificate authorities sandboxes trust (see `ca_bundle`); `None` leaves
    /// each sandbox with its image's own.
    pub sandbox_ca_bundle: Option<PathBuf>,
    /// Run runc/crun sandboxes' root as the host's root (no user namespace), as before user namespaces;
    /// only for hosts that cannot do them (`--allow-host-root`).
    pub allow_host_root: bool,
}

/// What a sandbox is launched with.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Sandbox id (`sb_…`).
    pub sandbox_id: String,
    /// The template's read-only layers and the defaults it gives the sandbox.
    pub root: RootImage,
    /// Create-time environment, layered over the template's.
    pub envs: BTreeMap<String, String>,
    /// Default working directory; the template's when `None`.
    pub cwd: Option<String>,
    /// Snapshot layers stacked between the template and the sandbox's own upper dir, top first.
    pub layers: Vec<PathBuf>,
    /// Egress policy (internet access, allow and deny lists).
    pub network: NetworkPolicy,
    /// CPU quota in cores.
    pub vcpus: u32,
    /// Memory limit in MiB.
    pub memory_mb: u32,
    /// Size of the filesystem holding the sandbox's writes, MiB (`None`: a plain host directory).
    pub disk_mb: Option<u32>,
    /// A memory image (`<data>/snapshots/<snap>.mem`) to restore instead of booting, on runtimes whose
    /// `checkpoints_memory()` is true: processes and memory continue where the checkpoint left them.
    pub restore_from: Option<PathBuf>,
    /// Volumes bind-mounted into the sandbox.
    pub volumes: Vec<crate::VolumeMount>,
    /// A template build's sandbox: its guest writes nothing into the root filesystem at boot (no login
    /// profile, no SSH host keys), since everything the sandbox writes becomes a template layer.
    pub build: bool,
    /// Host directories bind-mounted read-only (a build's context and the stages it copies from).
    pub inputs: Vec<BindMount>,
}

/// The root filesystem a template gives its sandboxes: read-only layers and process defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootImage {
    /// Read-only layers, top first (overlay lowerdirs).
    pub layers: Vec<PathBuf>,
    /// Environment every process starts with (create envs are layered over it).
    pub envs: BTreeMap<String, String>,
    /// User processes run as unless the request says otherwise.
    pub default_user: String,
    /// Working directory unless the request says otherwise.
    pub default_cwd: String,
}

impl RootImage {
    /// The root of built-in template layer `layer`.
    pub fn of_builtin(layer: &TemplateLayer) -> Self {
        Self {
            layers: vec![layer.rootfs.clone()],
            envs: layer.envs.clone(),
            default_user: layer.default_user.clone(),
            default_cwd: layer.default_cwd.clone(),
        }
    }
}

/// Outcome of [`Node::reconcile`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Sandboxes the store expected that are alive and answering.
    pub alive: BTreeSet<String>,
    /// Sandboxes the store expected that are gone (now fully cleaned up).
    pub gone: BTreeSet<String>,
    /// Sandboxes found on the host that the store did not know (destroyed).
    pub orphans_destroyed: BTreeSet<String>,
    /// Alive sandboxes whose network is no longer whole (see [`Network::lost`]); still running.
    pub network_lost: BTreeSet<String>,
}

/// One host running sandboxes.
pub struct Node {
    config: NodeConfig,
    templates: TemplateStore,
    runtime: OciRuntime,
    sandboxes_dir: PathBuf,
    /// Per-sandbox networking; `None` under runsc, whose sandboxes keep gVisor's own loopback-only stack.
    network: Option<Network>,
    volumes: crate::Volumes,
    volume_guests: crate::VolumeGuests,
    /// Content-addressed read-only layers of built templates (`<data>/layers`).
    layers: nullspace_image::layers::LayerStore,
    /// Whether sandboxes get their own user namespace (runc/crun unless `allow_host_root`).
    userns: bool,
    /// Which id ranges sandboxes may get, and the store's record of who holds which.
    range_policy: crate::idmap::RangePolicy,
    id_ranges: Option<std::sync::Arc<dyn crate::idmap::IdRangeBook>>,
    /// Idle connections to the sandboxes' guests.
    guest_pool: std::sync::Arc<crate::GuestPool>,
    /// Whether the data dir's filesystem reflinks (forks copy sandbox disks in O(1)).
    disk_reflink: bool,
}

impl Node {
    /// A node over `config.data_dir`, with the runtime `config.runtime` selects on this host.
    pub async fn new(config: NodeConfig) -> NodeResult<Self> {
        if !config.guestd_path.is_file() {
            return Err(NodeError::GuestBinaryMissing { path: config.guestd_path.clone() });
        }
        if crate::guest_binary::has_interpreter(&config.guestd_path) == Some(true) {
            return Err(NodeError::GuestBinaryDynamic { path: config.guestd_path.clone() });
        }
        let choice = nullspace_runtime::select(&config.runtime).await.map_err(NodeError::SelectRuntime)?;
        tracing::info!(runtime = choice.kind.as_str(), why = %choice.explanation, "selected isolation runtime");
        let runtime = OciRuntime::new(choice.kind, config.data_dir.join("runtime").join(choice.kind.as_str()));
        let sandboxes_dir = config.data_dir.join("sandboxes");
        let private = ["snapshots", "volumes", "templates", "layers"].map(|name| config.data_dir.join(name));
        for dir in [config.data_dir.clone(), sandboxes_dir.clone()].into_iter().chain(private) {
            crate::layout::private_dir(&dir).map_err(|source| NodeError::Filesystem {
                sandbox_id: String::new(),
                path: dir.clone(),
                source,
            })?;
        }
        let templates = TemplateStore::new(config.data_dir.join("templates"));
        let network = if choice.kind == nullspace_runtime::RuntimeKind::Runsc {
            tracing::warn!("sandboxes under runsc get loopback-only networking (no veth, no internet access)");
            None
        } else {
            let mut network = NetworkConfig::new(&config.data_dir);
            network.bridge = config.bridge.clone().unwrap_or(network.bridge);
            network.subnet = config.subnet.unwrap_or(network.subnet);
            Some(Network::new(network).map_err(NodeError::Network)?)
        };
        let volumes = crate::Volumes::new(&config.data_dir);
        let volume_guests = crate::VolumeGuests::new(volumes.clone(), config.guestd_path.clone());
        let layers =
            nullspace_image::layers::LayerStore::new(config.data_dir.join("layers")).map_err(NodeError::Layers)?;
        let leftovers = layers.remove_leftovers();
        if leftovers > 0 {
            tracing::info!(leftovers, "removed the staging dirs of interrupted layer writes");
        }
        let userns = choice.kind != nullspace_runtime::RuntimeKind::Runsc && !config.allow_host_root;
        if userns {
            let data_dir = config.data_dir.clone();
            tokio::task::spawn_blocking(move || crate::idmap::probe(&data_dir))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
                .map_err(|reason| NodeError::UsernsUnavailable { reason })?;
        } else if choice.kind != nullspace_runtime::RuntimeKind::Runsc {
            tracing::warn!("--allow-host-root: every sandbox's root is the host's root (no user namespace)");
        }
        let range_policy = crate::idmap::RangePolicy::host();
        let disk_reflink = crate::disk_clone::reflink_works(&sandboxes_dir);
        if disk_reflink {
            tracing::info!("the data dir's filesystem reflinks: a fork copies its parent's disk in O(1)");
        } else {
            tracing::info!(
                "the data dir's filesystem cannot reflink (ext4?): a fork copies its parent's change set; \
                 put the data dir on XFS (mkfs.xfs -m reflink=1) or btrfs for O(1) forks"
            );
        }
        Ok(Self {
            config,
            templates,
            runtime,
            sandboxes_dir,
            network,
            volumes,
            volume_guests,
            layers,
            userns,
            range_policy,
            id_ranges: None,
            guest_pool: std::sync::Arc::default(),
            disk_reflink,
        })
    }

    /// The record of id ranges (the server's store); required when sandboxes get user namespaces.
    pub fn with_id_ranges(mut self, book: std::sync::Arc<dyn crate::idmap::IdRangeBook>) -> Self {
        self.id_ranges = Some(book);
        self
    }

    /// How many sandboxes this host can hold ([`crate::host_limits`]), with sandbox disks (`disks`) or
    /// without.
    pub fn sandbox_limit(&self, disks: bool) -> crate::host_limits::SandboxLimit {
        let addresses = self.network.as_ref().map(|n| n.config().sandbox_capacity());
        let id_ranges = self.userns.then(|| self.range_policy.slots());
        crate::host_limits::SandboxLimit::derive(&crate::host_limits::HostFacts::read(addresses, id_ranges, disks))
    }

    /// Whether sandboxes run in user namespaces of their own.
    pub fn uses_userns(&self) -> bool {
        self.userns
    }

    /// Makes the user namespace of a launch: its range from the store, its namespaces and gate.
    async fn userns_launch(&self, id: &str, paths: &SandboxPaths) -> NodeResult<Option<crate::idmap::UsernsLaunch>> {
        if !self.userns {
            return Ok(None);
        }
        let range_error = |message: String| NodeError::IdRange { sandbox_id: id.to_owned(), message };
        let book = self.id_ranges.as_ref().ok_or_else(|| range_error("no record of id ranges".into()))?;
        let base = book
            .allocate(id, &self.range_policy)
            .await
            .map_err(|e| range_error(format!("cannot allocate a host id range: {e}")))?;
        let (data_dir, root, owned) = (self.config.data_dir.clone(), paths.root.clone(), id.to_owned());
        let launch =
            tokio::task::spawn_blocking(move || crate::idmap::UsernsLaunch::new(base, &data_dir, &root, &owned))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        launch.map(Some).map_err(|source| NodeError::Userns {
            sandbox_id: id.to_owned(),
            operation: "namespaces",
            source,
        })
    }

    /// The node's static configuration.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The environment of a sandbox's processes: its template's, the node's own additions (the CA
    /// bundle's variables) where the template sets none, then the request's over both.
    pub fn sandbox_envs(
        &self,
        template: &BTreeMap<String, String>,
        request: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut envs = template.clone();
        crate::ca_bundle::add_envs(self.config.sandbox_ca_bundle.as_ref(), &mut envs);
        envs.extend(request.iter().map(|(key, value)| (key.clone(), value.clone())));
        envs
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Whether this host can limit sandbox disks; the error says what is missing.
    pub fn probe_sandbox_disks(&self) -> Result<(), crate::volume_image::ImageError> {
        crate::sandbox_disk::probe(&self.sandboxes_dir)
    }

    /// The template store.
    pub fn templates(&self) -> &TemplateStore {
        &self.templates
    }

    /// The layers of built templates on this node.
    pub fn layers(&self) -> &nullspace_image::layers::LayerStore {
        &self.layers
    }

    /// The persistent volumes of this node.
    pub fn volumes(&self) -> &crate::Volumes {
        &self.volumes
    }

    /// The guests serving volumes' files without a sandbox.
    pub fn volume_guests(&self) -> &crate::VolumeGuests {
        &self.volume_guests
    }

    /// Whether the data dir's filesystem reflinks (see `disk_clone`).
    pub(crate) fn disk_reflink(&self) -> bool {
        self.disk_reflink
    }

    /// Where sandboxes' directories live.
    pub(crate) fn sandboxes_dir(&self) -> &Path {
        &self.sandboxes_dir
    }

    /// Where snapshot layers live.
    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.config.data_dir.join("snapshots")
    }

    /// The runtime (for the snapshot and volume-mount modules).
    pub(crate) fn runtime(&self) -> &OciRuntime {
        &self.runtime
    }

    /// The isolation runtime in use.
    pub fn runtime_kind(&self) -> nullspace_runtime::RuntimeKind {
        self.runtime.kind()
    }

    /// Paths of sandbox `sandbox_id`.
    pub fn paths(&self, sandbox_id: &str) -> SandboxPaths {
        let paths = SandboxPaths::new(&self.sandboxes_dir, sandbox_id);
        // A sandbox an older server launched keeps its layout until it is destroyed.
        if !paths.disk.exists() && paths.root.join("upper").is_dir() {
            return paths.before_disks();
        }
        paths
    }

    /// The link to the guest of `sandbox_id`.
    pub fn guest(&self, sandbox_id: &str) -> GuestLink {
        GuestLink::new(
            sandbox_id,
            self.paths(sandbox_id).guest_socket(),
            crate::GuestPeer::Sandbox(sandbox_id.to_owned()),
        )
        .pooled(self.guest_pool.clone())
    }

    /// Launches a sandbox and returns once its guest answers. On failure everything acquired is released.
    #[tracing::instrument(skip_all, fields(sandbox = %spec.sandbox_id))]
    pub async fn launch(&self, spec: &LaunchSpec) -> NodeResult<()> {
        let result = self.launch_steps(spec).await;
        if result.is_err() {
            if let Err(error) = self.destroy(&spec.sandbox_id).await {
                tracing::warn!(error = %error, "cleanup after a failed launch failed");
            }
        }
        result
    }

    async fn launch_steps(&self, spec: &LaunchSpec) -> NodeResult<()> {
        let template = &spec.root;
        let id = spec.sandbox_id.as_str();
        let paths = self.paths(id);
        let started = std::time::Instant::now();
        let fs_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NodeError::Filesystem { sandbox_id: id.to_owned(), path, source }
        };
        // Everything the sandbox writes goes on its disk, limited by the kernel when it has a size.
        crate::sandbox_disk::prepare_off_thread(&paths, spec.disk_mb)
            .await
            .map_err(|source| NodeError::Disk { sandbox_id: id.to_owned(), source })?;
        for dir in [&paths.upper, &paths.work, &paths.rootfs, &paths.bundle] {
            std::fs::create_dir_all(dir).map_err(fs_error(dir))?;
        }
        // The control dir is the sandbox's to write (`/run/nullspace`): a relaunch under the same id (a
        // fork with memory restores its parent) starts from an empty one, never from what it left there.
        host_files::fresh_dir(&paths.control).map_err(fs_error(&paths.control))?;
        // Pins of a previous launch under this id (the same relaunch) go before new ones are made.
        pinned_mounts::unpin_all(&paths.pins).map_err(fs_error(&paths.pins))?;
        let envs = self.sandbox_envs(&template.envs, &spec.envs);
        let guest_config = GuestConfig {
            sandbox_id: id.to_owned(),
            envs,
            cwd: spec.cwd.clone().unwrap_or_else(|| template.default_cwd.clone()),
            default_user: template.default_user.clone(),
        };
        let config_json = serde_json::to_vec(&guest_config).unwrap_or_default();
        host_files::replace_file(&paths.guest_config(), &config_json).map_err(fs_error(&paths.guest_config()))?;

        let lower: Vec<&Path> = spec.layers.iter().chain(&template.layers).map(PathBuf::as_path).collect();
        if let Some(missing) = lower.iter().find(|layer| !layer.is_dir()) {
            return Err(NodeError::LayerMissing { sandbox_id: id.to_owned(), layer: missing.to_path_buf() });
        }
        let mut userns = self.userns_launch(id, &paths).await?;
        let userns_error = |operation| move |source| NodeError::Userns { sandbox_id: id.to_owned(), operation, source };
        let rootfs = match userns.as_mut() {
            Some(userns) => userns
                .mount_root(&lower, &paths.upper, &paths.work, &paths.rootfs)
                .map_err(userns_error("idmapped overlay root"))?,
            None => {
                overlay::mount_overlay(&lower, &paths.upper, &paths.work, &paths.rootfs)
                    .map_err(|source| NodeError::Overlay { operation: "mount", sandbox_id: id.to_owned(), source })?;
                paths.rootfs.clone()
            }
        };

        let overlay_done = started.elapsed();
        let hostname = id.replace('_', "-");
        let mut mounts = vec![
            BindMount { source: paths.control.clone(), destination: GUEST_CONTROL_DIR.to_owned(), read_only: false },
            BindMount {
                source: self.config.guestd_path.clone(),
                destination: GUEST_BINARY_PATH.to_owned(),
                read_only: true,
            },
        ];
        mounts.extend(self.config.sandbox_ca_bundle.as_deref().map(crate::ca_bundle::mount));
        let mut prepared = None;
        if let Some(network) = &self.network {
            // Under a user namespace the network namespace is the one it owns (sysfs needs that).
            let netns = userns.as_ref().map(|u| u.netns()).transpose().map_err(userns_error("network namespace"))?;
            let net = network
                .prepare_in(id, &hostname, &spec.network, &paths.net, netns)
                .await
                .map_err(NodeError::Network)?;
            mounts.push(BindMount {
                source: net.network.resolv_conf.clone(),
                destination: "/etc/resolv.conf".into(),
                read_only: false,
            });
            mounts.push(BindMount {
                source: net.network.hosts.clone(),
                destination: "/etc/hosts".into(),
                read_only: false,
            });
            prepared = Some(net);
        }
        let network_done = started.elapsed();
        mounts.extend(spec.inputs.iter().map(|input| BindMount { read_only: true, ..input.clone() }));
        // Volumes last, so that they are mounted over anything above. Subpaths resolve without following
        // symlinks (a sandbox can plant them in a volume), and the runtime mounts the directory that was
        // opened, pinned at a host-only path, not a path it would resolve again.
        for (index, volume) in spec.volumes.iter().enumerate() {
            let opened = self
                .volumes
                .open_mount_source(&volume.volume_id, volume.subpath.as_deref())
                .map_err(|source| NodeError::Volume { sandbox_id: id.to_owned(), source })?;
            let source =
                pinned_mounts::pin(&paths.pins, index, &opened, volume.read_only).map_err(fs_error(&paths.pins))?;
            mounts.push(BindMount { source, destination: volume.mount_path.clone(), read_only: volume.read_only });
        }
        if let Some(userns) = userns.as_mut() {
            // The guest binary and the CA bundle are host files every user may read; everything else
            // (control dir, network files, build inputs, volume pins) is seen through an idmapped clone.
            let (guestd, ca) = (&self.config.guestd_path, self.config.sandbox_ca_bundle.as_deref());
            let plain = |m: &BindMount| m.read_only && (&m.source == guestd || Some(m.source.as_path()) == ca);
            userns.map_mounts(&mut mounts, plain).map_err(userns_error("idmapped bind mounts"))?;
        }
        let runtime_spec = SandboxSpec {
            id: id.to_owned(),
            bundle_dir: paths.bundle.clone(),
            rootfs,
            hostname,
            args: if spec.build {
                vec![GUEST_BINARY_PATH.to_owned(), "--no-write-profile".to_owned()]
            } else {
                vec![GUEST_BINARY_PATH.to_owned()]
            },
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()],
            mounts,
            limits: Limits { vcpus: spec.vcpus, memory_mb: spec.memory_mb, pids: PIDS_LIMIT },
            no_new_privileges: true,
            netns: prepared.as_ref().map(|net| net.network.netns_path.clone()),
            userns: userns.as_ref().map(|u| u.runtime_userns()),
        };
        // The runtime starts inside the prepared namespace while the network is wired: nothing of the
        // sandbox runs before the guest answers, and the guest is ready only once both are done. A
        // failure of either leaves the rest to `launch`'s cleanup.
        let start = async {
            match &spec.restore_from {
                None => self
                    .runtime
                    .start(&runtime_spec)
                    .await
                    .map_err(|source| NodeError::Runtime { sandbox_id: id.to_owned(), source }),
                Some(image) => self.restore_memory(&runtime_spec, image).await,
            }
        };
        let connect = async {
            match (&self.network, &prepared) {
                (Some(network), Some(net)) => network.connect(net).await.map_err(NodeError::Network),
                _ => Ok(()),
            }
        };
        let (started_runtime, connected) = tokio::join!(start, connect);
        started_runtime?;
        connected?;
        if let Some(userns) = userns {
            // The container holds its own mounts and namespaces now.
            userns.finish().map_err(userns_error("detaching the idmapped attach points"))?;
        }
        let runtime_done = started.elapsed();
        self.guest(id).wait_ready(GUEST_READY_TIMEOUT, paths.init_log()).await?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            overlay_ms = ms(overlay_done),
            network_prepare_ms = ms(network_done - overlay_done),
            runtime_and_network_ms = ms(runtime_done - network_done),
            guest_ms = ms(started.elapsed() - runtime_done),
            "sandbox launched"
        );
        Ok(())
    }

    /// Releases everything sandbox `sandbox_id` owns: processes, container state, cgroup, overlay mount and
    /// directories. Idempotent: succeeds for a sandbox that is partly or entirely gone.
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox_id))]
    pub async fn destroy(&self, sandbox_id: &str) -> NodeResult<()> {
        self.guest_pool.forget(sandbox_id);
        let paths = self.paths(sandbox_id);
        self.runtime
            .destroy(sandbox_id)
            .await
            .map_err(|source| NodeError::Runtime { sandbox_id: sandbox_id.to_owned(), source })?;
        if let Some(network) = &self.network {
            network.teardown(sandbox_id).await.map_err(NodeError::Network)?;
        }
        self.unmount_root(sandbox_id)?;
        let fs_error = |path: &Path, source| NodeError::Filesystem {
            sandbox_id: sandbox_id.to_owned(),
            path: path.to_path_buf(),
            source,
        };
        pinned_mounts::unpin_all(&paths.pins).map_err(|source| fs_error(&paths.pins, source))?;
        // The idmapped clones first: one of them is a clone of the sandbox's disk mount.
        crate::idmap::release(&self.config.data_dir, &paths.root, sandbox_id).map_err(|source| NodeError::Userns {
            sandbox_id: sandbox_id.to_owned(),
            operation: "releasing the idmapped mounts",
            source,
        })?;
        crate::sandbox_disk::release_off_thread(&paths)
            .await
            .map_err(|source| NodeError::Disk { sandbox_id: sandbox_id.to_owned(), source })?;
        // Never delete into a mount (a volume, the rootfs) that is somehow still there.
        if let Some(mounted) = pinned_mounts::mounted_below(&paths.root).map_err(|e| fs_error(&paths.root, e))? {
            let still = std::io::Error::other(format!("{} is still mounted", mounted.display()));
            return Err(fs_error(&paths.root, still));
        }
        match std::fs::remove_dir_all(&paths.root) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NodeError::Filesystem { sandbox_id: sandbox_id.to_owned(), path: paths.root, source })
            }
        }
        // Last: the range is free only once nothing of the sandbox is left.
        if let Some(book) = &self.id_ranges {
            book.release(sandbox_id).await.map_err(|e| NodeError::IdRange {
                sandbox_id: sandbox_id.to_owned(),
                message: format!("cannot release its host id range: {e}"),
            })?;
        }
        Ok(())
    }

    /// Unmounts sandbox `sandbox_id`'s root: the runtime's view of it below the gate (under a user
    /// namespace), then the overlay. Succeeds when nothing is mounted.
    pub(crate) fn unmount_root(&self, sandbox_id: &str) -> NodeResult<()> {
        let paths = self.paths(sandbox_id);
        crate::idmap::unmount_gate(&self.config.data_dir, sandbox_id).map_err(|source| NodeError::Userns {
            sandbox_id: sandbox_id.to_owned(),
            operation: "unmounting the runtime's root",
            source,
        })?;
        overlay::unmount(&paths.rootfs).map_err(|source| NodeError::Overlay {
            operation: "unmount",
            sandbox_id: sandbox_id.to_owned(),
            source,
        })
    }

    /// Usage of a running sandbox, from its cgroup and upper dir (the total is its disk's size: the
    /// limit, or the data dir's filesystem); the walk of the upper dir runs on a blocking thread.
    pub async fn usage(&self, sandbox_id: &str, memory_mb: u32) -> SandboxUsage {
        let paths = self.paths(sandbox_id);
        let disk = if paths.disk.is_dir() { paths.disk } else { self.config.data_dir.clone() };
        let (upper, data_dir) = (paths.upper, disk);
        let cgroup = format!("nullspace/{sandbox_id}");
        let limit = u64::from(memory_mb) << 20;
        tokio::task::spawn_blocking(move || read_usage(&cgroup, &upper, &data_dir, limit))
            .await
            .unwrap_or(SandboxUsage { mem_total_bytes: limit.max(1), ..SandboxUsage::default() })
    }

    /// Brings the host in line with `expected` (the sandboxes the store believes are running): every
    /// sandbox found on the host but not expected is destroyed, and every expected one that does not
    /// answer is destroyed and reported gone.
    pub async fn reconcile(&self, expected: &BTreeSet<String>) -> NodeResult<ReconcileReport> {
        let mut found = BTreeSet::new();
        if let Ok(entries) = std::fs::read_dir(&self.sandboxes_dir) {
            found.extend(
                entries.flatten().filter_map(|entry| entry.file_name().into_string().ok()).filter(|n| is_sandbox_id(n)),
            );
        }
        match self.runtime.list().await {
            Ok(ids) => found.extend(ids.into_iter().filter(|id| is_sandbox_id(id))),
            Err(error) => {
                tracing::warn!(%error, "listing runtime containers failed; reconciling directories only")
            }
        }
        found.extend(crate::idmap::gated_ids(&self.config.data_dir).into_iter().filter(|id| is_sandbox_id(id)));
        let mut report = ReconcileReport::default();
        // A server that died while a fork copied a disk left that disk frozen: thaw it before anything
        // looks at the sandbox (a frozen filesystem holds every write of its processes).
        for id in &found {
            let disk = self.paths(id).disk;
            if crate::volume_image::is_mount_point(&disk).unwrap_or(false) {
                if let Err(error) = crate::disk_clone::thaw(&disk) {
                    tracing::warn!(sandbox = %id, %error, "cannot thaw a sandbox disk");
                }
            }
        }
        for id in &found {
            if !expected.contains(id) {
                self.destroy(id).await?;
                report.orphans_destroyed.insert(id.clone());
            }
        }
        if let Some(network) = &self.network {
            // Networks of sandboxes that are not expected go now; those of dead expected ones go with
            // their destroy below.
            let removed = network.reconcile(expected).await.map_err(NodeError::Network)?;
            report.orphans_destroyed.extend(removed);
        }
        for id in expected {
            let alive = found.contains(id)
                && tokio::time::timeout(Duration::from_secs(2), self.guest(id).health()).await.is_ok_and(|r| r.is_ok());
            if alive {
                report.alive.insert(id.clone());
            } else {
                self.destroy(id).await?;
                report.gone.insert(id.clone());
            }
        }
        if let Some(network) = &self.network {
            report.network_lost = network.lost(&report.alive).await.map_err(NodeError::Network)?;
        }
        let released = crate::sandbox_disk::release_stale_loops(&self.sandboxes_dir, &report.alive);
        if !released.is_empty() {
            tracing::info!(devices = ?released, "detached the loop devices of sandbox disks left by a crash");
        }
        // Ranges of sandboxes that are gone (a crash between a destroy and its release) are free again.
        if let Some(book) = &self.id_ranges {
            book.retain(&report.alive).await.map_err(|e| NodeError::IdRange {
                sandbox_id: String::new(),
                message: format!("cannot release the id ranges of gone sandboxes: {e}"),
            })?;
        }
        Ok(report)
    }
}
