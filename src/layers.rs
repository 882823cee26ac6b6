//! The layering of `src/`, checked: the layers are the numbered list in
//! the crate's documentation (`src/lib.rs`); every `crate::` reference of a
//! module's production code (the file up to its first `#[cfg(test)]`) must
//! name a module of the same layer or one below, and no references may go
//! in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name -> layer number, from the `//! N.` items of `lib.rs` (an
/// item goes on over lines indented past its number).
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut layer = 0;
    for line in lib.lines().filter_map(|l| l.strip_prefix("//!")) {
        let t = line.trim_start();
        match t.split_once(". ").map(|(n, _)| n.parse::<usize>()) {
            Some(Ok(n)) => layer = n,
            _ if !line.starts_with("    ") => layer = 0,
            _ => {}
        }
        if layer == 0 {
            continue;
        }
        // Backticked lower-case words are module names.
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 1 && part.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                out.entry(part.to_string()).or_insert(layer);
            }
        }
    }
    out
}

/// The crate modules a file's production code refers to.
fn references(text: &str, modules: &BTreeMap<String, usize>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group.split('}').next().unwrap_or("").split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let name: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains_key(&name) {
                    out.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn imports_point_down_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layer = layers(&lib);
    assert!(layer.len() > 20, "the layer list of lib.rs: {layer:?}");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "lib" | "main" | "bin" | "layers") {
            continue;
        }
        assert!(layer.contains_key(&name), "{name} is in no layer of lib.rs");
        let files: Vec<_> = if path.is_dir() {
            walk(&path)
        } else {
            vec![path.clone()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for r in references(&text, &layer) {
                if r != name {
                    edges.entry(name.clone()).or_default().insert(r);
                }
            }
        }
    }
    let mut up = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if layer[to] > layer[from] {
                up.push(format!(
                    "{from} (layer {}) -> {to} (layer {})",
                    layer[from], layer[to]
                ));
            }
        }
    }
    assert!(up.is_empty(), "imports from a lower layer up: {up:#?}");
    assert!(
        !edges.contains_key("sys"),
        "sys imports {:?}",
        edges.get("sys")
    );
    // No circle: repeatedly drop the modules that import nothing left.
    let mut left = edges.clone();
    loop {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, tos)| tos.iter().all(|t| !left.contains_key(t)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for m in leaves {
            left.remove(&m);
        }
    }
    assert!(
        left.is_empty(),
        "imports in a circle among {:?}",
        left.keys()
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_checker_sees_an_upward_import_and_a_group() {
    let lib = "//! 1. `sys`: x\n//! 2. `config`, `error`\n//!    `verify`\n//! 3. `boot`\n";
    let layer = layers(lib);
    assert_eq!(layer["sys"], 1);
    assert_eq!(layer["verify"], 2);
    assert_eq!(layer["boot"], 3);
    let refs = references(
        "use crate::{boot, sys::Errno};\nfn f() { crate::verify::x(); } // crate::error\n#[cfg(test)]\nuse crate::config;",
        &layer,
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["boot", "sys", "verify"]
    );
}
