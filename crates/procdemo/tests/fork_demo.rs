//! `procdemo fork` prints the seed's three lines with pids that agree.

use assert_cmd::Command;

/// Pulls the numbers in parentheses and after "parent is" out of one line.
fn numbers(line: &str) -> Vec<i64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a pid"))
        .collect()
}

fn run(args: &[&str]) -> String {
    let output = Command::cargo_bin("procdemo")
        .expect("procdemo is built")
        .args(args)
        .output()
        .expect("procdemo runs");
    assert!(
        output.status.success(),
        "procdemo {args:?} failed: {output:?}"
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn fork_demo_prints_the_seed_lines_with_matching_pids() {
    let stdout = run(&["fork"]);
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
