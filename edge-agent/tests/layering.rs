//! The agent's layering rule (docs/architecture.md, "Layers"), checked on the source: what each
//! module may import from the rest of the crate, that the domain does no IO, that no production
//! file outgrows one role, and that every record kind is spelled in one place.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// Top-level modules by layer.
const DOMAIN: &[&str] = &[
    "batch", "device", "scan", "label", "prep", "record", "otter", "receipt", "pdf",
];
const CONFIG: &[&str] = &["config"];
const STATE: &[&str] = &["status"];
const STORE: &[&str] = &["store"];
const KITCHEN: &[&str] = &["kitchen"];
const WRITER: &[&str] = &["writer"];
const ADAPTERS: &[&str] = &["feed", "scanner", "sync", "http", "fleet", "printer"];
/// The application: wires everything (lib.rs, main.rs, housekeeping, provisioning, enrolment).
const APP: &[&str] = &[
    "lib",
    "main",
    "housekeeping",
    "pairing",
    "provision",
    "enrol",
];

/// Crates and std modules that do IO: not for the domain.
const IO: &[&str] = &[
    "rusqlite::",
    "sqlx::",
    "lapin::",
    "axum::",
    "tokio::",
    "tokio_serial::",
    "tokio_util::",
    "reqwest::",
    "std::fs",
    "std::net",
    "std::process",
    "std::time::SystemTime",
];

/// Longest production part of a file (its inline tests aside).
const MAX_LINES: usize = 600;

fn layer(module: &str) -> &'static str {
    for (name, modules) in [
        ("domain", DOMAIN),
        ("config", CONFIG),
        ("state", STATE),
        ("store", STORE),
        ("kitchen", KITCHEN),
        ("writer", WRITER),
        ("adapter", ADAPTERS),
        ("app", APP),
    ] {
        if modules.contains(&module) {
            return name;
        }
    }
    panic!(
        "module {module} has no layer: give it one in tests/layering.rs and docs/architecture.md"
    )
}

/// Whether `from` may import `to` (two top-level modules of the crate).
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    // A scanner's `[[scanners]]` entry is configuration like the rest of `config`.
    let to_layer = layer(to);
    match layer(from) {
        "domain" => to_layer == "domain",
        "config" => matches!(to_layer, "domain" | "config") || to == "scanner",
        "state" => matches!(to_layer, "domain" | "config"),
        "store" => to_layer == "domain",
        "kitchen" => matches!(to_layer, "domain" | "store"),
        "writer" => matches!(to_layer, "domain" | "store" | "kitchen"),
        // Adapters reach the kitchen only through the writer, and never each other.
        "adapter" => matches!(to_layer, "domain" | "config" | "state" | "store" | "writer"),
        "app" => true,
        other => panic!("unknown layer {other}"),
    }
}

fn source_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reads src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Each production source file of `src` (unit-test files aside) with its top-level module
/// and its text before any inline `#[cfg(test)]` module.
fn production(src: &Path) -> Vec<(String, PathBuf, String)> {
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|path| {
            let relative = path.strip_prefix(src).expect("under src");
            let first = relative.components().next().expect("a component");
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("reads");
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            (module, path, text)
        })
        .collect()
}

/// The crate modules a file names (`crate::x`, and `use crate::{x, y::...}` groups).
fn crate_imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => found.push(std::mem::take(&mut item)),
                    _ => item.push(c),
                }
            }
            found.push(item);
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found
        .iter()
        .map(|item| {
            item.trim()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|module| !module.is_empty() && module.chars().all(|c| c.is_lowercase() || c == '_'))
        .collect()
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 1;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return at;
                }
            }
            _ => {}
        }
    }
    text.len()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn modules_import_only_what_their_layer_allows() {
    let mut violations = Vec::new();
    for (module, path, text) in production(&src()) {
        for imported in crate_imports(&text) {
            if !allowed(&module, &imported) {
                violations.push(format!(
                    "{} ({}) imports crate::{imported} ({})",
                    path.display(),
                    layer(&module),
                    layer(&imported)
                ));
            }
        }
        if layer(&module) == "domain" {
            for io in IO {
                if text.contains(io) {
                    violations.push(format!("{} (domain) uses {io}", path.display()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_production_file_holds_more_than_one_role() {
    let mut too_long: BTreeMap<String, usize> = BTreeMap::new();
    for crate_dir in ["", "../cloud-relay/", "../daemon/", "../proto/"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(crate_dir)
            .join("src");
        if !src.exists() {
            continue;
        }
        for (_, path, text) in production(&src) {
            let lines = text.lines().count();
            if lines > MAX_LINES {
                too_long.insert(path.display().to_string(), lines);
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "over {MAX_LINES} production lines: {too_long:?}"
    );
}

#[test]
fn every_record_kind_is_spelled_once() {
    let files = production(&src());
    for kind in edge_agent::record::Record::KINDS {
        let quoted = format!("\"{kind}\"");
        let places: Vec<String> = files
            .iter()
            .filter(|(_, _, text)| text.contains(&quoted))
            .map(|(_, path, text)| {
                format!("{} ({}×)", path.display(), text.matches(&quoted).count())
            })
            .collect();
        assert_eq!(places.len(), 1, "{kind} is spelled in {places:?}");
        assert!(
            places[0].ends_with("record/mod.rs (1×)"),
            "{kind}: {places:?}"
        );
    }
}

#[test]
fn the_import_reader_sees_groups_and_paths() {
    let text = "use crate::{\n    batch::{self, Line},\n    store::Store,\n};\nlet x = crate::writer::spawn();";
    assert_eq!(crate_imports(text), ["batch", "store", "writer"]);
    assert!(!allowed("store", "http"));
    assert!(allowed("http", "writer"));
    assert!(!allowed("http", "kitchen"));
    assert!(!allowed("sync", "feed"));
    assert!(!allowed("fleet", "http") && !allowed("http", "fleet"));
    assert!(allowed("fleet", "status") && !allowed("fleet", "kitchen"));
}
