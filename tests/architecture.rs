//! The house rules of CONTRIBUTING.md's folder map, checked on the source: no two files of the
//! library import each other (directly or round a circle), and along the flow
//! data -> models -> losses -> training -> cache -> pipeline -> report no folder imports one
//! after it. Imports are `crate::...` and `super::...` paths outside comments and test modules.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The flow of the library: each may import the ones before it, never one after it.
const FLOW: [&str; 7] = ["data", "models", "losses", "training", "cache", "pipeline", "report"];

/// Leaf modules of the flow that any folder may use: constants with no imports of their own
/// (training writes the run files whose names the cache owns).
const LEAVES: [&str; 1] = ["cache::files"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library file as its module path (`training::epoch`), with its text; the binary's
/// `main.rs` and `cli/` are left out (they import the library as `gcl_repro`).
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "cli" {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src()).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            if name == "lib" || name == "main" {
                continue;
            }
            out.insert(name, code_of(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// The text without comment lines and without the `#[cfg(test)] mod tests { ... }` block.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // Skip the item that follows (a test module): up to its matching brace.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if opened && depth <= 0 {
                    break;
                }
            }
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// `crate::a::b` / `super::a` paths of a file, each with the items of a `{...}` group after it.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        if i > 0 && code[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let head: Vec<String> = rest[..end].split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |j| end + j)];
            for item in group.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").split_whitespace().next().unwrap_or("");
                if !first.is_empty() && first != "self" {
                    out.push([head.clone(), vec![first.to_string()]].concat());
                }
            }
        }
        out.push(head);
    }
    out
}

/// The library file a path names: the longest module prefix that exists.
fn target(path: &[String], from: &str, files: &BTreeMap<String, String>) -> Option<String> {
    let mut abs: Vec<String> = match path.first().map(String::as_str) {
        Some("crate") => vec![],
        Some("super") => {
            let mut base: Vec<String> = from.split("::").map(String::from).collect();
            let is_folder = src().join(from.replace("::", "/")).join("mod.rs").is_file();
            if !is_folder {
                base.pop();
            }
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                rest = &rest[1..];
                if rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                }
            }
            return target(&[vec!["crate".to_string()], base, rest.to_vec()].concat(), from, files);
        }
        _ => return None,
    };
    abs.extend(path[1..].iter().cloned());
    (1..=abs.len()).rev().map(|n| abs[..n].join("::")).find(|m| files.contains_key(m))
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let files = modules();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, code) in &files {
        let e = edges.entry(name.clone()).or_default();
        for p in paths(code) {
            if let Some(t) = target(&p, name, &files) {
                // A folder's own files use their parent's items freely (`super::X` in mod.rs).
                if t != *name && !name.starts_with(&format!("{t}::")) {
                    e.insert(t);
                }
            }
        }
    }
    edges
}

/// Groups of files that import each other round a circle (Tarjan's strongly connected parts).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        for w in t.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                t.out.push(group);
            }
        }
    }
    let mut t = T { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_file_imports_itself_round_a_circle() {
    let found = circles(&edges());
    assert!(
        found.is_empty(),
        "files that import each other (break each circle by moving the shared piece down): {found:?}"
    );
}

#[test]
fn the_flow_only_imports_backwards() {
    let top = |m: &str| m.split("::").next().unwrap().to_string();
    let rank = |m: &str| if LEAVES.contains(&m) { None } else { FLOW.iter().position(|f| *f == top(m)) };
    let mut upward = Vec::new();
    for (from, tos) in edges() {
        for to in tos {
            if let (Some(a), Some(b)) = (rank(&from), rank(&to)) {
                if b > a {
                    upward.push(format!("{from} -> {to}"));
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports against the flow {}: {upward:?}", FLOW.join(" -> "));
    for leaf in LEAVES {
        assert_eq!(edges().get(leaf).map(BTreeSet::len), Some(0), "{leaf} is a leaf: it imports nothing");
    }
}

#[test]
fn the_checker_sees_imports_and_circles() {
    // The parser on a known snippet, so a test that finds nothing means nothing to find.
    let code = code_of("// crate::ignored::path\nuse super::{plan::x, graph};\nfn f() { crate::cache::store::f() }\n#[cfg(test)]\nmod tests {\n use crate::report;\n}\n");
    let found: Vec<String> = paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["crate::cache::store::f", "super::plan", "super::graph", "super"]);
    let e: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .iter()
        .map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()])))
        .collect();
    assert_eq!(circles(&e), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
    assert!(edges().get("pipeline::plan").is_some_and(|t| t.contains("pipeline::graph")), "plan imports the graph");
}
