//! One host: template layers, an overlay rootfs per sandbox, the isolation runtime, and the link to each
//! sandbox's guest daemon. The control plane calls [`Node`]; nothing above it touches mounts, runtimes
//! or guest sockets directly.
#![warn(missing_docs)]

mod ca_bundle;
pub mod disk_clone;
mod error;
mod guest_binary;
mod guest_link;
mod guest_pool;
mod guest_socket;
mod host_files;
pub mod host_limits;
pub mod idmap;
mod layer_views;
mod layout;
mod liveness;
mod metrics;
pub mod network;
mod node;
mod overlay;
mod pinned_mounts;
pub mod sandbox_disk;
mod snapshot;
pub mod template;
mod tree_usage;
mod volume_guest;
pub mod volume_image;
mod volume_mounts;
pub mod volumes;

pub use error::NodeError;
pub use guest_link::GuestLink;
pub use guest_pool::GuestPool;
pub use guest_socket::{connect as connect_guest_socket, GuestPeer};
pub use layer_views::is_dir_in_view;
pub use layout::{private_dir, SandboxPaths};
pub use metrics::SandboxUsage;
pub use node::{LaunchSpec, Node, NodeConfig, ReconcileReport, RootImage};
pub use nullspace_runtime::BindMount;
pub use snapshot::layer_size;
pub use volume_guest::VolumeGuests;
pub use volumes::{VolumeError, VolumeMount, Volumes};

/// Container images as the control plane sees them: references, credentials, pulled images, layer ids
/// and the Dockerfile front end (`nullspace-image`, reached only through the node).
pub mod images {
    pub use nullspace_image::dockerfile;
    pub use nullspace_image::layers::{LayerId, LayerSource, LayerStore};
    pub use nullspace_image::registry::{
        pull, ImageConfig, ImageReference, PullEvent, PulledImage, RegistryAuth, RegistryConfig,
    };
    pub use nullspace_image::ImageError;
}

/// Result alias of this crate.
pub type NodeResult<T> = Result<T, NodeError>;
