//! Embeds every `migrations/*.sql` file, in name order, into the shared crate, so one runner
//! serves the tests, the operator CLI and the migrate function.
use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("migrations/ directory beside shared/")
        .map(|e| e.expect("readable migrations/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// (version, sql) of every migration, in order.\npub static MIGRATIONS: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let version = f
            .file_stem()
            .unwrap()
            .to_str()
            .expect("UTF-8 migration name");
        let path = fs::canonicalize(f).unwrap();
        out.push_str(&format!(
            "    ({version:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR").unwrap()).join("migrations.rs"),
        out,
    )
    .unwrap();
}
