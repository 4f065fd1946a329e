//! No import cycle between modules (issue 10).
//!
//! Scans the library's non-test code (`src/**/*.rs` except `main.rs` and `tests.rs` files,
//! with every `#[cfg(test)]` item removed) for `crate::…`, `super::…` and `self::…` paths —
//! in `use` statements and inline — and builds the graph between sibling modules: a use of
//! `crate::daemon::store::Store` from `crate::daemon::http::console` is an edge
//! `daemon::http → daemon::store`. A module using its ancestor (or its own descendant) is not
//! an edge: a child naming its parent's types is how Rust modules nest. The test fails naming
//! every cycle, with the line that makes each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// One source file: its path relative to the crate root (for messages) and its text.
struct Source {
    rel: String,
    text: String,
}

/// Where an edge comes from: the first line seen making it.
type Edges = BTreeMap<Module, BTreeMap<Module, String>>;

#[test]
fn no_import_cycle_between_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("src"), root, &mut files);
    assert!(
        files.len() > 20,
        "found only {} source files under src/",
        files.len()
    );
    let found = cycles(&files);
    assert!(
        found.is_empty(),
        "import cycles between modules:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_planted_cycle_is_found_and_named() {
    let files = vec![
        src("src/lib.rs", "pub mod a;\npub mod b;\n"),
        src("src/a/mod.rs", "pub mod inner;\nuse crate::b::Thing;\n"),
        src("src/a/inner.rs", "pub struct X;\n"),
        src(
            "src/b.rs",
            "pub struct Thing;\nfn f() { let _ = super::a::inner::X; }\n",
        ),
    ];
    let found = cycles(&files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::a → crate::b"), "{}", found[0]);
    assert!(found[0].contains("src/b.rs:2"), "{}", found[0]);
}

#[test]
fn test_code_comments_strings_and_ancestors_make_no_edge() {
    let files = vec![
        src("src/lib.rs", "pub mod a;\npub mod b;\n"),
        src(
            "src/a/mod.rs",
            "pub mod c;\nuse crate::b::Thing;\npub struct Top;\n",
        ),
        // A child using its ancestor: not a cycle.
        src("src/a/c.rs", "use crate::a::Top;\nuse super::Top as T;\n"),
        src(
            "src/b.rs",
            concat!(
                "pub struct Thing;\n",
                "// crate::a::Top in a comment\n",
                "const S: &str = \"crate::a::Top {\";\n",
                "#[cfg(test)]\nmod tests { use crate::a::Top; fn f() { let _ = '{'; } }\n",
                "#[cfg(test)]\nmod more;\n",
                "struct F { #[cfg(test)] x: crate::a::Top, y: u8 }\n",
            ),
        ),
        src("src/b/tests.rs", "use crate::a::Top;\n"),
    ];
    assert_eq!(cycles(&files), Vec::<String>::new());
    // The same use outside test code is a cycle.
    let mut planted = files;
    planted[3].text += "fn g() -> crate::a::c::Y { todo!() }\n";
    assert_eq!(cycles(&planted).len(), 1);
}

#[test]
fn use_groups_are_expanded() {
    let files = vec![
        src("src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        src("src/a.rs", "use crate::{b::{self, X}, c::Y};\n"),
        src("src/b.rs", "pub struct X;\n"),
        src("src/c.rs", "pub struct Y;\nuse crate::a;\n"),
    ];
    let found = cycles(&files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::a → crate::c"), "{}", found[0]);
}

fn src(rel: &str, text: &str) -> Source {
    Source {
        rel: rel.to_string(),
        text: text.to_string(),
    }
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).expect("under root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&p).expect("source file");
            out.push(Source { rel, text });
        }
    }
}

/// The module a file defines, or None for files that are not library modules (the binary's
/// `main.rs`, test modules in `tests.rs`).
fn module_of(rel: &str) -> Option<Module> {
    let path = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    match parts.last().map(String::as_str) {
        Some("main") if parts.len() == 1 => return None,
        Some("tests") => return None,
        Some("lib") if parts.len() == 1 => return Some(Vec::new()),
        Some("mod") => {
            parts.pop();
        }
        _ => {}
    }
    Some(parts)
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        format!("crate::{}", m.join("::"))
    }
}

/// Every cycle, one line each: `a → b (file:line) → a (file:line)`.
fn cycles(files: &[Source]) -> Vec<String> {
    components(files)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// Every strongly connected component of the module graph, with one cycle through it.
fn components(files: &[Source]) -> Vec<(Vec<Module>, String)> {
    let modules: BTreeMap<Module, &Source> = files
        .iter()
        .filter_map(|f| module_of(&f.rel).map(|m| (m, f)))
        .collect();
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    let mut edges = Edges::new();
    for (m, f) in &modules {
        let code = strip_test_items(&blank_comments_and_literals(&f.text));
        for (line, path) in paths(&code, m) {
            let Some(target) = resolve(&known, &path) else {
                continue;
            };
            if let Some((from, to)) = sibling_edge(m, &target) {
                edges
                    .entry(from)
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{}:{line}", f.rel));
            }
        }
    }
    strongly_connected(&edges)
        .into_iter()
        .map(|scc| {
            let text = describe(&edges, &scc);
            (scc, text)
        })
        .collect()
}

/// The longest prefix of `path` that is a module.
fn resolve(known: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
}

/// The edge between the two siblings under the modules' lowest common ancestor; none when
/// one module is the other's ancestor.
fn sibling_edge(from: &[String], to: &[String]) -> Option<(Module, Module)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((from[..=common].to_vec(), to[..=common].to_vec()))
}

/// The source with comments, string, byte-string, raw-string and char literals replaced by
/// spaces (newlines kept, so line numbers stay true).
fn blank_comments_and_literals(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if c[i] == '/' && at(&c, i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
                out.push(' ');
            }
        } else if c[i] == '/' && at(&c, i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '/' && at(&c, i + 1) == '*' {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && at(&c, i + 1) == '/' {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if !ident_before && (c[i] == 'r' || (c[i] == 'b' && at(&c, i + 1) == 'r')) && {
            let start = if c[i] == 'b' { 2 } else { 1 };
            let mut k = start;
            while at(&c, i + k) == '#' {
                k += 1;
            }
            at(&c, i + k) == '"'
        } {
            // Raw string: r"…", r#"…"#, br#"…"#.
            let mut k = if c[i] == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(&c, i + k) == '#' {
                hashes += 1;
                k += 1;
            }
            for _ in 0..=k {
                out.push(' ');
            }
            i += k + 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|h| at(&c, i + h) == '#') {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\''
            && (at(&c, i + 2) == '\'' || (at(&c, i + 1) == '\\' && at(&c, i + 3) == '\''))
        {
            // A char literal ('x' or '\n'); a lifetime has no closing quote.
            let len = if at(&c, i + 1) == '\\' { 4 } else { 3 };
            for _ in 0..len {
                out.push(' ');
            }
            i += len;
        } else if c[i] == '\'' && at(&c, i + 1) == '\\' {
            // '\u{…}' or '\x..'
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '\'' {
                blank(&mut out, c[i]);
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The code with every item, field or statement under `#[cfg(test)]` blanked.
fn strip_test_items(code: &str) -> String {
    let mut c: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= c.len() {
        if c[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + marker.len();
        let mut depth = 0i32;
        let mut opened_brace = false;
        while j < c.len() {
            match c[j] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '{' => {
                    depth += 1;
                    opened_brace = true;
                }
                '}' => {
                    if depth == 0 {
                        // The enclosing block ends: the item ended before.
                        break;
                    }
                    depth -= 1;
                    if depth == 0 && opened_brace {
                        j += 1;
                        break;
                    }
                }
                ';' | ',' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let end = j.min(c.len());
        for ch in &mut c[start..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = j;
    }
    c.into_iter().collect()
}

fn at(c: &[char], k: usize) -> char {
    c.get(k).copied().unwrap_or('\0')
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Every absolute module path named in the code, with its line: `crate::a::b`,
/// `super::x` and `self::y` resolved against the file's module `m`, use groups expanded.
fn paths(code: &str, m: &[String]) -> Vec<(usize, Vec<String>)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if !is_ident(c[i]) || (i > 0 && (is_ident(c[i - 1]) || c[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < c.len() && is_ident(c[j]) {
            j += 1;
        }
        let word: String = c[i..j].iter().collect();
        let mut k = j;
        while k < c.len() && c[k].is_whitespace() {
            k += 1;
        }
        let followed = c.get(k) == Some(&':') && c.get(k + 1) == Some(&':');
        if followed && matches!(word.as_str(), "crate" | "super" | "self") {
            let line = c[..i].iter().filter(|&&ch| ch == '\n').count() + 1;
            let base = match word.as_str() {
                "crate" => Vec::new(),
                _ => m.to_vec(),
            };
            let (mut tree, end) = path_tree(&c, i);
            for p in &mut tree {
                out.push((line, absolute(&base, p)));
            }
            i = end;
        } else {
            i = j;
        }
    }
    out
}

/// `super`/`self` segments applied to `base`.
fn absolute(base: &[String], p: &mut [String]) -> Vec<String> {
    let mut abs = base.to_vec();
    let mut rest = &p[..];
    if rest.first().map(String::as_str) == Some("crate") {
        abs.clear();
        rest = &rest[1..];
    }
    for seg in rest {
        match seg.as_str() {
            "super" => {
                abs.pop();
            }
            "self" => {}
            _ => abs.push(seg.clone()),
        }
    }
    abs
}

/// The path (or paths, for a `{…}` group) starting at `i`; and where it ends.
fn path_tree(c: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        if c.get(i) == Some(&'{') {
            let mut all = Vec::new();
            i += 1;
            loop {
                while i < c.len() && (c[i].is_whitespace() || c[i] == ',') {
                    i += 1;
                }
                match c.get(i) {
                    None => return (all, i),
                    Some('}') => return (all, i + 1),
                    Some(_) => {}
                }
                let (subs, end) = path_tree(c, i);
                i = end.max(i + 1);
                for s in subs {
                    let mut p = prefix.clone();
                    p.extend(s);
                    all.push(p);
                }
                // Skip `as alias` and anything else up to the next separator.
                while i < c.len() && c[i] != ',' && c[i] != '}' {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < c.len() && is_ident(c[i]) {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        prefix.push(c[start..i].iter().collect());
        let mut k = i;
        while k < c.len() && c[k].is_whitespace() {
            k += 1;
        }
        if c.get(k) == Some(&':') && c.get(k + 1) == Some(&':') {
            i = k + 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// Tarjan's strongly connected components with more than one module.
fn strongly_connected(edges: &Edges) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a Edges,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on_stack: BTreeSet<Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit(s: &mut State, v: &Module) {
        let n = s.index.len();
        s.index.insert(v.clone(), n);
        s.low.insert(v.clone(), n);
        s.stack.push(v.clone());
        s.on_stack.insert(v.clone());
        let next: Vec<Module> = s
            .edges
            .get(v)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        for w in next {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let l = s.low[v].min(s.low[&w]);
                s.low.insert(v.clone(), l);
            } else if s.on_stack.contains(&w) {
                let l = s.low[v].min(s.index[&w]);
                s.low.insert(v.clone(), l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = &w == v;
                scc.push(w);
                if done {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// One shortest cycle through the component's first module, each edge with where it is made;
/// then the component's other modules.
fn describe(edges: &Edges, scc: &[Module]) -> String {
    let members: BTreeSet<&Module> = scc.iter().collect();
    let start = &scc[0];
    // Breadth-first search back to `start` inside the component.
    let mut prev: BTreeMap<Module, Module> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    let mut closing = None;
    while let Some(v) = queue.pop_front() {
        for w in edges.get(&v).into_iter().flat_map(|t| t.keys()) {
            if !members.contains(w) {
                continue;
            }
            if w == start {
                closing = Some(v.clone());
                queue.clear();
                break;
            }
            if !prev.contains_key(w) {
                prev.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    let mut path = vec![closing.expect("a component has a cycle")];
    while path.last() != Some(start) {
        let p = prev[path.last().expect("non-empty")].clone();
        path.push(p);
    }
    path.reverse();
    path.push(start.clone());
    let mut text = name(start);
    for pair in path.windows(2) {
        text += &format!(" → {} ({})", name(&pair[1]), edges[&pair[0]][&pair[1]]);
    }
    let on_path: BTreeSet<&Module> = path.iter().collect();
    let others: Vec<String> = scc
        .iter()
        .filter(|m| !on_path.contains(m))
        .map(|m| name(m))
        .collect();
    if !others.is_empty() {
        text += &format!("; also in this cycle: {}", others.join(", "));
    }
    text
}
