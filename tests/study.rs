//! User-study mode end to end: the study file and its errors, seeded balanced order, results that are
//! appended, flushed and resumed (also after a SIGKILL), the summary on hand-made answers, export rows,
//! `prepare` with a fixture model, and a simulated participant driving the egui panel.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use radlens::io::raster::write_png_u8;
use radlens::session::prepared::{MapCache, MapKey};
use radlens::session::randomise::plan;
use radlens::session::results::{ResultsLog, Session};
use radlens::session::study::{Layout, Study};
use radlens::session::summary::{read_logs, rows, sign_test_p, summarise, to_csv, wilson_95};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn radlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radlens")).args(args).output().expect("run radlens")
}

/// A small grey image (rows of a ramp) written as PNG.
fn write_image(path: &Path, h: u32, w: u32) {
    let px: Vec<u8> = (0..h * w).map(|i| ((i % w) * 255 / w.max(1) + (i / w) * 3) as u8).collect();
    write_png_u8(path, w, h, &px).unwrap();
}

/// A study of `n` cases on small PNGs in `dir`; `model` is written as given.
fn write_study(
    dir: &Path,
    n: usize,
    methods: &[&str],
    layout: &str,
    revisable: bool,
    model: &str,
) -> PathBuf {
    let mut toml = format!(
        "title = \"Test study\"\ninstructions = \"Rate the maps.\"\n\n[design]\nlayout = \"{layout}\"\nrevisable = {revisable}\nseed = 7\n\n\
[questions]\npreference = \"Which do you prefer?\"\nfree_text = \"Comments\"\n\n\
[[questions.likert]]\nid = \"matches\"\ntext = \"The region matches\"\n\n\
[[questions.likert]]\nid = \"trust\"\ntext = \"I trust it\"\n\n"
    );
    let list = methods.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ");
    for i in 0..n {
        let img = dir.join(format!("img{i}.png"));
        write_image(&img, 20, 24);
        toml.push_str(&format!(
            "[[cases]]\nid = \"c{i}\"\nstudy = \"img{i}.png\"\nmodel = \"{model}\"\nmethods = [{list}]\n\n"
        ));
    }
    let path = dir.join("study.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn fixture_model() -> String {
    repo().join("tests/fixtures/models/unet").to_string_lossy().into_owned()
}

/// Synthetic maps for every case (a different ramp per method), as `prepare` would store them.
fn fill_cache(study: &Study) {
    let mut cache = MapCache::open(&study.cache_dir()).unwrap();
    for case in &study.cases {
        for (mi, m) in case.methods.iter().enumerate() {
            let v: Vec<f32> = (0..20 * 24).map(|i| ((i * (mi + 1)) % 97) as f32).collect();
            cache.store(MapKey::new(study, case, 0, m), &v, 20, 24).unwrap();
        }
    }
}

/// Answers every required question of plan case `k` (Likert value `v`, preference: the first method).
fn answer_case(s: &mut Session, study: &Study, k: usize, v: u64) {
    let methods = s.plan[k].methods.clone();
    for m in &methods {
        for item in &study.questions.likert {
            s.answer(k, &item.id, Some(m), json!(v), 1.0).unwrap();
        }
    }
    s.answer(k, "preference", None, json!(methods[0]), 2.0).unwrap();
}

// ---------------------------------------------------------------- the study file

#[test]
fn example_study_parses_and_validate_names_only_a_missing_model() {
    let path = repo().join("assets/studies/example.toml");
    let study = Study::load(&path).unwrap();
    assert_eq!(study.cases.len(), 3);
    assert_eq!(study.questions.likert.len(), 3);
    assert_eq!(study.design.layout, Layout::SideBySide);
    assert!(study.design.blind);
    assert_eq!(study.cases[0].methods, ["gradcam", "lime"]);
    assert!(study.cases[0].study.ends_with("demo/ct/slice_7.jpg"));
    let o = radlens(&["study", "validate", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        assert!(String::from_utf8_lossy(&o.stdout).contains("OK"));
    } else {
        // The shipped CT model may not be installed yet: then the model is the only complaint.
        assert_eq!(o.status.code(), Some(2), "{err}");
        for line in err.lines() {
            assert!(line.contains("field 'model'") && line.contains("ct-infection-unet"), "{line}");
        }
        assert_eq!(err.lines().count(), 3, "{err}");
    }
}

#[test]
fn parse_errors_name_the_case_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 2, &["gradcam", "lime"], "side-by-side", false, "m");
    let good = std::fs::read_to_string(&path).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "methods = [\"gradcam\", \"lime\"]\n\n[[cases]]\nid = \"c1\"",
            "methods = [\"gradcam\", \"lime\"]\n\n[[cases]]\nid = \"c0\"",
            "case 'c0', field 'id': used by an earlier case",
        ),
        (
            "id = \"c1\"\nstudy = \"img1.png\"\nmodel = \"m\"\nmethods = [\"gradcam\", \"lime\"]",
            "id = \"c1\"\nstudy = \"img1.png\"\nmodel = \"m\"\nmethods = [\"gradcam\", \"limey\"]",
            "case 'c1', field 'methods': unknown method 'limey'",
        ),
        (
            "id = \"c1\"\nstudy = \"img1.png\"\nmodel = \"m\"\n",
            "id = \"c1\"\nstudy = \"img1.png\"\n",
            "case 'c1', field 'model': missing",
        ),
        (
            "id = \"c1\"\nstudy",
            "id = \"c1\"\nslice = -1\nstudy",
            "case 'c1', field 'slices': -1 is not a slice index",
        ),
        ("id = \"c1\"\nstudy", "id = \"c1\"\nsilce = 1\nstudy", "case 'c1', field 'silce': unknown field"),
        ("id = \"c1\"", "id = \"bad id!\"", "case 'bad id!', field 'id'"),
        ("layout = \"side-by-side\"", "layout = \"sideways\"", "section [design], field 'layout'"),
        ("seed = 7", "seed = \"seven\"", "section [design], field 'seed': expected a whole number"),
        (
            "methods = [\"gradcam\", \"lime\"]\n\n[[cases]]\nid = \"c1\"",
            "methods = [\"gradcam\"]\n\n[[cases]]\nid = \"c1\"",
            "case 'c0', field 'methods': a preference question needs at least two methods",
        ),
        ("title = \"Test study\"", "title = \"Test study", "not valid TOML (line 1)"),
        ("text = \"I trust it\"", "text = 3", "likert item 'trust', field 'text': expected a string"),
    ];
    for (from, to, want) in cases {
        assert!(good.contains(from), "{from}");
        let bad = good.replacen(from, to, 1);
        let e = Study::parse(&bad, &path).unwrap_err().to_string();
        assert!(e.contains(want), "want '{want}' in: {e}");
        assert!(e.ends_with("study.toml"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    assert!(Study::parse(&good, &path).is_ok());
}

#[test]
fn validate_checks_files_slices_masks_and_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 3, &["gradcam", "lime"], "side-by-side", false, &fixture_model());
    let o = radlens(&["study", "validate", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("OK — 3 cases, 2 Likert items and a preference, 6 maps")
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let mask = dir.path().join("small_mask.png");
    write_png_u8(&mask, 5, 5, &[255; 25]).unwrap();
    let bad = text
        .replacen("study = \"img0.png\"", "study = \"missing.png\"", 1)
        .replacen("study = \"img1.png\"", "study = \"img1.png\"\nslices = [0, 3]", 1)
        .replacen("study = \"img2.png\"", "study = \"img2.png\"\ngt_mask = \"small_mask.png\"", 1)
        .replacen(&format!("model = \"{}\"", fixture_model()), "model = \"no-such-model\"", 1);
    std::fs::write(&path, bad).unwrap();
    let o = radlens(&["study", "validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("case 'c0', field 'study': no such file or folder") && err.contains("missing.png"),
        "{err}"
    );
    assert!(err.contains("case 'c0', field 'model'") && err.contains("no-such-model"), "{err}");
    assert!(
        err.contains("case 'c1', field 'slices': slice 3 is out of range (the study has 1 slice)"),
        "{err}"
    );
    assert!(err.contains("case 'c2', field 'gt_mask': the mask is 1x5x5, the study 1x20x24"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("error: case '")), "{err}");
}

// ---------------------------------------------------------------- randomisation

#[test]
fn order_is_reproducible_from_the_seed_and_balanced_across_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 6, &["gradcam", "lime", "rise"], "side-by-side", false, "m");
    let study = Study::load(&path).unwrap();
    let a = plan(&study, "P01");
    assert_eq!(a, plan(&study, "P01"), "same seed and participant, same plan");
    let mut case_ids: Vec<_> = a.iter().map(|p| p.case_id.clone()).collect();
    case_ids.sort();
    assert_eq!(case_ids, ["c0", "c1", "c2", "c3", "c4", "c5"]);
    // Another seed gives other plans for most participants.
    let mut other = study.clone();
    other.design.seed = 8;
    let changed =
        (0..20).filter(|i| plan(&study, &format!("P{i}")) != plan(&other, &format!("P{i}"))).count();
    assert!(changed >= 15, "{changed}");

    // Within one participant: every method in every position exactly twice over 6 cases.
    let mut counts = std::collections::HashMap::new();
    for p in 0..300 {
        let id = format!("P{p:03}");
        let mut own = std::collections::HashMap::new();
        for c in plan(&study, &id) {
            for (pos, m) in c.methods.iter().enumerate() {
                *own.entry((m.clone(), pos)).or_insert(0) += 1;
                if c.case_id == "c0" {
                    *counts.entry((m.clone(), pos)).or_insert(0) += 1;
                }
            }
        }
        assert_eq!(own.len(), 9, "{id}");
        assert!(own.values().all(|&n| n == 2), "{id}: {own:?}");
    }
    // Across 300 participants, one case puts each method in each position about 100 times.
    assert_eq!(counts.len(), 9);
    for (k, n) in &counts {
        assert!((70..=130).contains(n), "{k:?}: {n} of 300");
    }
    // Shuffled case order: the first case differs between participants.
    let firsts: std::collections::HashSet<_> =
        (0..50).map(|i| plan(&study, &format!("Q{i}"))[0].case_id.clone()).collect();
    assert!(firsts.len() >= 4, "{firsts:?}");
}

// ---------------------------------------------------------------- results

#[test]
fn answers_are_appended_and_a_session_resumes_at_the_first_unfinished_case() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 3, &["gradcam", "lime"], "side-by-side", false, "m");
    let study = Study::load(&path).unwrap();
    let results = dir.path().join("results");
    {
        let mut s = Session::open(&study, &results, "P01").unwrap();
        assert_eq!(s.first_unfinished(), Some(0));
        let m0 = s.plan[0].methods[0].clone();
        s.answer(0, "matches", Some(&m0), json!(3), 1.5).unwrap();
        // Not finished: the answers still missing are named by blinding letter.
        let e = s.finish_case(0, 2.0).unwrap_err().to_string();
        assert!(e.contains("trust (A)") && e.contains("matches (B)") && e.contains("preference"), "{e}");
        // Bad answers are refused.
        assert!(s.answer(0, "matches", Some(&m0), json!(6), 1.0).is_err());
        assert!(s.answer(0, "nope", Some(&m0), json!(3), 1.0).is_err());
        assert!(s.answer(0, "preference", None, json!("occlusion"), 1.0).is_err());
        answer_case(&mut s, &study, 0, 4);
        s.answer(0, "comment", None, json!("clear, \"obvious\""), 3.0).unwrap();
        s.finish_case(0, 12.5).unwrap();
        // Not revisable: a finished case stays as it was.
        assert!(s
            .answer(0, "matches", Some(&m0), json!(1), 1.0)
            .unwrap_err()
            .to_string()
            .contains("cannot be revised"));
        let m1 = s.plan[1].methods[1].clone();
        s.answer(1, "trust", Some(&m1), json!(2), 4.0).unwrap();
    }
    let mut s = Session::open(&study, &results, "P01").unwrap();
    assert_eq!(s.first_unfinished(), Some(1));
    assert_eq!(s.done_count(), 1);
    let m0 = s.plan[0].methods[0].clone();
    assert_eq!(s.answer_of(0, "matches", Some(&m0)), Some(&json!(4)), "the later answer supersedes");
    assert_eq!(s.answer_of(0, "comment", None), Some(&json!("clear, \"obvious\"")));
    let m1 = s.plan[1].methods[1].clone();
    assert_eq!(
        s.answer_of(1, "trust", Some(&m1)),
        Some(&json!(2)),
        "a partly answered case keeps its answers"
    );
    assert_eq!(s.seconds_spent(1), 4.0);
    assert_eq!(s.seconds_spent(0), 12.5);
    answer_case(&mut s, &study, 1, 5);
    s.finish_case(1, 9.0).unwrap();
    assert_eq!(s.first_unfinished(), Some(2));
    // Every line is a complete JSON record; nothing from image headers, only case IDs.
    let text = std::fs::read_to_string(s.path()).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["kind"].is_string());
    }
    assert!(text.lines().next().unwrap().contains("\"kind\":\"start\""));
    // Invalid participant IDs are refused before any file is made.
    for bad in ["", "Jane Doe", "../P01", "P01/x", "ü"] {
        let e = Session::open(&study, &results, bad).unwrap_err().to_string();
        assert!(e.contains("participant ID"), "{bad}: {e}");
    }
    assert_eq!(
        std::fs::read_dir(&results)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "jsonl")
            .count(),
        1
    );
}

#[test]
fn two_participants_never_share_or_overwrite_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 2, &["gradcam", "lime"], "side-by-side", false, "m");
    let study = Study::load(&path).unwrap();
    let results = dir.path().join("results");
    let mut a = Session::open(&study, &results, "P01").unwrap();
    let mut b = Session::open(&study, &results, "P02").unwrap();
    answer_case(&mut a, &study, 0, 1);
    answer_case(&mut b, &study, 0, 5);
    a.finish_case(0, 1.0).unwrap();
    b.finish_case(0, 2.0).unwrap();
    // The same ID while its session runs is refused, naming the lock.
    let e = Session::open(&study, &results, "P01").unwrap_err().to_string();
    assert!(e.contains("already in a running session") && e.contains("P01.jsonl.lock"), "{e}");
    drop(a);
    drop(b);
    let la = ResultsLog::read(&results.join("P01.jsonl")).unwrap();
    let lb = ResultsLog::read(&results.join("P02.jsonl")).unwrap();
    assert_eq!(la.participant, "P01");
    assert_eq!(lb.participant, "P02");
    assert!(la.answers.iter().filter(|a| a.0 .1 != "preference").all(|a| a.2 == json!(1)));
    assert!(lb.answers.iter().filter(|a| a.0 .1 != "preference").all(|a| a.2 == json!(5)));
    assert!(!std::fs::read_to_string(results.join("P01.jsonl")).unwrap().contains("P02"));
    // After the session ends, the lock is gone and the participant can resume.
    assert!(!results.join("P01.jsonl.lock").exists());
    let a = Session::open(&study, &results, "P01").unwrap();
    assert_eq!(a.first_unfinished(), Some(1));
    // A results file of another study (other plan) is refused rather than mixed.
    drop(a);
    let mut other = study.clone();
    other.design.seed = 99;
    other.design.shuffle_cases = false;
    other.cases.reverse();
    let e = Session::open(&other, &results, "P01").unwrap_err().to_string();
    assert!(e.contains("different study file or seed"), "{e}");
}

#[test]
fn a_line_torn_by_a_crash_is_dropped_and_the_file_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 2, &["gradcam", "lime"], "side-by-side", false, "m");
    let study = Study::load(&path).unwrap();
    let results = dir.path().join("results");
    {
        let mut s = Session::open(&study, &results, "P05").unwrap();
        answer_case(&mut s, &study, 0, 3);
        s.finish_case(0, 5.0).unwrap();
    }
    let file = results.join("P05.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(b"{\"kind\":\"answer\",\"participant\":\"P05\",\"ca").unwrap();
    drop(f);
    let log = ResultsLog::read(&file).unwrap();
    assert_eq!(log.done.len(), 1);
    let mut s = Session::open(&study, &results, "P05").unwrap();
    assert_eq!(s.first_unfinished(), Some(1));
    answer_case(&mut s, &study, 1, 2);
    s.finish_case(1, 6.0).unwrap();
    drop(s);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("\"ca\n") && !text.contains("\"ca{"), "the torn line was cut");
    assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    // A bad line in the middle is an error naming the line and the file.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "not json");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let e = ResultsLog::read(&file).unwrap_err().to_string();
    assert!(e.contains("line 3: not a results record") && e.ends_with("P05.jsonl"), "{e}");
}

const KILL_DIR: &str = "RADLENS_STUDY_KILL_DIR";

/// Helper for the kill test, run in a child process: a participant answering slowly through the real
/// session API, printing each step. Does nothing unless the kill test started it.
#[test]
#[ignore]
fn kill_helper_slow_participant() {
    let Some(dir) = std::env::var_os(KILL_DIR) else { return };
    let dir = PathBuf::from(dir);
    let study = Study::load(&dir.join("study.toml")).unwrap();
    let mut s = Session::open(&study, &dir.join("results"), "K1").unwrap();
    let out = std::io::stdout();
    while let Some(k) = s.first_unfinished() {
        let methods = s.plan[k].methods.clone();
        for (i, m) in methods.iter().enumerate() {
            for item in &study.questions.likert {
                if s.answer_of(k, &item.id, Some(m)).is_none() {
                    s.answer(k, &item.id, Some(m), json!(1 + (k + i) % 5), 0.1).unwrap();
                    writeln!(out.lock(), "answered {k} {} {m}", item.id).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(40));
                }
            }
        }
        s.answer(k, "preference", None, json!(methods[k % methods.len()]), 0.2).unwrap();
        s.finish_case(k, 1.0 + k as f64).unwrap();
        writeln!(out.lock(), "done {k}").unwrap();
    }
}

#[test]
fn a_killed_session_resumes_at_the_first_unanswered_case_with_earlier_answers_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 4, &["gradcam", "lime"], "side-by-side", false, "m");
    let study = Study::load(&path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "kill_helper_slow_participant", "--nocapture", "--test-threads=1"])
        .env(KILL_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        // Two cases finished and the third one partly answered: kill it mid-case.
        if line.starts_with("answered 2 ")
            && seen.iter().filter(|l| l.starts_with("answered 2 ")).count() == 2
        {
            child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush, the lock file stays
            break;
        }
    }
    child.wait().unwrap();
    assert!(seen.contains(&"done 1".to_string()), "{seen:?}");
    assert!(!seen.contains(&"done 2".to_string()), "{seen:?}");
    let results = dir.path().join("results");
    assert!(results.join("K1.jsonl.lock").exists(), "the killed session left its lock behind");
    let mut s = Session::open(&study, &results, "K1").unwrap();
    assert_eq!(s.first_unfinished(), Some(2));
    for k in 0..2 {
        assert!(s.is_done(k));
        assert!(s.missing(k).is_empty());
        for (i, m) in s.plan[k].methods.iter().enumerate() {
            assert_eq!(s.answer_of(k, "matches", Some(m)), Some(&json!(1 + (k + i) % 5)));
        }
    }
    // Every answer printed before the kill is on disk (each was flushed before it was printed).
    let m = s.plan[2].methods[0].clone();
    assert_eq!(s.answer_of(2, "matches", Some(&m)), Some(&json!(3)));
    assert_eq!(s.answer_of(2, "trust", Some(&m)), Some(&json!(3)));
    answer_case(&mut s, &study, 2, 4);
    s.finish_case(2, 3.0).unwrap();
    answer_case(&mut s, &study, 3, 4);
    s.finish_case(3, 3.0).unwrap();
    assert_eq!(s.first_unfinished(), None);
}

// ---------------------------------------------------------------- summary and export

/// Three participants, two methods; P1 revises one answer; P3 leaves case c2 unfinished.
fn hand_made_results(dir: &Path) -> Vec<PathBuf> {
    let start = |p: &str, plan: Value| json!({"kind":"start","participant":p,"study":"t","seed":1,"plan":plan,"unix_time":0.0});
    let ans = |p: &str, c: &str, q: &str, m: &str, pos: usize, v: Value, s: f64| json!({"kind":"answer","participant":p,"case":c,"question":q,"method":m,"position":pos,"letter":if pos == 1 {"A"} else {"B"},"value":v,"seconds":s,"unix_time":0.0});
    let done = |p: &str, c: &str, s: f64| json!({"kind":"case_done","participant":p,"case":c,"seconds":s,"unix_time":0.0});
    let gl = json!([{"case":"c1","methods":["gradcam","lime"]},{"case":"c2","methods":["lime","gradcam"]}]);
    let p2plan =
        json!([{"case":"c2","methods":["gradcam","lime"]},{"case":"c1","methods":["lime","gradcam"]}]);
    let files = [
        (
            "P1",
            vec![
                start("P1", gl.clone()),
                ans("P1", "c1", "trust", "gradcam", 1, json!(2), 1.0),
                ans("P1", "c1", "trust", "lime", 2, json!(2), 2.0),
                ans("P1", "c1", "trust", "gradcam", 1, json!(4), 3.0),
                ans("P1", "c1", "preference", "gradcam", 1, json!("gradcam"), 4.0),
                done("P1", "c1", 10.0),
                ans("P1", "c2", "trust", "gradcam", 2, json!(5), 1.0),
                ans("P1", "c2", "trust", "lime", 1, json!(3), 1.0),
                ans("P1", "c2", "preference", "gradcam", 2, json!("gradcam"), 1.0),
                json!({"kind":"answer","participant":"P1","case":"c2","question":"comment","value":"left lung, \"GGO\"","seconds":1.0,"unix_time":0.0}),
                done("P1", "c2", 20.0),
            ],
        ),
        (
            "P2",
            vec![
                start("P2", p2plan),
                ans("P2", "c2", "trust", "gradcam", 1, json!(3), 1.0),
                ans("P2", "c2", "trust", "lime", 2, json!(3), 1.0),
                ans("P2", "c2", "preference", "lime", 2, json!("lime"), 1.0),
                done("P2", "c2", 30.0),
                ans("P2", "c1", "trust", "gradcam", 2, json!(4), 1.0),
                ans("P2", "c1", "trust", "lime", 1, json!(2), 1.0),
                ans("P2", "c1", "preference", "gradcam", 2, json!("gradcam"), 1.0),
                done("P2", "c1", 40.0),
            ],
        ),
        (
            "P3",
            vec![
                start("P3", gl),
                ans("P3", "c1", "trust", "gradcam", 1, json!(5), 1.0),
                ans("P3", "c1", "trust", "lime", 2, json!(4), 1.0),
                ans("P3", "c1", "preference", "gradcam", 1, json!("gradcam"), 1.0),
                done("P3", "c1", 50.0),
                ans("P3", "c2", "trust", "gradcam", 2, json!(4), 6.0),
                ans("P3", "c2", "trust", "lime", 1, json!(1), 7.0),
                ans("P3", "c2", "preference", "gradcam", 2, json!("gradcam"), 7.0),
            ],
        ),
    ];
    files
        .iter()
        .map(|(p, recs)| {
            let path = dir.join(format!("{p}.jsonl"));
            let text: String = recs.iter().map(|r| r.to_string() + "\n").collect();
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn summary_matches_answers_worked_out_by_hand() {
    // Known values: Wilson 95% for 5/6 = [0.436497, 0.969947], for 1/6 = [0.030053, 0.563503];
    // sign test 5 vs 1 = 2·(C(6,0)+C(6,1))/2⁶ = 0.21875, 5 vs 0 = 2/2⁵ = 0.0625.
    assert!(close(sign_test_p(5, 1), 0.21875));
    assert!(close(sign_test_p(1, 5), 0.21875));
    assert!(close(sign_test_p(5, 0), 0.0625));
    assert!(close(sign_test_p(3, 3), 1.0));
    assert!(close(sign_test_p(0, 0), 1.0));
    // 10 vs 0: 2/1024.
    assert!(close(sign_test_p(10, 0), 2.0 / 1024.0));
    // Large n does not underflow: 600 vs 600 is p = 1, 700 vs 500 is tiny but positive.
    assert!(close(sign_test_p(600, 600), 1.0));
    let p = sign_test_p(700, 500);
    assert!(p > 0.0 && p < 1e-7, "{p}");
    let (lo, hi) = wilson_95(5, 6);
    assert!((lo - 0.436_497_177_8).abs() < 1e-9 && (hi - 0.969_946_630_3).abs() < 1e-9, "{lo} {hi}");
    assert_eq!(wilson_95(0, 0), (0.0, 1.0));

    let dir = tempfile::tempdir().unwrap();
    let files = hand_made_results(dir.path());
    let logs = read_logs(&files).unwrap();
    let s = summarise(&logs);
    assert_eq!(s.methods, ["gradcam", "lime"]);
    // Likert "trust": gradcam 4,5,3,4,5,4 → mean 25/6, sd 0.752773; lime 2,3,3,2,4,1 → 2.5, sd 1.048809.
    let g = s.likert.iter().find(|l| l.method == "gradcam").unwrap();
    assert_eq!((g.item.as_str(), g.n), ("trust", 6));
    assert!(close(g.mean, 25.0 / 6.0) && (g.sd.unwrap() - 0.752_772_652_7).abs() < 1e-9, "{g:?}");
    let l = s.likert.iter().find(|l| l.method == "lime").unwrap();
    assert!(close(l.mean, 2.5) && (l.sd.unwrap() - 1.048_808_848_2).abs() < 1e-9, "{l:?}");
    // Preference: gradcam 5 of 6, lime 1 of 6.
    let pg = s.preference.iter().find(|p| p.method == "gradcam").unwrap();
    assert_eq!((pg.chosen, pg.shown), (5, 6));
    assert!(close(pg.share, 5.0 / 6.0));
    assert!((pg.ci_low - 0.436_497_177_8).abs() < 1e-9 && (pg.ci_high - 0.969_946_630_3).abs() < 1e-9);
    let pl = s.preference.iter().find(|p| p.method == "lime").unwrap();
    assert_eq!((pl.chosen, pl.shown), (1, 6));
    assert!((pl.ci_low - 0.030_053_369_7).abs() < 1e-9 && (pl.ci_high - 0.563_502_822_2).abs() < 1e-9);
    // Sign tests: preference 5-1 (p 0.21875); trust differences 2,2,0,2,1,3 → 5-0, one tie (p 0.0625).
    let tp = s.sign_tests.iter().find(|t| t.question == "preference").unwrap();
    assert_eq!((tp.a_better, tp.b_better, tp.ties), (5, 1, 0));
    assert!(close(tp.p_value, 0.21875));
    let tt = s.sign_tests.iter().find(|t| t.question == "trust").unwrap();
    assert_eq!((tt.method_a.as_str(), tt.a_better, tt.b_better, tt.ties), ("gradcam", 5, 0, 1));
    assert!(close(tt.p_value, 0.0625));
    // Participants: completion and time.
    let p = |id: &str| s.participants.iter().find(|p| p.participant == id).unwrap().clone();
    assert_eq!((p("P1").cases_done, p("P1").cases_total), (2, 2));
    assert!(close(p("P1").seconds_total, 30.0) && close(p("P1").seconds_median.unwrap(), 15.0));
    assert_eq!((p("P3").cases_done, p("P3").cases_total), (1, 2));
    assert!(close(p("P3").seconds_total, 50.0));

    // The CLI prints the same figures and writes summary.json and the plots.
    let out = dir.path().join("summary");
    let mut args = vec!["study", "summary"];
    let names: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    args.extend(names.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap()]);
    let o = radlens(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("gradcam      0.833 [0.436, 0.970] (5/6)"), "{text}");
    assert!(text.contains("trust                    gradcam      4.17 ± 0.75 (6)"), "{text}");
    assert!(text.contains("gradcam vs lime: 5-1 (ties 0), p = 0.2188"), "{text}");
    assert!(text.contains("P3") && text.contains("1/2"), "{text}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["preference"][0]["chosen"], 5);
    assert!((json["sign_tests"][1]["p_value"].as_f64().unwrap() - 0.0625).abs() < 1e-12);
    for png in ["likert.png", "preference.png"] {
        let v = radlens::io::raster::load_raster(&out.join(png)).unwrap();
        assert_eq!(v.dims(), [1, 480, 800], "{png}");
        let (lo, hi) = v.min_max();
        assert!(lo < 100.0 && hi > 200.0, "{png} is not blank");
    }
    // The same participant twice is refused.
    let o = radlens(&["study", "summary", names[0].as_str(), names[0].as_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("participant 'P1' also has"));
}

#[test]
fn export_writes_one_tidy_row_per_answer() {
    let dir = tempfile::tempdir().unwrap();
    let files = hand_made_results(dir.path());
    let logs = read_logs(&files[..1]).unwrap();
    let csv = to_csv(&rows(&logs[0]));
    let want = "participant,case,method,position,question,value,seconds\n\
P1,c1,gradcam,1,trust,4,10.000\n\
P1,c1,lime,2,trust,2,10.000\n\
P1,c1,gradcam,1,preference,1,10.000\n\
P1,c1,lime,2,preference,0,10.000\n\
P1,c2,gradcam,2,trust,5,20.000\n\
P1,c2,lime,1,trust,3,20.000\n\
P1,c2,lime,1,preference,0,20.000\n\
P1,c2,gradcam,2,preference,1,20.000\n\
P1,c2,,,comment,\"left lung, \"\"GGO\"\"\",20.000\n";
    assert_eq!(csv, want);

    let out = dir.path().join("results.csv");
    let names: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    let mut args = vec!["study", "export"];
    args.extend(names.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap()]);
    let o = radlens(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with(want), "{text}");
    // P3's unfinished case keeps the seconds of its last answer.
    assert!(text.contains("P3,c2,lime,1,trust,1,7.000"), "{text}");
    assert_eq!(text.lines().count(), 1 + 9 + 8 + 8);
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrote 25 rows from 3 participants"));
    // A file that is not a results file: exit 2, naming it.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"kind\":\"answer\"}\n").unwrap();
    let o = radlens(&["study", "export", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.jsonl"));
}

// ---------------------------------------------------------------- prepare

#[test]
fn prepare_computes_every_map_once_with_a_fixture_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_study(dir.path(), 2, &["gradcam", "saliency"], "side-by-side", false, &fixture_model());
    let o = radlens(&["study", "prepare", path.to_str().unwrap(), "--device", "cpu"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("prepared 6 maps, 0 already cached, 0 failed"));
    let study = Study::load(&path).unwrap();
    let cache = MapCache::open(&dir.path().join("study.cache")).unwrap();
    assert_eq!(cache.len(), 6, "prediction + 2 methods for 2 cases");
    for case in &study.cases {
        for m in ["prediction", "gradcam", "saliency"] {
            let (v, h, w) = cache.load(&MapKey::new(&study, case, 0, m)).unwrap();
            assert_eq!((h, w), (20, 24));
            assert!(v.iter().all(|x| x.is_finite()));
            assert!(v.iter().any(|&x| x != v[0]), "{m}: constant map");
        }
    }
    // The same map as `radlens explain` gives.
    let heat = dir.path().join("heat.npy");
    let o = radlens(&[
        "explain",
        "--model",
        &fixture_model(),
        "--method",
        "saliency",
        dir.path().join("img0.png").to_str().unwrap(),
        "--out",
        heat.to_str().unwrap(),
        "--seed",
        "7",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (direct, _) = radlens::io::npy::read_npy_f32(&heat).unwrap();
    assert_eq!(cache.load(&MapKey::new(&study, &study.cases[0], 0, "saliency")).unwrap().0, direct);
    // A second run skips everything; the participant window's loader finds every map.
    let o = radlens(&["study", "prepare", path.to_str().unwrap(), "--device", "cpu"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("prepared 0 maps, 6 already cached"));
    let prepared = radlens::ui::study::PreparedStudy::load(&study).unwrap();
    assert_eq!(prepared.cases.len(), 2);
    // A study whose maps are missing is refused by the window's loader, naming the case.
    let other =
        write_study(&dir.path().join("x").tap_mkdir(), 1, &["gradcam", "lime"], "side-by-side", false, "m");
    let e = radlens::ui::study::PreparedStudy::load(&Study::load(&other).unwrap()).unwrap_err().to_string();
    assert!(e.contains("case 'c0'") && e.contains("not prepared"), "{e}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

// ---------------------------------------------------------------- the participant's window

mod ui {
    use super::*;
    use eframe::egui;
    use eframe::egui::accesskit::Role;
    use egui_kittest::kittest::Queryable;
    use egui_kittest::Harness;
    use radlens::ui::study::{PreparedStudy, StudyPanel};

    fn harness(study: &Study, results: &Path) -> Harness<'static, StudyPanel> {
        let prepared = PreparedStudy::load(study).unwrap();
        let panel = StudyPanel::new(study.clone(), prepared, results.to_path_buf());
        Harness::builder()
            .with_size(egui::vec2(1400.0, 1600.0))
            .build_ui_state(|ui, panel: &mut StudyPanel| panel.show(ui), panel)
    }

    /// Whether a text run on screen reads exactly `text` (a plain label's text is its text run's value).
    fn shows_text(h: &Harness<'static, StudyPanel>, text: &str) -> bool {
        let want = format!("value: {text:?},");
        h.query_all_by_role(Role::TextRun).any(|n| format!("{n:?}").contains(&want))
    }

    fn start(h: &mut Harness<'static, StudyPanel>, id: &str) {
        h.get_by_role(Role::TextInput).focus();
        h.run();
        h.get_by_role(Role::TextInput).type_text(id);
        h.run();
        h.get_by_label("Start").click();
        h.run();
    }

    /// Clicks the `nth` radio button labelled `label` (Likert rows come in screen order).
    fn radio(h: &mut Harness<'static, StudyPanel>, label: &str, nth: usize) {
        let nodes: Vec<_> = h.get_all_by_role_and_label(Role::RadioButton, label).collect();
        nodes[nth].click();
        h.run();
    }

    #[test]
    fn a_simulated_participant_answers_every_case_and_the_results_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_study(dir.path(), 2, &["gradcam", "lime"], "side-by-side", false, "m");
        let study = Study::load(&path).unwrap();
        fill_cache(&study);
        let results = dir.path().join("results");
        // A name is refused, and nothing is written.
        let mut h = harness(&study, &results);
        start(&mut h, "Jane Doe");
        assert!(h.query_all_by_label_contains("is not a pseudonym").next().is_some());
        assert!(h.query_by_label("Begin").is_none());
        assert!(!results.join("Jane Doe.jsonl").exists());
        drop(h);
        // A pseudonym is accepted.
        let mut h = harness(&study, &results);
        start(&mut h, "P07");
        h.get_by_label("Rate the maps.");
        h.get_by_label("Begin").click();
        h.run();
        for k in 0..2 {
            h.get_by_label(&format!("Case {} of 2", k + 1));
            // Blinded: letters only, never a method name.
            assert!(h.query_all_by_label_contains("gradcam").next().is_none());
            assert!(h.query_all_by_label_contains("lime").next().is_none());
            assert!(h.query_all_by_role_and_label(Role::Label, "A").next().is_some());
            assert!(h.query_all_by_role_and_label(Role::Label, "B").next().is_some());
            // "Next" before answering moves nothing.
            h.get_by_label("Next").click();
            h.run();
            h.get_by_label(&format!("Case {} of 2", k + 1));
            // Rows: matches A, matches B, trust A, trust B → 4, 2, 5, 3.
            // Each value appears once per row, so the row-th radio with that label is in that row.
            for (row, v) in [(0, "4"), (1, "2"), (2, "5"), (3, "3")] {
                radio(&mut h, v, row);
            }
            radio(&mut h, "B", 0);
            if k == 1 {
                h.get_by_role(Role::MultilineTextInput).focus();
                h.run();
                h.get_by_role(Role::MultilineTextInput).type_text("hard case");
                h.run();
            }
            h.get_by_label("Next").click();
            h.run();
        }
        h.get_by_label_contains("Thank you");
        h.get_by_label("Close").click();
        h.run();
        assert!(h.state().close_requested());
        let log = ResultsLog::read(&results.join("P07.jsonl")).unwrap();
        assert_eq!(log.participant, "P07");
        assert_eq!(log.done.len(), 2);
        for (k, entry) in log.plan.iter().enumerate() {
            let (a, b) = (entry.methods[0].as_str(), entry.methods[1].as_str());
            assert_eq!(log.answer(&entry.case, "matches", Some(a)), Some(&json!(4)), "case {k}");
            assert_eq!(log.answer(&entry.case, "matches", Some(b)), Some(&json!(2)));
            assert_eq!(log.answer(&entry.case, "trust", Some(a)), Some(&json!(5)));
            assert_eq!(log.answer(&entry.case, "trust", Some(b)), Some(&json!(3)));
            assert_eq!(
                log.answer(&entry.case, "preference", None),
                Some(&json!(b)),
                "B is the second position"
            );
        }
        assert_eq!(log.answer(&log.plan[1].case, "comment", None), Some(&json!("hard case")));
    }

    #[test]
    fn pause_hides_the_case_and_a_restarted_window_resumes_where_the_participant_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_study(dir.path(), 3, &["gradcam", "lime"], "one-at-a-time", false, "m");
        let study = Study::load(&path).unwrap();
        fill_cache(&study);
        let results = dir.path().join("results");
        {
            let mut h = harness(&study, &results);
            start(&mut h, "P08");
            h.get_by_label("Begin").click();
            h.run();
            // One at a time: map A, then map B, then the preference page.
            for step in ["A", "B"] {
                assert!(shows_text(&h, step), "map {step} not shown");
                let other = if step == "A" { "B" } else { "A" };
                assert!(!shows_text(&h, other), "map {other} shown with {step}");
                // Two Likert rows: "3" in the first, "4" in the second.
                radio(&mut h, "3", 0);
                radio(&mut h, "4", 1);
                h.get_by_label("Next").click();
                h.run();
            }
            radio(&mut h, "A", 0);
            h.get_by_label("Pause").click();
            h.run();
            assert!(h.query_by_label("Next").is_none(), "paused: no case on screen");
            h.get_by_label("Resume").click();
            h.run();
            h.get_by_label("Next").click();
            h.run();
            h.get_by_label("Case 2 of 3");
            radio(&mut h, "5", 0);
            // The window closes here (dropped) mid-case.
        }
        let mut h = harness(&study, &results);
        start(&mut h, "P08");
        assert!(h.query_all_by_label_contains("exists already").next().is_some());
        h.get_by_label("Resume session").click();
        h.run();
        h.get_by_label("Continue (1 cases done)").click();
        h.run();
        h.get_by_label("Case 2 of 3");
        let s = h.state().session().unwrap();
        let m = s.plan[1].methods[0].clone();
        assert_eq!(
            s.answer_of(1, "matches", Some(&m)),
            Some(&json!(5)),
            "the answer given before closing is kept"
        );
        let first = &s.plan[0];
        assert_eq!(s.answer_of(0, "preference", None), Some(&json!(first.methods[0])));
        assert_eq!(s.answer_of(0, "trust", Some(&first.methods[1])), Some(&json!(4)));
    }
}
