//! Interface configuration in the calling thread's network namespace without spawning `ip`: link up, an
//! IPv4 address with its prefix, a default route, and reading a link's MAC, through the kernel's socket
//! ioctls (`SIOCSIFFLAGS`, `SIOCSIFADDR`, `SIOCSIFNETMASK`, `SIOCADDRT`, `SIOCGIFHWADDR`). Used on a thread that joined a
//! sandbox's namespace (see `namespace::run_in`) and for the host end of a veth.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::error::NetworkError;

/// `struct rtentry` of `<linux/route.h>` (the kernel ABI of `SIOCADDRT`).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

/// A control socket of the calling thread's network namespace.
pub(crate) struct Iface {
    socket: OwnedFd,
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(addr).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it as sockaddr_in by family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn netmask(prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0))
}

impl Iface {
    /// A socket in the calling thread's current network namespace.
    pub(crate) fn open() -> Result<Self, NetworkError> {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Self::error("opening a control socket", "", std::io::Error::last_os_error()));
        }
        // SAFETY: socket returned a new descriptor that nothing else owns.
        Ok(Self { socket: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn error(operation: &'static str, device: &str, source: std::io::Error) -> NetworkError {
        NetworkError::Interface { operation, device: device.to_owned(), source }
    }

    fn request(device: &str) -> Result<libc::ifreq, NetworkError> {
        let name = CString::new(device)
            .ok()
            .filter(|n| n.as_bytes().len() < libc::IFNAMSIZ)
            .ok_or_else(|| Self::error("naming", device, std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: an all-zero ifreq is valid (empty name, zero union).
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, byte) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
            *slot = *byte as libc::c_char;
        }
        Ok(request)
    }

    fn ioctl<T>(
        &self,
        operation: &'static str,
        device: &str,
        code: libc::c_ulong,
        arg: &mut T,
    ) -> Result<(), NetworkError> {
        // SAFETY: `arg` is the structure `code` expects (ifreq or rtentry), valid for the call.
        if unsafe { libc::ioctl(self.socket.as_raw_fd(), code as _, arg as *mut T) } < 0 {
            return Err(Self::error(operation, device, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Sets `device` up.
    pub(crate) fn set_up(&self, device: &str) -> Result<(), NetworkError> {
        let mut request = Self::request(device)?;
        self.ioctl("reading the flags of", device, libc::SIOCGIFFLAGS, &mut request)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        self.ioctl("setting up", device, libc::SIOCSIFFLAGS, &mut request)
    }

    /// Gives `device` the address `addr/prefix_len` (the kernel adds the prefix route once it is up).
    pub(crate) fn set_ipv4(&self, device: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<(), NetworkError> {
        let mut request = Self::request(device)?;
        request.ifr_ifru.ifru_addr = sockaddr_in(addr);
        self.ioctl("setting the address of", device, libc::SIOCSIFADDR, &mut request)?;
        let mut request = Self::request(device)?;
        request.ifr_ifru.ifru_netmask = sockaddr_in(netmask(prefix_len));
        self.ioctl("setting the netmask of", device, libc::SIOCSIFNETMASK, &mut request)
    }

    /// The hardware (Ethernet) address of `device`.
    pub(crate) fn hw_addr(&self, device: &str) -> Result<[u8; 6], NetworkError> {
        let mut request = Self::request(device)?;
        self.ioctl("reading the hardware address of", device, libc::SIOCGIFHWADDR, &mut request)?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
        let data = unsafe { request.ifr_ifru.ifru_hwaddr.sa_data };
        let mut mac = [0u8; 6];
        for (byte, raw) in mac.iter_mut().zip(data) {
            *byte = raw as u8;
        }
        Ok(mac)
    }

    /// Adds the default route via `gateway` on `device` (which must be up, with the gateway in its prefix).
    pub(crate) fn add_default_route(&self, device: &str, gateway: Ipv4Addr) -> Result<(), NetworkError> {
        let name = CString::new(device)
            .map_err(|_| Self::error("naming", device, std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        let mut route = RtEntry {
            rt_pad1: 0,
            rt_dst: sockaddr_in(Ipv4Addr::UNSPECIFIED),
            rt_gateway: sockaddr_in(gateway),
            rt_genmask: sockaddr_in(Ipv4Addr::UNSPECIFIED),
            rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: std::ptr::null_mut(),
            rt_metric: 0,
            // The kernel only reads the device name.
            rt_dev: name.as_ptr().cast_mut(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        self.ioctl("adding the default route on", device, libc::SIOCADDRT, &mut route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_from_prefix_lengths() {
        assert_eq!(netmask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn interface_names_must_fit() {
        assert!(Iface::request("eth0").is_ok());
        assert!(Iface::request("a-name-longer-than-ifnamsiz").is_err());
        assert!(Iface::request("nul\0").is_err());
    }
}
