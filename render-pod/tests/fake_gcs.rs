//! Google Cloud Storage end to end against fake-gcs-server: a put/get round trip through
//! render-pod's storage layer, then a whole `render-pod local` job whose scene, shards,
//! manifests and merged frames all live in `gs://` storage, compared byte for byte with the
//! same job on local files.
//!
//! Needs fake-gcs-server. Build it once with `e2e/gcs/build.sh` (the pinned upstream emulator
//! from the Go module proxy behind a small shim that adds the plain XML-API upload object_store
//! sends; into `e2e/gcs/bin/`), or point `$TESSERA_FAKE_GCS` at that binary. Without it
//! this test fails; it never skips silently. (It is compiled only with the `gcp` feature, which
//! is on by default.)
//!
//! object_store reaches the emulator the way its own tests do: a service-account file carrying
//! `gcs_base_url` (the emulator's address) and `disable_oauth: true` (no token exchange), named
//! by `GOOGLE_SERVICE_ACCOUNT`.
#![cfg(feature = "gcp")]

mod bucket;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use bucket::{Emulator, TempDir, check_round_trip, check_whole_job, render_pod};
use render_pod::storage::Storage;

const BUCKET: &str = "tessera";

fn fake_gcs_bin() -> PathBuf {
    let bin = std::env::var_os("TESSERA_FAKE_GCS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/gcs/bin/fake-gcs-server")
        });
    assert!(
        bin.is_file(),
        "fake-gcs-server is not built ({} is missing). Build it with\n\n    \
         e2e/gcs/build.sh\n\n(needs Go and the Go module proxy; or set TESSERA_FAKE_GCS to a \
         fake-gcs-server binary)",
        bin.display()
    );
    bin
}

/// In memory, plain HTTP; the XML API is routed by Host header, and object_store's is
/// `127.0.0.1:<port>` (its base URL), which is the default public host.
fn start_fake_gcs() -> Emulator {
    Emulator::start("fake-gcs-server", &fake_gcs_bin(), |port| {
        ["-host", "127.0.0.1", "-port", &port.to_string()]
            .map(String::from)
            .to_vec()
    })
}

/// Creates a bucket through the JSON API (object_store never creates one).
fn create_bucket(port: u16, bucket: &str) {
    let body = format!(r#"{{"name":"{bucket}"}}"#);
    let request = format!(
        "POST /storage/v1/b?project=tessera HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket} failed:\n{response}"
    );
}

/// A service-account file that sends object_store to the emulator, without OAuth.
fn write_service_account(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("service-account.json");
    let json = serde_json::json!({
        "private_key": "unused",
        "private_key_id": "unused",
        "client_email": "tessera@fake-gcs.invalid",
        "gcs_base_url": format!("http://127.0.0.1:{port}"),
        "disable_oauth": true,
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

#[test]
fn gcs_round_trip_and_a_whole_local_job_through_fake_gcs_server() {
    let gcs = start_fake_gcs();
    create_bucket(gcs.port, BUCKET);
    let config = TempDir::new("fake-gcs-config");
    let service_account = write_service_account(&config.0, gcs.port);
    let env = [(
        "GOOGLE_SERVICE_ACCOUNT",
        service_account.to_string_lossy().into_owned(),
    )];
    // SAFETY: this test binary has this one test, and nothing else runs or reads the
    // environment while it is changed (before the first storage client exists).
    unsafe { std::env::set_var(env[0].0, &env[0].1) };
    let storage = Storage::new().unwrap();
    check_round_trip(&storage, "gs://tessera", "gs://no-such-bucket");
    check_whole_job(&storage, "gs://tessera", &|args| render_pod(args, &env));
}
