//! `scopegate policy check|test|explain` through the real binary, on files written to a temporary
//! directory: what each prints and how it exits.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn scopegate(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("exited, not signalled"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A temporary directory holding the files of one test.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// The directory itself, or a path in it.
    fn path(&self, name: &str) -> String {
        self.0.path().join(name).display().to_string()
    }
}

fn shipped_policies() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut policies: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.ends_with(".toml") && !name.ends_with(".cases.toml")
        })
        .collect();
    policies.sort();
    policies
}

const SHADOWED: &str = r#"version = 1
default = "deny"

[[tools]]
name = "*"
scopes = ["tools:any"]

[[tools]]
name = "admin_*"
scopes = ["admin"]

[[tools]]
name = "admin_reset"
scopes = ["admin"]
"#;

const AUDITED: &str = r#"version = 1
[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
[[tools]]
name = "delete_*"
scopes = ["customer:delete"]
mode = "audit"
"#;

mod cases;
mod check;
mod conditions;
mod explain;
