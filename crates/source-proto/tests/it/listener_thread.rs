//! The listener parses on its own thread, never on a tokio worker: a flood
//! of expensive lines then cannot stall the runtime that serves HTTP. The
//! test counts this process's parser threads, so it runs alone in a child
//! process of the test binary: no other test's listener thread is around.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use source_proto::hllog::{LogEvent, MAX_PACKET_BYTES};
use source_proto::listener::{LogListener, PARSER_THREAD_NAME};

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}

fn packet(line: &str) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
    v.extend_from_slice(b"4242");
    v.extend_from_slice(line.as_bytes());
    v.extend_from_slice(b"\n\0");
    v
}

#[tokio::test(flavor = "current_thread")]
async fn lines_are_parsed_on_the_parser_thread_which_ends_with_the_task() {
    if test_support::run_in_child_with_env!(&[]) {
        return;
    }
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    listener.register("4242".into(), 3).unwrap();
    let mut rx = listener.subscribe();
    let task = listener.spawn();
    let target = listener.local_addr().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();

    // An over-long datagram is refused by its size in the receive loop, a
    // good line comes through the parser thread.
    sock.send_to(&vec![0xFF; MAX_PACKET_BYTES + 1], target)
        .unwrap();
    sock.send_to(
        &packet("L 11/22/2025 - 00:35:07: Loading map \"c1m1_hotel\""),
        target,
    )
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the event arrives")
        .unwrap();
    assert_eq!(ev.server_key, 3);
    assert!(matches!(ev.event, LogEvent::MapLoading { ref map } if map == "c1m1_hotel"));
    let s = listener.stats();
    assert_eq!((s.received, s.accepted, s.dropped_too_long), (2, 1, 1));
    assert_eq!(
        thread_names()
            .iter()
            .filter(|n| *n == PARSER_THREAD_NAME)
            .count(),
        1,
        "{:?}",
        thread_names()
    );

    // Aborting the task ends the parser thread too.
    task.abort();
    let _ = task.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while thread_names().iter().any(|n| n == PARSER_THREAD_NAME) {
        assert!(Instant::now() < deadline, "parser thread still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}
