//! TCP MD5 signatures (RFC 2385) through the kernel's `TCP_MD5SIG` socket
//! option. Neither nix, rustix nor socket2 offers this option, so this
//! module makes the one `setsockopt` call itself.

#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

/// The longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `struct __kernel_sockaddr_storage`: 128 bytes, 8-aligned.
#[repr(C, align(8))]
struct SockaddrStorage([u8; 128]);

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: SockaddrStorage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MAX_KEY_LEN],
}

/// The `sockaddr_in` / `sockaddr_in6` bytes of `peer` (port 0).
fn sockaddr(peer: IpAddr) -> SockaddrStorage {
    let mut raw = [0u8; 128];
    match peer {
        IpAddr::V4(v4) => {
            raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            raw[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            raw[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            raw[8..24].copy_from_slice(&v6.octets());
        }
    }
    SockaddrStorage(raw)
}

/// Signs every segment of `socket` to and from `peer` with `key`. Must be
/// called before `connect`; the peer must use the same key.
pub fn set_key(socket: &impl AsFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key longer than {MAX_KEY_LEN} bytes"),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: sockaddr(peer),
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a live, fully initialised `struct tcp_md5sig` and the
    // length passed is its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_struct_matches_the_kernel_layout() {
        // 128 (address) + 1 + 1 + 2 + 4 + 80 (key).
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn keys_are_accepted_by_the_kernel_up_to_80_bytes() {
        let v4 = tokio::net::TcpSocket::new_v4().unwrap();
        set_key(&v4, "192.0.2.1".parse().unwrap(), b"secret").unwrap();
        let v6 = tokio::net::TcpSocket::new_v6().unwrap();
        set_key(&v6, "2001:db8::1".parse().unwrap(), &[b'k'; MAX_KEY_LEN]).unwrap();
        let err = set_key(&v4, "192.0.2.1".parse().unwrap(), &[b'k'; 81]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
