//! The UDP sockets of single-hop BFD (RFC 5881): one control socket per
//! address family bound to port 3784, which receives every session's
//! packets with their TTL / hop limit, and one sending socket per session,
//! bound to its own source port from 49152..=65535, sending with TTL 255.
//!
//! Sockets are opened on the calling thread, so in the network namespace
//! of that thread (the lab runs speakers inside namespaces).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::bfd::{CONTROL_PORT, SINGLE_HOP_TTL, SOURCE_PORTS};

/// How many random source ports are tried before giving up.
const PORT_ATTEMPTS: usize = 64;

/// The largest datagram read: a control packet is 24 bytes, more with
/// authentication; anything longer is truncated and then refused by the codec.
const RECEIVE_BUFFER: usize = 128;

/// One received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The payload.
    pub payload: Vec<u8>,
    /// Who sent it.
    pub from: SocketAddr,
    /// Its TTL / hop limit, when the kernel reported it.
    pub ttl: Option<u8>,
}

fn udp(domain: Domain) -> io::Result<Socket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The control socket of one family: bound to the wildcard address on
/// port 3784, reporting the received TTL (IPv4) or hop limit (IPv6).
pub fn control_socket(v6: bool) -> io::Result<UdpSocket> {
    let (socket, addr) = if v6 {
        let s = udp(Domain::IPV6)?;
        // IPv4 goes to the IPv4 socket, not here as mapped addresses.
        s.set_only_v6(true)?;
        setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
        let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CONTROL_PORT, 0, 0));
        (s, addr)
    } else {
        let s = udp(Domain::IPV4)?;
        setsockopt(&s, sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CONTROL_PORT));
        (s, addr)
    };
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A sending socket for a session with `peer`: TTL / hop limit 255, bound
/// to `local` (or the wildcard) and a free random port of 49152..=65535.
pub fn session_socket(peer: IpAddr, local: Option<IpAddr>) -> io::Result<UdpSocket> {
    let v6 = peer.is_ipv6();
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free BFD source port");
    for _ in 0..PORT_ATTEMPTS {
        let port = fastrand::u16(SOURCE_PORTS);
        let socket = if v6 {
            let s = udp(Domain::IPV6)?;
            s.set_only_v6(true)?;
            s.set_unicast_hops_v6(u32::from(SINGLE_HOP_TTL))?;
            s.set_multicast_hops_v6(u32::from(SINGLE_HOP_TTL))?;
            s
        } else {
            let s = udp(Domain::IPV4)?;
            s.set_ttl_v4(u32::from(SINGLE_HOP_TTL))?;
            s
        };
        let ip = local.unwrap_or(if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Waits for the next datagram on a control socket.
pub async fn receive(socket: &UdpSocket) -> io::Result<Datagram> {
    socket
        .async_io(Interest::READABLE, || receive_now(socket))
        .await
}

/// One non-blocking recvmsg(2), reading the TTL / hop limit control message.
fn receive_now(socket: &UdpSocket) -> io::Result<Datagram> {
    let mut buf = [0u8; RECEIVE_BUFFER];
    let mut control = nix::cmsg_space!(libc::c_int);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut ttl = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ttl = u8::try_from(t).ok();
                }
                _ => {}
            }
        }
    }
    let len = msg.bytes;
    let from = msg.address.and_then(|a| socket_addr(&a));
    let Some(from) = from else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without a source address",
        ));
    };
    Ok(Datagram {
        payload: buf.get(..len).unwrap_or_default().to_vec(),
        from,
        ttl,
    })
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::new(v6.ip(), v6.port(), 0, v6.scope_id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback only, and not port 3784 (a test must not need it free).
    #[tokio::test]
    async fn session_sockets_use_a_source_port_of_rfc5881_and_ttl_255() {
        for peer in ["127.0.0.1", "::1"] {
            let peer: IpAddr = peer.parse().unwrap();
            let local = Some(peer);
            let s = session_socket(peer, local).unwrap();
            let port = s.local_addr().unwrap().port();
            assert!(SOURCE_PORTS.contains(&port), "{peer}: port {port}");
            let sock = socket2::SockRef::from(&s);
            let hops = if peer.is_ipv6() {
                sock.unicast_hops_v6().unwrap()
            } else {
                sock.ttl_v4().unwrap()
            };
            assert_eq!(hops, 255, "{peer}");
        }
    }

    /// The receive path reports the sender and the TTL the datagram came
    /// with; here a socket bound like a control socket on a free port.
    #[tokio::test]
    async fn received_datagrams_carry_their_ttl() {
        for (v6, ip) in [(false, "127.0.0.1"), (true, "::1")] {
            let ip: IpAddr = ip.parse().unwrap();
            let rx = {
                let s = udp(if v6 { Domain::IPV6 } else { Domain::IPV4 }).unwrap();
                if v6 {
                    setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).unwrap();
                } else {
                    setsockopt(&s, sockopt::Ipv4RecvTtl, &true).unwrap();
                }
                s.bind(&SocketAddr::new(ip, 0).into()).unwrap();
                UdpSocket::from_std(s.into()).unwrap()
            };
            let to = rx.local_addr().unwrap();
            for (ttl, want) in [(255u32, Some(255u8)), (64, Some(64))] {
                let tx = UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap();
                let sock = socket2::SockRef::from(&tx);
                if v6 {
                    sock.set_unicast_hops_v6(ttl).unwrap();
                } else {
                    sock.set_ttl_v4(ttl).unwrap();
                }
                tx.send_to(b"hello", to).await.unwrap();
                let got = receive(&rx).await.unwrap();
                assert_eq!(got.payload, b"hello");
                assert_eq!(got.from, tx.local_addr().unwrap());
                assert_eq!(got.ttl, want, "v6={v6} ttl={ttl}");
            }
        }
    }
}
