//! The README as a newcomer follows it: every example marked `offline` (a fence such as
//! ```` ```sh offline ```` or ```` ```console offline ````) runs as written against the built binary,
//! and every file the README names exists.
//!
//! A `sh` block runs as one script; a `console` block runs each `$ ` line, and each line of the
//! output the README shows (but `…`) must be a line of what the command prints.

use std::path::{Path, PathBuf};
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One fenced block marked `offline`: its language, its first line in the README and its text.
struct Block {
    language: String,
    line: usize,
    text: String,
}

fn offline_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, usize, Vec<String>)> = None;
    for (i, line) in readme.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let words: Vec<&str> = info.split_whitespace().collect();
                    let language = words.first().copied().unwrap_or_default().to_owned();
                    let offline = words.contains(&"offline");
                    open = Some((indent, language, i + 1, Vec::new()));
                    if !offline {
                        // Remember the block only to find its end.
                        open.as_mut().unwrap().1 = String::new();
                    }
                }
            }
            Some((block_indent, language, start, lines)) => {
                if trimmed.starts_with("```") {
                    if !language.is_empty() {
                        blocks.push(Block {
                            language: language.clone(),
                            line: *start,
                            text: lines.join("\n"),
                        });
                    }
                    open = None;
                } else {
                    lines.push(line.get(*block_indent..).unwrap_or(trimmed).to_owned());
                }
            }
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    blocks
}

/// Runs `script` with `sh -e` in the repository, with the built `scopegate` first on the PATH.
fn sh(script: &str) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_scopegate"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-e")
        .arg("-c")
        .arg(script)
        .current_dir(root())
        .env("PATH", path)
        .output()
        .expect("sh runs")
}

#[test]
fn every_offline_example_in_the_readme_runs_as_written() {
    let readme = readme();
    let blocks = offline_blocks(&readme);
    assert!(blocks.len() >= 4, "only {} offline blocks", blocks.len());
    let mut commands = 0;
    for block in &blocks {
        match block.language.as_str() {
            "sh" => {
                let output = sh(&block.text);
                assert!(
                    output.status.success(),
                    "README.md:{}: {}\n{}{}",
                    block.line,
                    block.text,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                commands += block.text.lines().filter(|l| !l.trim().is_empty()).count();
            }
            "console" => {
                // Each `$ ` line and the output lines shown under it.
                let mut runs: Vec<(String, Vec<String>)> = Vec::new();
                for line in block.text.lines() {
                    match line.strip_prefix("$ ") {
                        Some(command) => runs.push((command.to_owned(), Vec::new())),
                        None => runs
                            .last_mut()
                            .unwrap_or_else(|| {
                                panic!("README.md:{}: output before a command", block.line)
                            })
                            .1
                            .push(line.to_owned()),
                    }
                }
                for (command, shown) in runs {
                    let output = sh(&command);
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    assert!(
                        output.status.success(),
                        "README.md:{}: {command}\n{stdout}{}",
                        block.line,
                        String::from_utf8_lossy(&output.stderr)
                    );
                    let printed: Vec<&str> = stdout.lines().map(str::trim_end).collect();
                    for line in shown.iter().filter(|l| l.trim() != "…") {
                        assert!(
                            printed.contains(&line.trim_end()),
                            "README.md:{}: `{command}` no longer prints\n{line}\nit prints:\n{stdout}",
                            block.line
                        );
                    }
                    commands += 1;
                }
            }
            other => panic!("README.md:{}: cannot run a `{other}` block", block.line),
        }
    }
    assert!(commands >= 6, "only {commands} commands ran");
}

/// Paths into this repository, as the README writes them: they start at one of its folders or
/// name one of its top-level files.
fn named_paths(readme: &str) -> Vec<String> {
    const FOLDERS: [&str; 8] = [
        "policies/",
        "deploy/",
        "src/",
        "crates/",
        "tests/",
        "bench/",
        "fuzz/",
        ".ci/",
    ];
    const FILES: [&str; 5] = [
        "Dockerfile",
        "BENCHMARKS.md",
        "Cargo.toml",
        "Cargo.lock",
        ".dockerignore",
    ];
    let path_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    let mut paths = Vec::new();
    for (at, _) in readme.char_indices() {
        // A path starts where the text before it is not part of a word or another path.
        if readme[..at].chars().next_back().is_some_and(path_char) {
            continue;
        }
        let rest = &readme[at..];
        if !FOLDERS.iter().any(|f| rest.starts_with(f))
            && !FILES.iter().any(|f| rest.starts_with(f))
        {
            continue;
        }
        let end = rest.find(|c: char| !path_char(c)).unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(['.', ',']);
        paths.push(path.to_owned());
    }
    paths.sort();
    paths.dedup();
    paths
}

#[test]
fn every_file_the_readme_names_exists() {
    let paths = named_paths(&readme());
    assert!(paths.len() >= 15, "found only {paths:?}");
    let missing: Vec<&String> = paths.iter().filter(|p| !root().join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "README.md names missing files: {missing:?}"
    );
}

#[test]
fn the_path_finder_sees_a_missing_file() {
    let paths =
        named_paths("see `policies/ops.toml`, /etc/scopegate/policy/policy.toml and base/x.yaml.");
    assert_eq!(paths, ["policies/ops.toml"]);
    assert!(!root().join(&paths[0]).exists());
}
