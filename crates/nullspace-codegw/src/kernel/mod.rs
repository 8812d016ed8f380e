//! Jupyter kernels: kernelspec discovery ([`spec`]), the kernel process ([`process`]) and the client
//! connection to it ([`client`]), with the one error type of kernel handling.

pub mod client;
pub mod process;
pub mod spec;

pub use client::{Channels, Kernel};

/// Everything starting or talking to a kernel can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel did not come up.
    #[error("the kernel did not start: {message}")]
    Start {
        /// Why, with the kernel's last stderr lines when it wrote any.
        message: String,
    },
    /// A local operation around the kernel failed.
    #[error("cannot {what}")]
    Io {
        /// What the gateway was doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The messaging layer failed (socket closed, bad signature).
    #[error("the kernel connection failed")]
    Protocol(#[from] jupyter_zmq_client::RuntimeError),
}

impl KernelError {
    /// A start failure saying `message`.
    pub fn start(message: String) -> Self {
        Self::Start { message }
    }

    /// The full message: this error and its sources.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }
}
