//! The README's table from promise to test stays true: every test it names exists, under the file
//! it names, so a renamed or deleted test cannot leave a promise pointing at nothing.

/// The `file::function` names in the README's "What the suite guards" section.
fn named_tests() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme.find("## What the suite guards").expect("the README has the section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| code.split_once("::"))
        .filter(|(file, function)| {
            let name = |text: &str| {
                !text.is_empty() && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            };
            name(file) && name(function)
        })
        .map(|(file, function)| (file.to_owned(), function.to_owned()))
        .collect()
}

#[test]
fn every_test_the_readme_names_exists() {
    let named = named_tests();
    assert!(named.len() >= 40, "the table names the tests of every promise: {named:?}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("api");
    let missing: Vec<String> = named
        .iter()
        .filter(|(file, function)| {
            // `engines::` names the engines suite (tests/engines), every other file one of tests/api.
            let path = match file.as_str() {
                "engines" => dir.join("../engines/main.rs"),
                file => dir.join(format!("{file}.rs")),
            };
            let source = std::fs::read_to_string(path).unwrap_or_default();
            !source.contains(&format!("fn {function}("))
        })
        .map(|(file, function)| format!("{file}::{function}"))
        .collect();
    assert!(missing.is_empty(), "the README names tests that do not exist: {missing:?}");
}
