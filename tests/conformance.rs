//! The conformance runner against the project's copy of the recorded Linux scenarios, and the
//! runner's own ability to fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use tcpsim::conformance::{self, InProcess, Scenario, Step};
use tcpsim::tcp::Config;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn scenario(name: &str) -> Scenario {
    conformance::load(&dir().join(name)).expect("the shipped scenario parses")
}

#[test]
fn every_shipped_scenario_passes_with_both_iss_variants() {
    let files = conformance::collect(&[dir()]).unwrap();
    assert!(
        files.len() >= 30,
        "found only {} scenario files",
        files.len()
    );
    let reports = conformance::run_files(&files, &mut InProcess::new(), &Config::default());
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "failing scenarios:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_shipped_scenario_passes_through_the_connection_table() {
    let files = conformance::collect(&[dir()]).unwrap();
    let reports = conformance::run_files(
        &files,
        &mut conformance::ThroughTable::new(),
        &Config::default(),
    );
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "failing scenarios:\n{}",
        failed.join("\n")
    );
    assert_eq!(reports.len(), files.len());
}

fn run(sc: &Scenario) -> Result<(), conformance::Mismatch> {
    let (_, iss, off) = conformance::ISS_VARIANTS[0];
    conformance::run_scenario(&mut InProcess::new(), sc, &Config::default(), iss, off)
}

#[test]
fn a_wrong_expected_segment_fails_at_its_step() {
    let mut sc = scenario("srv-passive-open.json");
    let Step::Expect { seq, .. } = &mut sc.steps[3] else {
        panic!("step 3 is the SYN-ACK")
    };
    *seq += 1;
    let m = run(&sc).unwrap_err();
    assert_eq!((m.step, m.op), (3, "expect"));
    assert!(
        m.expected.contains("seq=1") && m.got.contains("seq=0"),
        "{m}"
    );
}

#[test]
fn a_wrong_state_fails_at_its_step() {
    let mut sc = scenario("srv-passive-open.json");
    sc.steps[6] = Step::State {
        is: tcpsim::tcp::State::CloseWait,
    };
    let m = run(&sc).unwrap_err();
    assert_eq!(
        (m.step, m.op, m.expected.as_str(), m.got.as_str()),
        (6, "state", "CLOSE_WAIT", "ESTABLISHED")
    );
}

#[test]
fn an_unexpected_segment_fails_before_the_next_inject() {
    let mut sc = scenario("srv-passive-open.json");
    sc.steps.remove(3); // drop the expectation of the SYN-ACK
    let m = run(&sc).unwrap_err();
    assert_eq!(m.op, "inject");
    assert!(m.got.contains("SYN|ACK"), "{m}");
}

#[test]
fn an_unexpected_segment_fails_at_the_end_of_the_file() {
    let mut sc = scenario("srv-data-retransmit.json");
    sc.steps.truncate(10); // stop after the data's expect, before the retransmission's
    sc.steps.push(Step::Advance { ms: 200 });
    let m = run(&sc).unwrap_err();
    assert_eq!(m.op, "end of file");
}

#[test]
fn a_segment_outside_the_time_tolerance_fails() {
    // The retransmission comes 200 ms after the send (at 210 ms). Scripted 50 ms early, the
    // runner looks 25 ms ahead and finds nothing; scripted 50 ms late, the segment it finds was
    // emitted too early.
    let mut early = scenario("srv-data-retransmit.json");
    let Step::Advance { ms } = &mut early.steps[10] else {
        panic!("step 10 advances")
    };
    *ms = 150;
    let m = run(&early).unwrap_err();
    assert_eq!(
        (m.step, m.op, m.got.as_str()),
        (11, "expect", "no segment"),
        "{m}"
    );

    let mut late = scenario("srv-data-retransmit.json");
    let Step::Advance { ms } = &mut late.steps[10] else {
        panic!("step 10 advances")
    };
    *ms = 250;
    let m = run(&late).unwrap_err();
    assert_eq!((m.step, m.op), (11, "expect"));
    assert!(
        m.got.ends_with("at 210 ms") && m.expected.ends_with("at 260 ms"),
        "{m}"
    );
}

#[test]
fn cli_passes_the_shipped_directory() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpsim"))
        .arg("conformance")
        .arg(dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let files = conformance::collect(&[dir()]).unwrap().len();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("pass ")).count(),
        files
    );
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("{files} passed, 0 failed")
    );
}

#[test]
fn cli_reports_unparseable_and_failing_files_and_exits_non_zero() {
    let tmp = std::env::temp_dir().join(format!("tcpsim-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join("broken.json"),
        "{ \"name\": \"x\", \"role\": \"server\", \"steps\": [ {\"op\": \"jump\"} ] }",
    )
    .unwrap();
    let mut bad = std::fs::read_to_string(dir().join("srv-rst-exact.json")).unwrap();
    bad = bad.replace("\"is\": \"CLOSED\"", "\"is\": \"LISTEN\"");
    std::fs::write(tmp.join("wrong.json"), bad).unwrap();
    std::fs::copy(dir().join("srv-passive-open.json"), tmp.join("ok.json")).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_tcpsim"))
        .arg("conformance")
        .arg(&tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    std::fs::remove_dir_all(&tmp).ok();
    assert!(!out.status.success());
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("broken.json").starts_with("FAIL")
            && line("broken.json").contains("unknown variant `jump`"),
        "{stdout}"
    );
    assert!(
        line("wrong.json").contains("step 9 (state): expected LISTEN, got CLOSED"),
        "{stdout}"
    );
    assert!(line("ok.json").starts_with("pass"), "{stdout}");
    assert_eq!(stdout.lines().last().unwrap(), "1 passed, 2 failed");
}

#[test]
fn cli_names_a_missing_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpsim"))
        .args(["conformance", "/no/such/dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/dir: No such file or directory"),
        "{err}"
    );
}

#[test]
fn a_file_naming_an_unknown_flag_or_state_is_refused_when_it_is_read() {
    let dir = std::env::temp_dir().join(format!("tcpsim-conf-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, step, why) in [
        (
            "flag.json",
            r#"{"op": "inject", "flags": ["SYN", "ECE"], "seq": 0}"#,
            r#""ECE" is not a control bit"#,
        ),
        (
            "state.json",
            r#"{"op": "state", "is": "HALF_OPEN"}"#,
            r#""HALF_OPEN" is not a TCP state"#,
        ),
    ] {
        let path = dir.join(name);
        let text =
            format!(r#"{{"name": "n", "role": "server", "steps": [{{"op": "listen"}}, {step}]}}"#);
        std::fs::write(&path, text).unwrap();
        let err = conformance::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot parse: ") && err.contains(why),
            "{name}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_scenario_config_out_of_range_is_refused_before_it_runs() {
    let mut sc = scenario("cli-syn-retransmit-giveup-r2.json");
    sc.config.syn_retries = Some(0);
    let m = run(&sc).unwrap_err();
    assert_eq!((m.step, m.op), (0, "start"));
    assert!(
        m.got
            .contains("config.syn_retries: 0 is out of range: allowed 1..=127"),
        "{m}"
    );
}

/// The recordings are Linux's: under the rfc9293 profile the files that show a deviation fail
/// (each at the step where RFC 9293 and Linux part), and the others still pass.
#[test]
fn under_rfc9293_the_files_that_show_a_deviation_fail() {
    let rfc = Config::for_profile(tcpsim::tcp::ProfileName::Rfc9293);
    let run_one = |name: &str| {
        let files = [dir().join(name)];
        conformance::run_files(&files, &mut InProcess::new(), &rfc)
            .remove(0)
            .outcome
    };
    for same in [
        "srv-passive-open.json",
        "srv-passive-close.json",
        "srv-rst-exact.json",
    ] {
        assert!(run_one(same).is_ok(), "{same}: {:?}", run_one(same));
    }
    // RFC 5961's challenge ACK; Linux's 200 ms RTO floor; its linear SYN timeouts; its 60 s
    // TIME-WAIT.
    for (differs, at) in [
        ("srv-rst-in-window.json", "expect"),
        ("srv-data-retransmit.json", "expect"),
        ("cli-syn-retransmit-giveup-r2.json", "expect"),
        ("srv-time-wait-duration.json", "state"),
    ] {
        match run_one(differs) {
            Err(conformance::FileError::Mismatch { mismatch, .. }) => {
                assert_eq!(mismatch.op, at, "{differs}: {mismatch}")
            }
            other => panic!("{differs}: expected a mismatch, got {other:?}"),
        }
    }
}
