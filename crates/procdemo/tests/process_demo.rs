//! `procdemo process` prints the `multiprocessing.Process` seed's lines, in order, with real pids.

mod common;

#[test]
fn process_demo_prints_the_seed_lines_in_order() {
    let stdout = common::run_procdemo(&["process"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");

    let parent: u32 = lines[0]
        .strip_prefix("Parent process ")
        .and_then(|rest| rest.strip_suffix('.'))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("first line: {stdout}"));
    assert_eq!(lines[1], "Child process will start.");
    let child: u32 = lines[2]
        .strip_prefix("Run child process test (")
        .and_then(|rest| rest.strip_suffix(")..."))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("third line: {stdout}"));
    assert_ne!(child, parent, "the function ran in another process");
    assert_eq!(lines[3], "Child process end.");
}
