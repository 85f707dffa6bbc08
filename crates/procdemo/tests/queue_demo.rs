//! `procdemo queue` prints the `multiprocessing.Queue` seed's lines from two processes: the
//! writer puts A, B, C and the reader gets each of them once, in order, after it was put.

mod common;

#[test]
fn queue_demo_passes_a_b_c_from_the_writer_to_the_reader() {
    let stdout = common::run_procdemo_with_env(&["queue"], &[("PROCDEMO_QUEUE_MAX_SLEEP", "0.1")]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    let pid_after = |prefix: &str| -> u32 {
        let matching: Vec<u32> = lines
            .iter()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(|pid| pid.parse().unwrap_or_else(|_| panic!("{prefix}: {stdout}")))
            .collect();
        assert_eq!(matching.len(), 1, "one {prefix:?} line: {stdout}");
        matching[0]
    };
    let writer = pid_after("Process to write: ");
    let reader = pid_after("Process to read: ");
    assert_ne!(writer, reader, "two processes");
    assert_ne!(writer, std::process::id());
    let position = |line: &str| {
        lines
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("no line {line:?}: {stdout}"))
    };
    let mut last_get = 0;
    for value in ["A", "B", "C"] {
        let put = position(&format!("Put {value} to queue..."));
        let get = position(&format!("Get {value} from queue."));
        assert!(put < get, "{value} got before it was put: {stdout}");
        assert!(get > last_get, "{value} got out of order: {stdout}");
        last_get = get;
    }
}
