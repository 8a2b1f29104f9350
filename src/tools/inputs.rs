//! The payloads of a dry run: files, the files of a directory, or one
//! document per line of standard input (`-`, or no argument at all).
//!
//! A file is one payload, its bytes exactly as stored (a trailing newline
//! included: JSON allows it, and the size limit counts it as the broker
//! would). A line of standard input is one payload without its line end;
//! blank lines are skipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::error::ToolError;

/// One payload and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file, or `stdin:LINE`.
    pub label: String,
    /// The bytes to publish.
    pub payload: Bytes,
}

/// Reads every payload named by `args`, in order; `-` (or no argument)
/// reads `stdin`. A directory gives its files, sorted by name (not
/// recursively; names starting with `.` are skipped).
pub fn read_inputs(args: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Input>, ToolError> {
    let mut inputs = Vec::new();
    if args.is_empty() {
        return lines(stdin);
    }
    for arg in args {
        if arg.as_os_str() == "-" {
            inputs.extend(lines(stdin)?);
        } else if arg.is_dir() {
            for file in directory(arg)? {
                inputs.push(file_input(&file)?);
            }
        } else {
            inputs.push(file_input(arg)?);
        }
    }
    Ok(inputs)
}

fn file_input(path: &Path) -> Result<Input, ToolError> {
    let bytes = std::fs::read(path).map_err(|source| ToolError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Input {
        label: path.display().to_string(),
        payload: Bytes::from(bytes),
    })
}

fn directory(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let error = |source| ToolError::Input {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error)? {
        let path = entry.map_err(error)?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_file() && !hidden {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn lines(stdin: &mut dyn Read) -> Result<Vec<Input>, ToolError> {
    let mut all = Vec::new();
    stdin.read_to_end(&mut all).map_err(ToolError::Stdin)?;
    Ok(all
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(n, line)| Input {
            label: format!("stdin:{n}"),
            payload: Bytes::copy_from_slice(line),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_gives_one_payload_per_non_blank_line() {
        let mut stdin: &[u8] = b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n";
        let inputs = read_inputs(&[], &mut stdin).unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0].label, "stdin:1");
        assert_eq!(&inputs[1].payload[..], b"{\"b\":2}");
        assert_eq!(inputs[1].label, "stdin:4");
    }

    #[test]
    fn a_directory_gives_its_files_in_order_and_a_file_its_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), b"{}\n").unwrap();
        std::fs::write(dir.path().join("a.json"), b"[1]").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let inputs = read_inputs(&[dir.path().to_path_buf()], &mut &b""[..]).unwrap();
        let names: Vec<_> = inputs
            .iter()
            .map(|i| i.label.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names, ["a.json", "b.json"]);
        assert_eq!(&inputs[1].payload[..], b"{}\n");
        let missing = read_inputs(&[dir.path().join("nope.json")], &mut &b""[..]);
        assert!(matches!(missing, Err(ToolError::Input { .. })));
    }
}
