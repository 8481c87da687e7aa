//! Azure Blob Storage end to end against the Azurite emulator: a put/get round trip through
//! render-pod's storage layer, then a whole `render-pod local` job whose scene, shards,
//! manifests and merged frames all live in `az://` storage, compared byte for byte with the
//! same job on local files.
//!
//! Needs Azurite. Install it once with `render-pod/tests/azurite.sh` (a pinned `npm install` into
//! `~/.cache/tessera/azurite`, or `$TESSERA_AZURITE_DIR`). Without it this test fails; it never
//! skips silently. (It is compiled only with the `azure` feature, which is on by default.)
#![cfg(feature = "azure")]

mod bucket;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bucket::{Emulator, check_round_trip, check_whole_job, render_pod};
use hmac::{Hmac, Mac};
use render_pod::storage::Storage;
use sha2::Sha256;

/// Azurite's well-known development account (also object_store's emulator default).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "tessera";

fn azurite_bin() -> PathBuf {
    let dir = std::env::var_os("TESSERA_AZURITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            Path::new(&home).join(".cache/tessera/azurite")
        });
    let bin = dir.join("node_modules/.bin/azurite-blob");
    assert!(
        bin.is_file(),
        "Azurite is not installed ({} is missing). Install it with\n\n    \
         render-pod/tests/azurite.sh\n\n(needs Node.js >= 18 and npm; set TESSERA_AZURITE_DIR to \
         install elsewhere)",
        bin.display()
    );
    bin
}

fn start_azurite() -> Emulator {
    Emulator::start("azurite", &azurite_bin(), |port| {
        [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]
        .map(String::from)
        .to_vec()
    })
}

/// Creates a container with a Shared Key signed request (object_store never creates one).
fn create_container(port: u16, container: &str) {
    let date = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let path = format!("/{ACCOUNT}/{container}");
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}{path}\nrestype:container"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&STANDARD.decode(KEY).unwrap()).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let request = format!(
        "PUT {path}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-ms-date: {date}\r\n\
         x-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "creating container {container} failed:\n{response}"
    );
}

#[test]
fn azure_round_trip_and_a_whole_local_job_through_azurite() {
    let azurite = start_azurite();
    create_container(azurite.port, CONTAINER);
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        (
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{}", azurite.port),
        ),
    ];
    // SAFETY: this test binary has this one test, and nothing else runs or reads the
    // environment while it is changed (before the first storage client exists).
    for (key, value) in &env {
        unsafe { std::env::set_var(key, value) };
    }
    let storage = Storage::new().unwrap();
    check_round_trip(&storage, "az://tessera", "az://no-such-container");
    // Every Azure URL form reaches the same container.
    for url in [
        "azure://tessera/rt/hello%20world.bin",
        "abfs://tessera/rt/hello%20world.bin",
    ] {
        assert_eq!(storage.get(url).unwrap(), b"again", "{url}");
    }
    check_whole_job(&storage, "az://tessera", &|args| render_pod(args, &env));
}
