//! `data fetch` against a local HTTP server serving a small archive in the official layout.
use gcl_repro::data::{cifar::Cifar, fetch};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

/// A tar.gz with `cifar-10-batches-bin/<official names>` holding small files.
fn small_cifar10_archive() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (i, f) in Cifar::C10.files().iter().enumerate() {
        let body = vec![i as u8; 3073 * 2];
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("cifar-10-batches-bin/{}", f.name), &body[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Serve `body` to every request on 127.0.0.1; returns the URL.
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/cifar-10-binary.tar.gz")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn fetch_verifies_and_installs_atomically() {
    let archive = small_cifar10_archive();
    let md5 = hex::encode(Md5::digest(&archive));
    let url = serve(archive);
    let root = tempfile::tempdir().unwrap();

    // Wrong MD5 (here: the official one, for a different archive): refused, nothing left behind.
    let err = format!("{:#}", fetch::fetch(Cifar::C10, root.path(), Some(&url), None).unwrap_err());
    assert!(
        err.contains("expected c32a1d4ab5d03f1284b67883e8d87530") && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(entries(root.path()).is_empty(), "left behind: {:?}", entries(root.path()));

    // Right MD5: installed, with every file, and the temporary directory gone.
    let dir = fetch::fetch(Cifar::C10, root.path(), Some(&url), Some(&md5)).unwrap();
    assert_eq!(dir, root.path().join("cifar-10-batches-bin"));
    assert_eq!(entries(root.path()), vec!["cifar-10-batches-bin"]);
    assert_eq!(std::fs::read(dir.join("test_batch.bin")).unwrap(), vec![5u8; 3073 * 2]);

    // A second fetch does not clobber what is there.
    let err = fetch::fetch(Cifar::C10, root.path(), Some(&url), Some(&md5)).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn archive_without_the_official_layout_is_refused() {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_cksum();
    tar.append_data(&mut h, "cifar-10-batches-bin/data_batch_1.bin", &b"abc"[..]).unwrap();
    let archive = tar.into_inner().unwrap().finish().unwrap();
    let md5 = hex::encode(Md5::digest(&archive));
    let url = serve(archive);
    let root = tempfile::tempdir().unwrap();
    let err = fetch::fetch(Cifar::C10, root.path(), Some(&url), Some(&md5)).unwrap_err().to_string();
    assert!(err.contains("has no cifar-10-batches-bin/data_batch_2.bin"), "{err}");
    assert!(entries(root.path()).is_empty());
}

#[test]
fn unreachable_server_is_one_clear_error() {
    let root = tempfile::tempdir().unwrap();
    // Bind then drop: the port is closed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/x.tar.gz");
    let err = fetch::fetch(Cifar::C10, root.path(), Some(&url), None).unwrap_err().to_string();
    assert!(err.contains(&format!("cannot download {url}")), "{err}");
    assert!(entries(root.path()).is_empty());
}
