//! The `ebsim` binary: prints its address once ready, answers health, exits 0 on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn starts_reports_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebsim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--s3-endpoint",
            "http://127.0.0.1:9",
            "--ecr-endpoint",
            "http://127.0.0.1:9",
            "--docker-host",
            "unix:///nonexistent/ebsim-test.sock",
            "--timing",
            "fast",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("ebsim listening on ").expect("the ready line").to_string();
    let health = get(&addr, "/_ebsim/health");
    assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"), "{health}");
    // The CNAME proxy runs on a free port by default and says where in /_ebsim/config.
    let config = get(&addr, "/_ebsim/config");
    let proxy = config
        .split("\"proxy\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no proxy in {config}"))
        .to_string();
    let mut s = std::net::TcpStream::connect(&proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET http://nobody.us-east-1.elasticbeanstalk.com/ HTTP/1.0\r\nHost: nobody.us-east-1.elasticbeanstalk.com\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.contains(" 502 ") && answer.contains("is not the CNAME of a live environment"), "{answer}");
    let api = get(&addr, "/?Action=DescribeApplications&Version=2010-12-01");
    assert!(api.contains("<DescribeApplicationsResult><Applications/></DescribeApplicationsResult>"), "{api}");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn rejects_a_bad_command_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_ebsim"))
        .args(["--listen", "127.0.0.1:0", "--timing", "slow"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timing must be fast or demo"));
}
