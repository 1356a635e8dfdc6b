//! Health probe of the container images, which have neither a shell nor curl: `healthcheck
//! [ADDR] [PATH]` sends `GET PATH` (default `/healthz`) to ADDR (default `127.0.0.1:3000`) and
//! exits 0 when the answer is HTTP 200, 1 otherwise (no answer within 2 s included). The
//! Dockerfile builds it with plain `rustc` (standard library only).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let path = args.next().unwrap_or_else(|| "/healthz".to_owned());
    std::process::exit(if healthy(&addr, &path) { 0 } else { 1 });
}

fn healthy(addr: &str, path: &str) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("healthcheck: `{addr}` is not an address like 127.0.0.1:3000");
        return false;
    };
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    // "HTTP/1.1 200 ": the status code is bytes 9..12.
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
