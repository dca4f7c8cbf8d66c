//! The crate's layering, checked from its source: every `crate::` path a module names must point
//! to a module in a lower layer (docs/ARCHITECTURE.md draws the layers), and no files form a
//! circle of imports. Reads `src/` as text; test modules (`#[cfg(test)]` to the end of a file)
//! are left out, since tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom. A module may name modules of any lower layer, none of its own or above.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["commands"],
    &["cli"],
    &["runner", "conform", "fuzz"],
    &["oracle", "live"],
    &["probe", "scenario", "telemetry"],
    &["report"],
    &["metrics"],
    &["results"],
    &["server"],
    &["wire"],
    &["protocol", "tls", "util", "corpus"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// A source file and the module path it defines (`src/runner/mod.rs` → `runner`).
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    text: String,
}

fn source_files(root: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("below src/").with_extension("");
                let mut module: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                if module.last().is_some_and(|m| m == "mod") {
                    module.pop();
                }
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                files.push(SourceFile { path, module, text: without_tests(&text) });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The file without its test module and without comments.
fn without_tests(text: &str) -> String {
    let code = text.find("#[cfg(test)]\nmod tests").map_or(text, |at| &text[..at]);
    code.lines().map(|line| line.find("//").map_or(line, |at| &line[..at])).collect::<Vec<_>>().join("\n")
}

/// Every module path the code names: `use` trees expanded, and inline `crate::a::b` paths.
fn named_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = find_use(rest) {
        let statement = &rest[at + 4..];
        let end = statement.find(';').unwrap_or(statement.len());
        expand_use_tree("", statement[..end].trim(), &mut paths);
        rest = &statement[end..];
    }
    let bytes = text.as_bytes();
    for start in
        text.match_indices("crate::").map(|(i, _)| i).chain(text.match_indices("super::").map(|(i, _)| i))
    {
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b':');
        if boundary {
            let path: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path.trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The next `use ` that starts a statement (after `pub`, `pub(crate)` or at a line start).
fn find_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("use ") {
        let at = from + found;
        let before = text[..at].trim_end_matches(' ');
        if before.is_empty() || before.ends_with('\n') || before.ends_with("pub") || before.ends_with(')') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use_tree(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    match tree.find('{') {
        None => {
            let item = tree.split(" as ").next().unwrap_or(tree).trim();
            out.push(format!("{prefix}{item}"));
        }
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut piece = String::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_use_tree(&format!("{prefix}{head}"), &piece, out);
                        piece.clear();
                        continue;
                    }
                    _ => {}
                }
                piece.push(c);
            }
            if !piece.trim().is_empty() {
                expand_use_tree(&format!("{prefix}{head}"), &piece, out);
            }
        }
    }
}

/// The module a path names, as the longest prefix that is a module file; `None` outside the crate.
fn resolve(
    from: &[String],
    is_mod_file: bool,
    path: &str,
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut parts = path.split("::").filter(|p| !p.is_empty()).peekable();
    let mut base: Vec<String> = match parts.peek().copied() {
        Some("crate") => {
            parts.next();
            Vec::new()
        }
        Some("super") => {
            // `super` of a file `a/b.rs` is `a`; of `a/mod.rs` (module `a`) it is the crate root.
            let mut base = from.to_vec();
            if !is_mod_file || !base.is_empty() {
                base.pop();
            }
            parts.next();
            while parts.peek() == Some(&"super") {
                base.pop();
                parts.next();
            }
            base
        }
        _ => return None,
    };
    let mut best = None;
    for part in parts {
        if part == "self" {
            continue;
        }
        base.push(part.to_owned());
        if modules.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

struct Graph {
    /// file module → (named module → the first path that named it).
    edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>,
    files: BTreeMap<Vec<String>, PathBuf>,
}

fn graph(root: &Path) -> Graph {
    let files = source_files(root);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    for file in &files {
        let is_mod_file =
            file.path.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let out = edges.entry(file.module.clone()).or_default();
        for path in named_paths(&file.text) {
            if let Some(target) = resolve(&file.module, is_mod_file, &path, &modules)
                && target != file.module
            {
                out.entry(target).or_insert(path);
            }
        }
    }
    Graph { edges, files: files.into_iter().map(|f| (f.module, f.path)).collect() }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The violations of the layer table in `graph`, one line each.
fn layer_violations(graph: &Graph) -> Vec<String> {
    let mut violations = Vec::new();
    for (from, targets) in &graph.edges {
        let from_top = from.first().map_or("lib", String::as_str);
        let Some(from_layer) = layer_of(from_top) else {
            violations.push(format!(
                "{}: module `{from_top}` is in no layer of LAYERS",
                graph.files[from].display()
            ));
            continue;
        };
        let mut seen = BTreeSet::new();
        for (target, path) in targets {
            let Some(to_top) = target.first() else { continue };
            if to_top == from_top || !seen.insert(to_top) {
                continue;
            }
            match layer_of(to_top) {
                Some(to_layer) if to_layer > from_layer => {}
                _ => violations.push(format!(
                    "{} names `{path}`: `{from_top}` (layer {from_layer}) may not import `{to_top}`",
                    graph.files[from].display()
                )),
            }
        }
    }
    violations
}

/// Circles of files: edges from a module to its own descendants (declaring and re-exporting
/// children) are structure, not dependency, and are left out.
fn file_cycles(graph: &Graph) -> Vec<Vec<Vec<String>>> {
    let depends = |from: &Vec<String>| -> Vec<Vec<String>> {
        graph.edges.get(from).map_or_else(Vec::new, |targets| {
            targets.keys().filter(|t| !(t.len() > from.len() && t.starts_with(from))).cloned().collect()
        })
    };
    // Tarjan's strongly connected components.
    struct State {
        index: usize,
        indices: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on_stack: BTreeSet<Vec<String>>,
        components: Vec<Vec<Vec<String>>>,
    }
    fn visit(node: &Vec<String>, depends: &dyn Fn(&Vec<String>) -> Vec<Vec<String>>, s: &mut State) {
        s.indices.insert(node.clone(), s.index);
        s.low.insert(node.clone(), s.index);
        s.index += 1;
        s.stack.push(node.clone());
        s.on_stack.insert(node.clone());
        for next in depends(node) {
            if !s.indices.contains_key(&next) {
                visit(&next, depends, s);
                let low = s.low[node].min(s.low[&next]);
                s.low.insert(node.clone(), low);
            } else if s.on_stack.contains(&next) {
                let low = s.low[node].min(s.indices[&next]);
                s.low.insert(node.clone(), low);
            }
        }
        if s.low[node] == s.indices[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(&top);
                let done = &top == node;
                component.push(top);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                s.components.push(component);
            }
        }
    }
    let mut state = State {
        index: 0,
        indices: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.files.keys() {
        if !state.indices.contains_key(node) {
            visit(node, &depends, &mut state);
        }
    }
    state.components
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let violations = layer_violations(&graph(&src_dir()));
    assert!(
        violations.is_empty(),
        "imports that climb (see docs/ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let cycles = file_cycles(&graph(&src_dir()));
    let described: Vec<String> =
        cycles.iter().map(|c| c.iter().map(|m| m.join("::")).collect::<Vec<_>>().join(" ↔ ")).collect();
    assert!(described.is_empty(), "files that import each other:\n{}", described.join("\n"));
}

#[test]
fn the_checker_sees_a_climbing_import_and_a_circle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("protocol")).expect("mkdir");
    std::fs::create_dir_all(src.join("runner")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod protocol;\npub mod runner;\n").expect("write");
    std::fs::write(src.join("protocol/mod.rs"), "pub mod a;\npub mod b;\n").expect("write");
    std::fs::write(src.join("protocol/a.rs"), "use super::b::B;\nuse crate::runner::{x::{Y, Z}, W};\n")
        .expect("write");
    std::fs::write(src.join("protocol/b.rs"), "use super::a::A;\npub struct B;\n").expect("write");
    std::fs::write(src.join("runner/mod.rs"), "pub mod x;\n").expect("write");
    std::fs::write(src.join("runner/x.rs"), "pub struct Y;\n").expect("write");
    let graph = graph(src);
    let violations = layer_violations(&graph);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("`protocol` (layer 11) may not import `runner`"), "{violations:?}");
    let cycles = file_cycles(&graph);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].len(), 2);
}
