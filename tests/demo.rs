//! `serin demo` tells its whole story and exits 0.

mod common;

#[test]
fn the_demo_promotes_one_version_and_aborts_the_next() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(common::serin_bin())
        .args(["demo", "--kubeconfig-out"])
        .arg(dir.path().join("demo.kubeconfig"))
        .arg("--log")
        .arg(dir.path().join("demo.log"))
        .output()
        .expect("serin demo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With Prometheus (as `make test` installs it) analysis decides; without, a person does.
    let wants: &[&str] = if common::which("prometheus").is_some() {
        &[
            // 2.0 is compared with stable at each default step, and promoted. Its measured rate
            // varies around 1% with the simulated traffic.
            "judged at 5%: canary ",
            "no evidence of a regression (Successful)",
            "judged at 25%: canary ",
            "judged at 50%: canary ",
            "step 8/8 done: analysis; analysis passed",
            "is promoted",
            // 3.0, at twice stable's error rate, is found worse and rolled back.
            ": regression (Failed)",
            "rolled back by itself",
            "went to stable version 2.0",
        ]
    } else {
        &[
            "step 1/4 done: setWeight 5",
            "step 4/4 done: setWeight 100",
            "is promoted",
            "paused at step 3/5 until promoted",
            "aborted on request",
            "went to stable version 2.0",
        ]
    };
    for want in wants {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
    // The controller's log went to its file, not between the story's lines.
    let log = std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
    assert!(log.contains("INFO"), "the controller's log: {log}");
    assert!(!text.contains(" INFO "), "log lines in the story:\n{text}");
    let back = text.lines().find(|l| l.contains("traffic now:")).unwrap_or_default();
    let nums: Vec<u64> = back.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(
        nums.len() >= 2 && nums[0] == nums[1] && nums[0] > 0,
        "all requests on stable: {back}"
    );
}
