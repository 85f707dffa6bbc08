//! `procdemo fork` prints the seed's three lines with pids that agree.

mod common;

/// Pulls the numbers in parentheses and after "parent is" out of one line.
fn numbers(line: &str) -> Vec<i64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a pid"))
        .collect()
}

#[test]
fn fork_demo_prints_the_seed_lines_with_matching_pids() {
    let stdout = common::run_procdemo(&["fork"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");

    // The first line comes before the fork; the other two may come in either order.
    assert!(
        lines[0].starts_with("Process (") && lines[0].ends_with(") start..."),
        "{stdout}"
    );
    let parent = numbers(lines[0])[0];

    let created = lines
        .iter()
        .find(|l| l.starts_with("I (") && l.contains(") just created a child process ("))
        .unwrap_or_else(|| panic!("no parent line in {stdout}"));
    let child_line = lines
        .iter()
        .find(|l| l.starts_with("I am child process ("))
        .unwrap_or_else(|| panic!("no child line in {stdout}"));

    let [me, child] = numbers(created)[..] else {
        panic!("{created}")
    };
    assert_eq!(me, parent, "the parent line names the starting process");
    let [child_pid, childs_parent] = numbers(child_line)[..] else {
        panic!("{child_line}")
    };
    assert_eq!(
        child_pid, child,
        "the child is the process the parent created"
    );
    assert_eq!(childs_parent, parent, "the child's parent is the parent");
    assert_ne!(child, parent);
    assert!(
        child_line.ends_with(&format!("and my parent is {parent}.")),
        "{child_line}"
    );
}
