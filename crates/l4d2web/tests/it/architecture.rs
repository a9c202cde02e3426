//! The layering rules of ARCHITECTURE.md, checked over the source: no
//! import cycle among the crate's files, the domain never names the web
//! layer, handlers hold no SQL, one module knows the job kinds, one module
//! reads the environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file as a module path: `src/servers/mod.rs` → `["servers"]`.
type Module = Vec<String>;

struct Source {
    path: PathBuf,
    /// Without comments, string literals and `#[cfg(test)] mod tests`.
    code: String,
    /// Without comments, string literals kept.
    with_strings: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read_sources() -> BTreeMap<Module, Source> {
    let root = src_dir();
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module
                .last()
                .is_some_and(|m| m == "mod" || m == "lib" || m == "main")
            {
                module.pop();
            }
            if path.file_name().is_some_and(|n| n == "main.rs") {
                continue; // the binary: `l4d2web::cli::main()` only
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let without_tests = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            out.insert(
                module,
                Source {
                    path,
                    code: strip(without_tests, true),
                    with_strings: strip(without_tests, false),
                },
            );
        }
    }
    out
}

/// Removes comments (and, if asked, the contents of string literals).
fn strip(text: &str, strings: bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' && !is_char_literal(b, i) {
            // A string literal; a raw one ends at its quote and hashes.
            let raw = i > 0 && (b[i - 1] == b'r' || b[i - 1] == b'#');
            let hashes = b[..i].iter().rev().take_while(|&&c| c == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            out.push('"');
            i += 1;
            while i < b.len() {
                if !raw && b[i] == b'\\' {
                    if !strings {
                        out.push(b[i] as char);
                        out.push(b[i + 1] as char);
                    }
                    i += 2;
                    continue;
                }
                if b[i..].starts_with(&close) {
                    break;
                }
                if !strings {
                    out.push(b[i] as char);
                }
                i += 1;
            }
            out.push('"');
            i += close.len();
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Whether the quote at `i` is a character literal (`'"'`, `'\"'`,
/// `b'"'`), not the start of a string.
fn is_char_literal(b: &[u8], i: usize) -> bool {
    (i > 0 && b[i - 1] == b'\'') || (i > 1 && b[i - 1] == b'\\' && b[i - 2] == b'\'')
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts at `crate::`, `super::` or `self::` (with use
/// trees expanded one level), or at a child module declared with `mod`.
fn referenced_paths(module: &Module, code: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    let children: Vec<String> = code
        .split("mod ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            rest[name.len()..]
                .trim_start()
                .starts_with(';')
                .then_some(name)
        })
        .collect();
    // The module a relative path starts from: a mod.rs file is its module,
    // any other file's `super` is its parent.
    let here: Module = module.clone();
    // `super` of `a/b.rs` and of `a/b/mod.rs` (module a::b) is `a`.
    let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
        if !starts_word || !is_ident(chars[i]) {
            i += 1;
            continue;
        }
        let word: String = chars[i..].iter().take_while(|&&c| is_ident(c)).collect();
        let after = i + word.len();
        if !chars[after..].starts_with(&[':', ':']) {
            i = after;
            continue;
        }
        let base: Option<Module> = match word.as_str() {
            "crate" => Some(Vec::new()),
            "super" => Some(parent.clone()),
            "self" => Some(here.clone()),
            w if children.iter().any(|c| c == w) => {
                let mut m = here.clone();
                m.push(w.to_string());
                Some(m)
            }
            _ => None,
        };
        let Some(mut base) = base else {
            i = after;
            continue;
        };
        // Read `::a::b` segments, `super::super`, and one `{x, y::z}` tree.
        let mut j = after;
        let mut group = None;
        while chars[j..].starts_with(&[':', ':']) {
            j += 2;
            if chars.get(j) == Some(&'{') {
                let end = chars[j..]
                    .iter()
                    .position(|&c| c == '}')
                    .map_or(chars.len(), |p| j + p);
                group = Some(chars[j + 1..end].iter().collect::<String>());
                j = end;
                break;
            }
            let seg: String = chars[j..].iter().take_while(|&&c| is_ident(c)).collect();
            if seg.is_empty() {
                break;
            }
            j += seg.len();
            if seg == "super" {
                base.pop();
            } else {
                base.push(seg);
            }
        }
        match group {
            None => paths.push(base),
            Some(items) => {
                for item in items.split(',') {
                    let mut p = base.clone();
                    for seg in item.split("::") {
                        let seg: String = seg.trim().chars().take_while(|&c| is_ident(c)).collect();
                        if !seg.is_empty() && seg != "self" {
                            p.push(seg);
                        }
                    }
                    paths.push(p);
                }
            }
        }
        i = j.max(after);
    }
    paths
}

/// The source file a path lands in: its longest prefix that is a module.
fn resolve<'a>(path: &Module, modules: &'a BTreeMap<Module, Source>) -> Option<&'a Module> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

fn graph(modules: &BTreeMap<Module, Source>) -> BTreeMap<Module, BTreeSet<Module>> {
    modules
        .iter()
        .map(|(module, src)| {
            let deps = referenced_paths(module, &src.code)
                .iter()
                .filter_map(|p| resolve(p, modules))
                .filter(|m| *m != module)
                .cloned()
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

fn show(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("/")
    }
}

/// A cycle in the graph, if any (depth-first search).
fn find_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<Module, Mark>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|s| s == m).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(m.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for dep in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in graph.keys() {
        if let Some(c) = visit(m, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_import_cycle_among_source_files() {
    let modules = read_sources();
    assert!(modules.len() > 30, "found {} files", modules.len());
    let g = graph(&modules);
    // The checker sees real edges (a broken parser would find no cycle
    // because it finds nothing at all).
    let web = g.get(&vec!["web".to_string()]).unwrap();
    assert!(web.contains(&vec!["web".to_string(), "servers".to_string()]));
    assert!(g[&vec!["tasks".to_string()]].contains(&vec!["jobs".to_string()]));
    if let Some(cycle) = find_cycle(&g) {
        let text: Vec<String> = cycle.iter().map(show).collect();
        panic!("import cycle: {}", text.join(" -> "));
    }
}

#[test]
fn the_checker_finds_a_planted_cycle() {
    let file = |code: &str, path: &str| Source {
        path: PathBuf::from(path),
        code: strip(code, true),
        with_strings: String::new(),
    };
    let mut modules = BTreeMap::new();
    modules.insert(vec![], file("mod a; mod b;", "lib.rs"));
    modules.insert(vec!["a".into()], file("use crate::b::{x, y::z};", "a.rs"));
    modules.insert(vec!["b".into()], file("fn f() { super::a::g() }", "b.rs"));
    let cycle = find_cycle(&graph(&modules)).expect("a and b import each other");
    assert!(cycle.len() == 3, "{:?}", cycle);
    modules.insert(
        vec!["b".into()],
        file("// super::a::g()\nfn f() {}", "b.rs"),
    );
    assert_eq!(find_cycle(&graph(&modules)), None, "comments are not code");
}

/// Layer of a module, lowest first; edge modules (lib, cli, demo) may use
/// anything.
fn layer(m: &Module) -> Option<usize> {
    match m.first().map(String::as_str) {
        Some("l4d2ctl" | "config" | "db" | "fanout" | "data_root" | "http") => Some(1),
        Some("jobs") => Some(2),
        Some(
            "accounts" | "auth" | "servers" | "overlays" | "live" | "backup" | "schedules"
            | "alerts" | "audit" | "game",
        ) => Some(3),
        Some("tasks" | "metrics") => Some(4),
        Some("web") => Some(5),
        _ => None,
    }
}

#[test]
fn layers_call_downward_only() {
    let modules = read_sources();
    let g = graph(&modules);
    let mut wrong = Vec::new();
    for (from, deps) in &g {
        let Some(lf) = layer(from) else { continue };
        for to in deps {
            let Some(lt) = layer(to) else { continue };
            // Within a layer any direction is fine (the domain modules use
            // each other, e.g. servers use overlays), as long as there is
            // no cycle.
            if lt > lf {
                wrong.push(format!(
                    "{} (layer {lf}) -> {} (layer {lt})",
                    show(from),
                    show(to)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "upward calls:\n{}", wrong.join("\n"));
}

#[test]
fn handlers_hold_no_sql() {
    for (m, src) in read_sources() {
        if m.first().is_some_and(|f| f == "web") {
            assert!(
                !src.code.contains("sqlx::query"),
                "{} runs SQL itself; move it into the domain",
                src.path.display()
            );
        }
    }
}

#[test]
fn only_tasks_knows_the_job_kinds() {
    let kinds = [
        "\"install\"",
        "\"server-start\"",
        "\"server-stop\"",
        "\"server-restart\"",
        "\"server-reset\"",
        "\"server-delete\"",
        "\"overlay-build\"",
        "\"workshop-sync\"",
        "\"workshop-refresh\"",
        "\"update-check\"",
        "\"server-rcon\"",
    ];
    for (m, src) in read_sources() {
        if m == ["tasks"] {
            continue;
        }
        for kind in kinds {
            assert!(
                !src.with_strings.contains(kind),
                "{} names the job kind {kind}; only tasks/mod.rs may",
                src.path.display()
            );
        }
        assert!(
            !src.with_strings.contains("kind = 'install'"),
            "{} names a job kind in SQL",
            src.path.display()
        );
    }
}

#[test]
fn only_config_reads_the_environment() {
    for (m, src) in read_sources() {
        if m == ["config"] {
            continue;
        }
        for call in ["std::env::var", "env::var_os", "env::vars"] {
            assert!(
                !src.code.contains(call),
                "{} reads the environment ({call}); add the variable to config::VARS and read it there",
                src.path.display()
            );
        }
    }
}
