//! The RCON client against misbehaving peers on real loopback sockets: a
//! server that hangs, sends garbage sizes, or closes mid-command.

use source_proto::rcon::{RconClient, RconError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn packet(id: i32, kind: i32, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 10) as i32).to_le_bytes().to_vec();
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(body);
    v.extend_from_slice(&[0, 0]);
    v
}

/// Reads one request packet; returns its id.
async fn read_request(s: &mut TcpStream) -> i32 {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.unwrap();
    let mut rest = vec![0u8; i32::from_le_bytes(size) as usize];
    s.read_exact(&mut rest).await.unwrap();
    i32::from_le_bytes(rest[..4].try_into().unwrap())
}

/// A one-connection peer that accepts auth, then runs `after_auth`.
async fn peer<F, Fut>(after_auth: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let id = read_request(&mut s).await;
        s.write_all(&packet(id, 0, b"")).await.unwrap();
        s.write_all(&packet(id, 2, b"")).await.unwrap();
        after_auth(s).await;
    });
    addr
}

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn hung_server_times_out_on_auth_and_on_command() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let err = RconClient::connect(addr, "pw", SHORT).await.unwrap_err();
    assert!(
        matches!(
            err,
            RconError::Timeout {
                what: "authentication",
                ..
            }
        ),
        "{err:?}"
    );
    hold.abort();

    let addr = peer(|s| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    })
    .await;
    let mut c = RconClient::connect(addr, "pw", SHORT).await.unwrap();
    let err = c.exec("status").await.unwrap_err();
    assert!(
        matches!(
            err,
            RconError::Timeout {
                what: "command",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(c.exec("status").await, Err(RconError::Broken)));
}

#[tokio::test]
async fn garbage_sizes_and_early_close_are_errors() {
    for size in [-1i32, 0, 9, i32::MAX, i32::MIN] {
        let addr = peer(move |mut s| async move {
            let _ = read_request(&mut s).await;
            let mut bytes = size.to_le_bytes().to_vec();
            bytes.extend_from_slice(&[0; 16]);
            let _ = s.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let mut c = RconClient::connect(addr, "pw", Duration::from_secs(2))
            .await
            .unwrap();
        let err = c.exec("status").await.unwrap_err();
        assert!(
            matches!(err, RconError::BadSize { size: s, .. } if s == size),
            "{err:?}"
        );
    }

    // Half a packet, then the server goes away.
    let addr = peer(|mut s| async move {
        let id = read_request(&mut s).await;
        let _marker = read_request(&mut s).await;
        let p = packet(id, 0, b"partial output");
        let _ = s.write_all(&p[..9]).await;
    })
    .await;
    let mut c = RconClient::connect(addr, "pw", Duration::from_secs(2))
        .await
        .unwrap();
    let err = c.exec("status").await.unwrap_err();
    assert!(matches!(err, RconError::ConnectionClosed), "{err:?}");
    assert!(err.is_connection_failure());

    // An auth reply for a different id is not success.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let id = read_request(&mut s).await;
        s.write_all(&packet(id + 100, 2, b"")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let err = RconClient::connect(addr, "pw", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, RconError::Unexpected { .. }), "{err:?}");
}

#[tokio::test]
async fn commands_that_cannot_be_sent_are_refused_before_the_wire() {
    let addr = peer(|mut s| async move {
        // Any request reaching us would be a bug: answer nothing, just note it.
        let mut buf = [0u8; 1];
        let n = s.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "client sent a request it should have refused");
    })
    .await;
    let mut c = RconClient::connect(addr, "pw", Duration::from_secs(2))
        .await
        .unwrap();
    let long = "x".repeat(5000);
    assert!(matches!(
        c.exec(&long).await,
        Err(RconError::CommandTooLong { len: 5000 })
    ));
    assert!(matches!(
        c.exec("a\0b").await,
        Err(RconError::CommandHasNul)
    ));
    // Refusals do not break the connection.
    assert!(!format!("{c:?}").contains("broken: true"));
}
