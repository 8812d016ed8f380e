//! The sandbox's `/etc/resolv.conf` and `/etc/hosts`, written into a node-owned directory for the
//! node to bind-mount into the sandbox.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::error::NetworkError;

/// File name of the resolv.conf written into the files dir.
pub(crate) const RESOLV_CONF: &str = "resolv.conf";
/// File name of the hosts file written into the files dir.
pub(crate) const HOSTS: &str = "hosts";

pub(crate) fn resolv_conf(dns: &[Ipv4Addr]) -> String {
    let mut out = String::from("# written by nullspace\n");
    for server in dns {
        out.push_str(&format!("nameserver {server}\n"));
    }
    out.push_str("options edns0 timeout:2 attempts:2\n");
    out
}

pub(crate) fn hosts(hostname: &str, addr: Ipv4Addr) -> String {
    format!("# written by nullspace\n127.0.0.1\tlocalhost\n{addr}\t{hostname}\n")
}

fn write(path: PathBuf, content: &str) -> Result<PathBuf, NetworkError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).map_err(NetworkError::io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(NetworkError::io("renaming into", &path))?;
    Ok(path)
}

/// Writes both files into `dir` (created when missing); returns (resolv.conf, hosts).
pub(crate) fn write_all(
    dir: &Path,
    hostname: &str,
    addr: Ipv4Addr,
    dns: &[Ipv4Addr],
) -> Result<(PathBuf, PathBuf), NetworkError> {
    std::fs::create_dir_all(dir).map_err(NetworkError::io("creating", dir))?;
    let resolv = write(dir.join(RESOLV_CONF), &resolv_conf(dns))?;
    let hosts = write(dir.join(HOSTS), &hosts(hostname, addr))?;
    Ok((resolv, hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_resolvers_and_the_sandbox_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        let (resolv, hosts) = write_all(
            &dir,
            "sb-abc",
            Ipv4Addr::new(10, 213, 0, 2),
            &[Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)],
        )
        .unwrap();
        let resolv = std::fs::read_to_string(resolv).unwrap();
        assert!(resolv.contains("nameserver 9.9.9.9\nnameserver 1.1.1.1\n"), "{resolv}");
        let hosts = std::fs::read_to_string(hosts).unwrap();
        assert!(hosts.contains("127.0.0.1\tlocalhost\n") && hosts.contains("10.213.0.2\tsb-abc\n"), "{hosts}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "no temp files left");
    }
}
