//! The README and CONTRIBUTING say what is true: every repository path they name exists, and
//! every `gcl-repro ...` subcommand they list parses (its `--help` succeeds).
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const DOCS: [&str; 4] = ["README.md", "CONTRIBUTING.md", "results/README.md", "CHANGELOG.md"];

/// Folders and files at the top of the repository a path may start with.
const ROOTS: [&str; 10] =
    ["src/", "tests/", "experiments/", "scripts/", "results/", "assets/", "docs/", ".ci/", "Makefile", "Cargo.toml"];

fn read(doc: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap()
}

/// The `code spans` of a Markdown text.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// Repository paths named in code spans: each whitespace-separated word that starts at a root,
/// without placeholders (`<...>`, `{...}`, `*`, upper-case words such as `M.toml` or `DIR`).
fn named_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for span in code_spans(text) {
        for word in span.split_whitespace() {
            let word = word.trim_end_matches([',', ';', ':', ')', '.']).trim_start_matches('(');
            let placeholder = word.contains(['<', '{', '*', '$', '|']) || word.contains("ROW") || word.contains("/N");
            if ROOTS.iter().any(|r| word.starts_with(r)) && !placeholder {
                out.insert(word.split("::").next().unwrap().to_string());
            }
        }
    }
    out
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in DOCS {
        for path in named_paths(&read(doc)) {
            checked += 1;
            // Results written by commands that have not run here (full scale) are named as
            // where they go, not as files that exist.
            let generated = path.starts_with("results/cache")
                || path == "results/REPORT.md"
                || path.starts_with("results/tables")
                || path.starts_with("results/figures");
            if !generated && !root.join(&path).exists() {
                missing.push(format!("{doc}: `{path}`"));
            }
        }
    }
    assert!(checked > 20, "only {checked} paths found: the extraction broke");
    assert!(missing.is_empty(), "paths named in the docs that do not exist:\n{}", missing.join("\n"));
}

/// `gcl-repro a b ...` in a code span: the subcommand words (lower-case words before the first
/// option or argument).
fn subcommands(text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for span in code_spans(text) {
        let Some(rest) = span.strip_prefix("gcl-repro ") else { continue };
        let mut words = Vec::new();
        for w in rest.split_whitespace() {
            if w.starts_with('-') || !w.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                break;
            }
            words.push(w.to_string());
        }
        if !words.is_empty() {
            out.insert(words);
        }
    }
    out
}

#[test]
fn every_subcommand_the_docs_list_parses() {
    let mut all = BTreeSet::new();
    for doc in DOCS {
        all.extend(subcommands(&read(doc)));
    }
    // The README's command table also lists groups as `cache ls / show KEY / ...`: the first
    // word of each alternative is a subcommand of the group.
    for line in read("README.md").lines().filter(|l| l.starts_with("| `gcl-repro ")) {
        let cell = line.split('`').nth(1).unwrap_or_default();
        let mut words = cell.trim_start_matches("gcl-repro ").split(" / ");
        let first: Vec<&str> = words.next().unwrap_or_default().split_whitespace().collect();
        if let [group, _, ..] = first.as_slice() {
            for alt in words {
                if let Some(sub) =
                    alt.split_whitespace().next().filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                {
                    all.insert(vec![group.to_string(), sub.to_string()]);
                }
            }
        }
    }
    assert!(all.len() > 15, "{all:?}");
    let mut bad = Vec::new();
    for words in &all {
        // A word that is an argument rather than a subcommand (`report experiments/...` has
        // none here: arguments hold a `/` or `.`, filtered above) is dropped from the right
        // until the command parses, as long as one subcommand word remains.
        let ok = (1..=words.len()).rev().any(|n| {
            Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
                .args(&words[..n])
                .arg("--help")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        let top_ok = Command::new(env!("CARGO_BIN_EXE_gcl-repro"))
            .arg(&words[0])
            .arg("--help")
            .output()
            .unwrap()
            .status
            .success();
        if !ok || !top_ok {
            bad.push(words.join(" "));
        }
    }
    assert!(bad.is_empty(), "subcommands named in the docs that do not parse: {bad:?}");
}

/// The subcommands `gcl-repro ARGS --help` lists (without `help`).
fn listed_subcommands(args: &[&str]) -> Vec<String> {
    let help = Command::new(env!("CARGO_BIN_EXE_gcl-repro")).args(args).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let listed: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(!listed.is_empty(), "{help}");
    listed
}

#[test]
fn the_readme_command_table_lists_every_subcommand() {
    let readme = read("README.md");
    let listed = listed_subcommands(&[]);
    assert!(listed.len() > 8, "{listed:?}");
    for c in listed {
        assert!(
            readme.contains(&format!("`gcl-repro {c}")),
            "`gcl-repro {c}` is missing from the README's command table"
        );
    }
    // `data` subcommands each appear in the table (convert-inat was missing once), as the CLI lists them.
    for sub in listed_subcommands(&["data"]) {
        assert!(
            readme.lines().any(|l| l.starts_with("| `gcl-repro data") && l.contains(sub.as_str())),
            "data {sub} is missing from the README's command table"
        );
    }
}

/// `CHANGELOG.md` says what the current engine changed: it has a section for `ENGINE_VERSION`,
/// and that is its first section (newest first).
#[test]
fn the_changelog_describes_the_current_engine_first() {
    let text = read("CHANGELOG.md");
    let first = text.lines().find(|l| l.starts_with("## Engine ")).expect("CHANGELOG.md has no `## Engine N` section");
    assert_eq!(
        first,
        format!("## Engine {}", gcl_repro::ENGINE_VERSION),
        "CHANGELOG.md's first section must describe ENGINE_VERSION (src/lib.rs); add what this version changed"
    );
}

/// Settings whose documented default lies outside the repository: a value to override, not a
/// document to read (the data root of the team's machines).
const OUTSIDE_DEFAULTS: [&str; 1] = ["../shared/datasets"];

/// The docs name no file outside the repository: a reader of a fresh clone cannot open it, and a
/// figure taken from it cannot be rerun from here.
#[test]
fn no_doc_names_a_path_outside_the_repository() {
    let mut outside = Vec::new();
    for doc in DOCS {
        for span in code_spans(&read(doc)) {
            for word in span.split_whitespace() {
                let word = word.trim_end_matches([',', ';', ':', ')', '.']).trim_start_matches('(');
                let leaves = word.starts_with("../")
                    || word.starts_with('~')
                    || (word.starts_with('/') && word.len() > 1)
                    || word.starts_with("shared/");
                if leaves && !OUTSIDE_DEFAULTS.contains(&word) {
                    outside.push(format!("{doc}: `{word}`"));
                }
            }
        }
    }
    assert!(
        outside.is_empty(),
        "the docs name paths outside the repository (copy what they need into it):\n{}",
        outside.join("\n")
    );
}
