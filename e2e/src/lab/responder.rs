//! The TCP responder on each node: answers every connection, to any local address, with the
//! node's name. Service IPs are local on every node (the kube-proxy stand-in), so a connection
//! to a Service IP tells which node the LAN delivered it to.

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;

use super::LabError;

/// Listens on `[::]:port` (IPv4 too, through mapped addresses) and writes `name` and a newline
/// to every connection; touches `ready_file` once listening. Runs until killed.
pub fn serve(name: &str, port: u16, ready_file: Option<&Path>) -> Result<(), LabError> {
    let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let listener =
        TcpListener::bind(addr).map_err(|e| LabError::io(format!("listen on {addr}"), e))?;
    if let Some(path) = ready_file {
        std::fs::write(path, b"")
            .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
    }
    let reply = format!("{name}\n");
    for stream in listener.incoming() {
        match stream {
            // A client that hangs up early is its own problem; keep serving the others.
            Ok(mut s) => {
                let _ = s.write_all(reply.as_bytes());
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
    Ok(())
}
