//! `procdemo start-methods` runs one `Process` and one pool task under each start method, and
//! the pids say where each ran.

mod common;

/// `"4101 (parent 4100)"` or `"4105 (parent 4104, the fork server)"` → (pid, parent, served).
fn parse_place(text: &str) -> (u32, u32, bool) {
    let (pid, rest) = text
        .split_once(" (parent ")
        .unwrap_or_else(|| panic!("{text}"));
    let served = rest.ends_with(", the fork server)");
    let parent = rest
        .trim_end_matches(')')
        .trim_end_matches(", the fork server");
    (
        pid.parse().unwrap_or_else(|_| panic!("{text}")),
        parent.parse().unwrap_or_else(|_| panic!("{text}")),
        served,
    )
}

#[test]
fn each_method_runs_the_task_where_it_should() {
    let stdout = common::run_procdemo(&["start-methods"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let me: u32 = lines[0]
        .strip_prefix("Parent process ")
        .and_then(|rest| rest.strip_suffix('.'))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("first line: {stdout}"));
    let mut server = None;
    for (line, method) in lines[1..].iter().zip(["fork", "forkserver", "spawn"]) {
        let rest = line
            .strip_prefix(&format!("{method}: Process "))
            .unwrap_or_else(|| panic!("{line}"));
        let (process, task) = rest
            .split_once(", Pool worker ")
            .unwrap_or_else(|| panic!("{line}"));
        for (pid, parent, served) in [parse_place(process), parse_place(task)] {
            assert_ne!(pid, me, "{line}: ran in the parent");
            if method == "forkserver" {
                assert!(served, "{line}: not forked by the fork server");
                assert_ne!(parent, me, "{line}");
                assert_eq!(
                    *server.get_or_insert(parent),
                    parent,
                    "{line}: one fork server"
                );
            } else {
                assert!(!served, "{line}");
                assert_eq!(parent, me, "{line}: a {method} child is the program's own");
            }
        }
    }
}
