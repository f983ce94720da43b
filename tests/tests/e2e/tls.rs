//! The node against a Mosquitto that takes only TLS and a user name with a password: the node
//! connects with `mqtts://`, its own CA file and a password file, and subscribes.

use std::process::{Command, Stdio};

use yingji_tests::{NodeProcess, TestDb, external_broker_available, free_port};

fn run(program: &str, args: &[&str], dir: &std::path::Path) {
    let status = Command::new(program).args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(status.is_ok_and(|s| s.success()), "{program} {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_connects_over_tls_with_a_password() {
    if !external_broker_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A CA, and a server certificate for 127.0.0.1 and localhost signed by it.
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=yingji-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        d,
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        d,
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        d,
    );
    run("mosquitto_passwd", &["-b", "-c", "passwd", "node-tls", "s3cret"], d);
    std::fs::write(d.join("node.password"), "s3cret\n").expect("password file");
    let port = free_port();
    std::fs::write(
        d.join("mosquitto.conf"),
        format!(
            "listener {port} 127.0.0.1\ncafile {0}/ca.crt\ncertfile {0}/server.crt\nkeyfile {0}/server.key\n\
             allow_anonymous false\npassword_file {0}/passwd\npersistence false\nlog_dest none\n\
             user root\n",
            d.display()
        ),
    )
    .expect("mosquitto.conf");
    // `user root`: run as root, Mosquitto would otherwise drop to its own user, which cannot
    // read the key in the test's private directory.
    let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("mosquitto");
    let mut broker = Command::new(binary)
        .arg("-c")
        .arg(d.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");

    let db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let http = free_port();
    let ca = d.join("ca.crt");
    let password = d.join("node.password");
    let _node = NodeProcess::start(&[
        "--id",
        "tls-node",
        "--mqtt",
        &format!("mqtts://127.0.0.1:{port}"),
        "--mqtt-ca",
        ca.to_str().unwrap_or_default(),
        "--mqtt-username",
        "node-tls",
        "--mqtt-password-file",
        password.to_str().unwrap_or_default(),
        "--db",
        &db.url,
        "--http",
        &format!("127.0.0.1:{http}"),
    ])
    .expect("start yingji-node");
    NodeProcess::wait_subscribed(http).await;
    let _ = broker.kill();
    let _ = broker.wait();
}
