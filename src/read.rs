//! Reading input text within byte caps: at most so many bytes of one input, and of all the
//! inputs of one command together. Reading stops at the cap — a FIFO, `/dev/zero` or an endless
//! stdin is read no further than a regular file — so no input can make kflex grow without
//! bound. Every file kflex reads as input (ControlPlanes, hooks, settings, templates,
//! kubeconfigs) goes through a [`Reader`]; it does not decide what the text means.
//!
//! The caps also set the limits of the YAML parser ([`kflex_core::yaml::Limits`]): what one input
//! may hold follows from the cap of one input, and the memory all parsed inputs may take
//! together, one and a half times the total cap, is shared out among them as they are parsed.

use std::io::Read;
use std::path::Path;

use kflex_core::yaml::{self, human_bytes};

/// How many bytes kflex reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Of one input.
    pub per_input: u64,
    /// Of all inputs of one command together.
    pub total: u64,
    /// The flags that raise the caps, for error messages; `None` where no flag does.
    pub flags: Option<CapFlags>,
}

/// The names of the flags that raise the caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapFlags {
    pub per_input: &'static str,
    pub total: &'static str,
}

/// The default cap of one input: 64 MiB.
pub const DEFAULT_PER_INPUT: u64 = yaml::Limits::DEFAULT_MAX_BYTES as u64;
/// The default cap of all inputs of a command together: 256 MiB.
pub const DEFAULT_TOTAL: u64 = 256 << 20;

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            per_input: DEFAULT_PER_INPUT,
            total: DEFAULT_TOTAL,
            flags: None,
        }
    }
}

/// An input could not be read, or is larger than kflex reads.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: larger than {}, the most kflex reads of one input{}", human_bytes(*cap), raise(*flag))]
    TooLarge {
        path: String,
        cap: usize,
        flag: Option<&'static str>,
    },
    #[error(
        "{path}: reading it would take kflex's inputs past {}, the most it reads in total{}",
        human_bytes(*cap),
        raise(*flag)
    )]
    TotalTooLarge {
        path: String,
        cap: usize,
        flag: Option<&'static str>,
    },
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: String },
    #[error(
        "{path} is a symbolic link to a file outside {root}; kflex reads only files inside the \
         directory it is given"
    )]
    OutsideDirectory { path: String, root: String },
}

/// Refuses `path`, met while walking the directory `root`, when it is a symbolic link whose
/// target lies outside `root`: a repository (an Argo CD source, a `--templates` directory) must
/// not make kflex read the machine's other files.
pub fn check_inside(root: &Path, path: &Path) -> Result<(), ReadError> {
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    if !std::fs::symlink_metadata(path).map_err(io)?.is_symlink() {
        return Ok(());
    }
    let target = std::fs::canonicalize(path).map_err(io)?;
    let root_canonical = std::fs::canonicalize(root).map_err(io)?;
    if target.starts_with(&root_canonical) {
        Ok(())
    } else {
        Err(ReadError::OutsideDirectory {
            path: path.display().to_string(),
            root: root.display().to_string(),
        })
    }
}

fn raise(flag: Option<&'static str>) -> String {
    flag.map_or_else(String::new, |flag| format!(" (raise it with {flag})"))
}

/// Reads inputs, counting what it read against the total cap, and what their parsed forms
/// take against the memory budget.
#[derive(Debug)]
pub struct Reader {
    limits: ReadLimits,
    read: u64,
    /// Of the memory budget for parsed inputs.
    memory_left: usize,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new(ReadLimits::default())
    }
}

impl Reader {
    pub fn new(limits: ReadLimits) -> Self {
        let total = usize::try_from(limits.total).unwrap_or(usize::MAX);
        Self {
            limits,
            read: 0,
            memory_left: total.saturating_add(total / 2),
        }
    }

    /// The parser's limits for the next input of this reader; what it parses is to be
    /// [`Reader::charge`]d.
    pub fn yaml_limits(&self) -> yaml::Limits {
        let per_input = usize::try_from(self.limits.per_input).unwrap_or(usize::MAX);
        yaml::Limits::new(per_input, self.memory_left)
    }

    /// Counts `memory` (of a [`yaml::Parsed`]) against the budget for parsed inputs.
    pub fn charge(&mut self, memory: usize) {
        self.memory_left = self.memory_left.saturating_sub(memory);
    }

    /// The flag that raises `cap`, if any.
    pub fn flag(&self, cap: yaml::Cap) -> Option<&'static str> {
        self.limits.flags.map(|flags| match cap {
            yaml::Cap::PerInput => flags.per_input,
            yaml::Cap::Total => flags.total,
        })
    }

    /// The text of the file at `path`, whatever kind of file it is.
    pub fn read_path(&mut self, path: &Path) -> Result<String, ReadError> {
        let name = path.display().to_string();
        let io = |source| ReadError::Io {
            path: name.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // A regular file says how large it is; anything else is read in growing steps.
        let size_hint = file
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|metadata| metadata.len());
        self.read_with_hint(&name, file, size_hint)
    }

    /// Everything `reader` gives, named `name` in errors.
    pub fn read_from(&mut self, name: &str, reader: impl Read) -> Result<String, ReadError> {
        self.read_with_hint(name, reader, None)
    }

    /// Like [`Reader::read_path`], except that a file that does not exist is `None`.
    pub fn read_path_if_exists(&mut self, path: &Path) -> Result<Option<String>, ReadError> {
        match self.read_path(path) {
            Err(ReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    fn read_with_hint(
        &mut self,
        name: &str,
        reader: impl Read,
        size_hint: Option<u64>,
    ) -> Result<String, ReadError> {
        let remaining = self.limits.total.saturating_sub(self.read);
        let allowed = self.limits.per_input.min(remaining);
        // Room for the whole input up front: growing by doubling would copy it and, for a
        // stream that reaches the cap, hold three times the cap at once. Memory is only taken as
        // it is written, so a small stdin costs little; past the default cap it grows again.
        let room = size_hint
            .unwrap_or(DEFAULT_PER_INPUT)
            .min(allowed)
            .saturating_add(1);
        let mut bytes = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
        // One byte past the cap tells "exactly the cap" from "more than the cap".
        reader
            .take(allowed.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| ReadError::Io {
                path: name.to_owned(),
                source,
            })?;
        let length = bytes.len() as u64;
        if length > allowed {
            let flags = self.limits.flags;
            return Err(if length > self.limits.per_input {
                ReadError::TooLarge {
                    path: name.to_owned(),
                    cap: usize::try_from(self.limits.per_input).unwrap_or(usize::MAX),
                    flag: flags.map(|f| f.per_input),
                }
            } else {
                ReadError::TotalTooLarge {
                    path: name.to_owned(),
                    cap: usize::try_from(self.limits.total).unwrap_or(usize::MAX),
                    flag: flags.map(|f| f.total),
                }
            });
        }
        self.read += length;
        String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 {
            path: name.to_owned(),
        })
    }
}

/// A size as the caps' flags take it: bytes, or a number with a binary suffix (`Ki`, `Mi`, `Gi`)
/// as Kubernetes quantities have them, or a decimal one (`k`, `M`, `G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(split);
    let factor: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{text:?} is not a size like 64Mi, 512Ki or 1000000"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64Mi, 512Ki or 1000000"))?;
    match number.checked_mul(factor) {
        Some(0) => Err("the size must be at least 1 byte".to_owned()),
        Some(bytes) if usize::try_from(bytes).is_ok() => Ok(bytes),
        _ => Err(format!("{text:?} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_input: u64, total: u64) -> ReadLimits {
        ReadLimits {
            per_input,
            total,
            flags: Some(CapFlags {
                per_input: "--max-input-bytes",
                total: "--max-total-input-bytes",
            }),
        }
    }

    #[test]
    fn reading_stops_at_the_cap_of_one_input() {
        let mut reader = Reader::new(limits(1 << 10, 1 << 20));
        assert_eq!(
            reader.read_from("a", &[b'x'; 1024][..]).unwrap().len(),
            1024
        );
        let endless = std::io::repeat(b'x');
        let err = reader.read_from("<stdin>", endless).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<stdin>: larger than 1 KiB, the most kflex reads of one input (raise it with --max-input-bytes)"
        );
    }

    #[test]
    fn reading_stops_at_the_total_cap() {
        let mut reader = Reader::new(limits(1 << 10, 2 << 10));
        reader.read_from("a", &[b'x'; 1024][..]).unwrap();
        reader.read_from("b", &[b'x'; 1000][..]).unwrap();
        let err = reader.read_from("c", &[b'x'; 100][..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c: reading it would take kflex's inputs past 2 KiB, the most it reads in total (raise it with --max-total-input-bytes)"
        );
        reader.read_from("d", &[b'x'; 24][..]).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_read_to_the_cap_only() {
        let mut reader = Reader::new(limits(1 << 20, 1 << 30));
        let err = reader.read_path(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
        let err = Reader::default()
            .read_path(Path::new("/dev/urandom"))
            .unwrap_err();
        assert!(err.to_string().contains("64 MiB"), "{err}");
    }

    #[test]
    fn text_must_be_utf8_and_missing_files_can_be_allowed() {
        let err = Reader::default()
            .read_from("bin", &[0xff, 0xfe, 0x00][..])
            .unwrap_err();
        assert_eq!(err.to_string(), "bin: not UTF-8 text");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(
            Reader::default()
                .read_path_if_exists(&missing)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn parsed_inputs_share_one_memory_budget() {
        let mut reader = Reader::new(limits(1 << 20, 2 << 20));
        assert_eq!(reader.yaml_limits().max_memory(), 3 << 20);
        reader.charge(1 << 20);
        assert_eq!(reader.yaml_limits().max_memory(), 2 << 20);
        assert_eq!(reader.yaml_limits().max_bytes(), 1 << 20);
        assert_eq!(
            Reader::default().yaml_limits(),
            yaml::Limits::default(),
            "the defaults agree"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64Mi"), Ok(64 << 20));
        assert_eq!(parse_size("512Ki"), Ok(512 << 10));
        assert_eq!(parse_size("1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10M"), Ok(10_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("64MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("Mi").is_err());
        assert!(parse_size("99999999999999999999Gi").is_err());
    }
}
