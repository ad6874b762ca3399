//! Finding the programs the lab runs: ferrolb's own binaries (`ferrolb-controller`,
//! `ferrolb-speaker`), the lab's (`lab`, `ferrolb-test-apiserver`), and Debian tools.

use std::path::{Path, PathBuf};

use super::LabError;

/// Environment variable naming the folder that holds ferrolb's binaries.
pub const BIN_DIR_ENV: &str = "FERROLB_BIN_DIR";

/// The folder holding ferrolb's binaries: `$FERROLB_BIN_DIR`, else the cargo target folder
/// of the running executable (`target/debug` for both `target/debug/lab` and a test binary in
/// `target/debug/deps/`).
pub fn bin_dir() -> Result<PathBuf, LabError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("find the running executable", e))?;
    Ok(target_dir_of(&exe))
}

/// The cargo profile folder an executable was built into.
pub fn target_dir_of(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The path of ferrolb binary `name` (see [`bin_dir`]); an error naming the build command when
/// it is missing.
pub fn locate(name: &str) -> Result<PathBuf, LabError> {
    let path = bin_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::Missing(format!(
            "{name} not found at {}: build it (`cargo build --workspace --bins`) or set {BIN_DIR_ENV}",
            path.display()
        )))
    }
}

/// Fails with an install hint unless every program in `programs` is on PATH.
pub fn require_tools(programs: &[(&str, &str)]) -> Result<(), LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/lib/frr"].map(PathBuf::from))
        .collect();
    let missing: Vec<String> = programs
        .iter()
        .filter(|(program, _)| {
            let p = Path::new(program);
            if p.is_absolute() {
                !p.is_file()
            } else {
                !dirs.iter().any(|d| d.join(program).is_file())
            }
        })
        .map(|(program, package)| format!("{program} (apt-get install {package})"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::Missing(format!(
            "missing programs: {}",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_binaries_in_deps_use_the_profile_folder() {
        let cases = [
            ("/w/target/debug/deps/lab-0123abcd", "/w/target/debug"),
            ("/w/target/debug/lab", "/w/target/debug"),
            ("/w/target/release/ferrolb-speaker", "/w/target/release"),
        ];
        for (exe, want) in cases {
            assert_eq!(target_dir_of(Path::new(exe)), PathBuf::from(want), "{exe}");
        }
    }
}
