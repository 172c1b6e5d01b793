//! A small TCP benchmark for published ports (bench/ports.sh), std only, built static so the
//! same binary is the container image's only file and the client on the host.
//!
//!   netperf serve PORT             echo or sink server on 0.0.0.0:PORT (a thread per connection)
//!   netperf connect ADDR:PORT N    N times: connect, 1-byte request, 1-byte answer, close
//!   netperf rr ADDR:PORT N         one connection, N 1-byte round trips
//!   netperf stream ADDR:PORT SECS  one connection, 128 KiB writes for SECS seconds
//!
//! Clients print one line of `key=value` pairs (latencies in µs, throughput in Gbit/s).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn serve(port: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(format!("0.0.0.0:{port}"))?;
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let mut mode = [0u8; 1];
            if s.read_exact(&mut mode).is_err() {
                return;
            }
            let mut buf = vec![0u8; 256 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                total += n as u64;
                if mode[0] == b'e' && s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            if mode[0] == b's' {
                let _ = s.write_all(&total.to_be_bytes());
            }
        });
    }
    Ok(())
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |p: f64| us(v[((v.len() - 1) as f64 * p).round() as usize]);
    let mean = v.iter().map(|d| us(*d)).sum::<f64>() / v.len() as f64;
    format!(
        "n={} p50_us={:.1} p90_us={:.1} p99_us={:.1} mean_us={:.1}",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        mean
    )
}

fn round_trip(s: &mut TcpStream) -> std::io::Result<()> {
    s.write_all(b"x")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)
}

fn main() -> std::io::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().unwrap_or_default();
    let count = |i: usize| arg(i).parse::<usize>().unwrap_or(1000).max(1);
    match arg(1).as_str() {
        "serve" => serve(&arg(2)),
        "connect" => {
            let mut v = Vec::with_capacity(count(3));
            for _ in 0..count(3) {
                let t = Instant::now();
                let mut s = TcpStream::connect(arg(2))?;
                s.set_nodelay(true)?;
                s.write_all(b"e")?;
                round_trip(&mut s)?;
                v.push(t.elapsed());
            }
            println!("{}", percentiles(v));
            Ok(())
        }
        "rr" => {
            let mut s = TcpStream::connect(arg(2))?;
            s.set_nodelay(true)?;
            s.write_all(b"e")?;
            round_trip(&mut s)?;
            let mut v = Vec::with_capacity(count(3));
            for _ in 0..count(3) {
                let t = Instant::now();
                round_trip(&mut s)?;
                v.push(t.elapsed());
            }
            println!("{}", percentiles(v));
            Ok(())
        }
        "stream" => {
            let secs = arg(3).parse::<f64>().unwrap_or(5.0);
            let mut s = TcpStream::connect(arg(2))?;
            s.write_all(b"s")?;
            let buf = vec![0x5au8; 128 * 1024];
            let t = Instant::now();
            while t.elapsed().as_secs_f64() < secs {
                s.write_all(&buf)?;
            }
            s.shutdown(Shutdown::Write)?;
            let mut n = [0u8; 8];
            s.read_exact(&mut n)?;
            let secs = t.elapsed().as_secs_f64();
            let bytes = u64::from_be_bytes(n) as f64;
            println!("bytes={bytes} secs={secs:.2} gbit_s={:.2}", bytes * 8.0 / secs / 1e9);
            Ok(())
        }
        _ => {
            eprintln!("usage: netperf serve PORT | connect|rr ADDR:PORT N | stream ADDR:PORT SECS");
            std::process::exit(2);
        }
    }
}
