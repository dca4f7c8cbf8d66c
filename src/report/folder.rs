//! Where a command's report folder goes: `--out DIR`, or `reports/<name>-<UTC time>/` (CLI.md).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::protocol::timestamp::format_rfc3339_millis;

/// Creates and returns the report folder for a run named `name`.
pub fn create(out: Option<&Path>, name: &str) -> std::io::Result<PathBuf> {
    let folder = match out {
        Some(dir) => dir.to_path_buf(),
        None => default_folder(name, SystemTime::now()),
    };
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

/// `reports/<name>-<YYYYMMDDTHHMMSSZ>`, with the name reduced to file-safe characters.
pub fn default_folder(name: &str, at: SystemTime) -> PathBuf {
    let stamp: String =
        format_rfc3339_millis(at)[..19].chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    PathBuf::from("reports").join(format!("{safe}-{stamp}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn default_folder_is_name_and_utc_time() {
        let at = UNIX_EPOCH + Duration::from_secs(1_710_928_800);
        assert_eq!(default_folder("fan out/1", at), PathBuf::from("reports/fan_out_1-20240320T100000Z"));
    }
}
