//! Which part of a result becomes a table's rows and columns: benchstat's `-row`, `-col`
//! and `-ignore` keys.
//!
//! A key is `.file` (the input a result came from), `.name` (the base name), `.fullname`
//! (the whole name), `/key` (a `key=value` part of the name, or `/gomaxprocs` for the `-N`
//! suffix) or any other word, a file configuration key such as `commit`. A projection is a
//! comma-separated list of keys. Keys named by one projection drop out of the others:
//! `-col /size` takes the `size=` part out of `.fullname`, and `-col commit` takes `commit`
//! out of the table key.

use crate::benchfmt::BenchResult;

/// One key of a projection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// `.file`: the label of the input the result came from.
    File,
    /// `.name`: the base name (the text before the first `/`).
    Name,
    /// `.fullname`: the whole name, minus the name parts other projections use.
    FullName,
    /// `/key`: the value of a `key=value` name part (`gomaxprocs`: the `-N` suffix).
    NamePart(String),
    /// A file configuration key.
    Config(String),
}

/// Why a projection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// A key between commas is empty.
    #[error("empty key in {0:?}")]
    EmptyKey(String),
    /// A key benchstat knows that this comparison does not offer.
    #[error(
        "{0:?} is not a key here: use .file, .name, .fullname, /name-part or a configuration key"
    )]
    Unsupported(String),
}

impl Field {
    /// Parses one key.
    pub fn parse(key: &str) -> Result<Field, ProjectionError> {
        let key = key.trim();
        Ok(match key {
            "" => return Err(ProjectionError::EmptyKey(key.into())),
            ".file" => Field::File,
            ".name" => Field::Name,
            ".fullname" => Field::FullName,
            // benchstat's sort orders (`key@(a b)`), filters and the `.config`/`.unit` groups.
            _ if key.contains(['@', '(', ')', ':', ' ']) || key.starts_with('.') => {
                return Err(ProjectionError::Unsupported(key.into()));
            }
            _ => match key.strip_prefix('/') {
                Some("") => return Err(ProjectionError::Unsupported(key.into())),
                Some(part) => Field::NamePart(part.into()),
                None => Field::Config(key.into()),
            },
        })
    }

    /// This key's value for one result of the input labelled `file`. `name_exclusions`
    /// are the name keys that other projections use (they leave `.fullname`).
    pub(super) fn value(&self, r: &BenchResult, file: &str, name_exclusions: &[&Field]) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Field::File => file.to_string(),
            Field::Name => text(r.base_name()),
            Field::FullName => full_name(&r.name, name_exclusions),
            Field::NamePart(k) => r.name_key(k.as_bytes()).map(text).unwrap_or_default(),
            Field::Config(k) => config_value(r, k),
        }
    }
}

/// The value of file configuration key `key` (empty when the result has none).
pub(super) fn config_value(r: &BenchResult, key: &str) -> String {
    r.config
        .iter()
        .find(|c| c.file && c.key == key.as_bytes())
        .map(|c| String::from_utf8_lossy(&c.value).into_owned())
        .unwrap_or_default()
}

/// A comma-separated list of keys; a result's key under it is one value per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection(pub Vec<Field>);

impl Projection {
    /// Parses `a,b,c`.
    pub fn parse(spec: &str) -> Result<Projection, ProjectionError> {
        spec.split(',')
            .map(Field::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Projection)
    }

    /// The configuration keys this projection names.
    pub fn config_keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|f| match f {
            Field::Config(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// The result's values under this projection.
    pub(super) fn values(
        &self,
        r: &BenchResult,
        file: &str,
        name_exclusions: &[&Field],
    ) -> Vec<String> {
        self.0
            .iter()
            .map(|f| f.value(r, file, name_exclusions))
            .collect()
    }
}

/// The full name without the parts that `exclusions` name: a `/key` drops its `key=value`
/// part (`/gomaxprocs` the `-N` suffix too), `.name` turns the base name into `*`.
fn full_name(name: &[u8], exclusions: &[&Field]) -> String {
    let name = String::from_utf8_lossy(name);
    if exclusions.is_empty() {
        return name.into_owned();
    }
    let drops_part = |k: &str| {
        exclusions
            .iter()
            .any(|f| matches!(f, Field::NamePart(p) if p == k))
    };
    let mut rest: &str = &name;
    let mut procs = "";
    if let Some((head, digits)) = rest.rsplit_once('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        rest = head;
        procs = digits;
    }
    let mut parts = rest.split('/');
    let base = parts.next().unwrap_or_default();
    let mut out = if exclusions.contains(&&Field::Name) {
        "*".to_string()
    } else {
        base.to_string()
    };
    for part in parts {
        let key = part.split_once('=').map(|(k, _)| k);
        if key.is_some_and(drops_part) {
            continue;
        }
        out.push('/');
        out.push_str(part);
    }
    if !procs.is_empty() && !drops_part("gomaxprocs") {
        out.push('-');
        out.push_str(procs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_benchstat_spells_them() {
        assert_eq!(
            Projection::parse(".file,/size, commit").unwrap(),
            Projection(vec![
                Field::File,
                Field::NamePart("size".into()),
                Field::Config("commit".into())
            ])
        );
        assert!(matches!(
            Projection::parse("a,,b"),
            Err(ProjectionError::EmptyKey(_))
        ));
        for bad in [".config", ".unit", "/", "commit@(a b)", "x:y"] {
            assert!(
                matches!(Field::parse(bad), Err(ProjectionError::Unsupported(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn full_name_drops_the_parts_other_projections_use() {
        let size = Field::NamePart("size".into());
        let procs = Field::NamePart("gomaxprocs".into());
        let n = b"CRC32/poly=IEEE/size=15/align=0-8";
        assert_eq!(full_name(n, &[]), "CRC32/poly=IEEE/size=15/align=0-8");
        assert_eq!(full_name(n, &[&size]), "CRC32/poly=IEEE/align=0-8");
        assert_eq!(full_name(n, &[&procs]), "CRC32/poly=IEEE/size=15/align=0");
        assert_eq!(
            full_name(n, &[&Field::Name, &size]),
            "*/poly=IEEE/align=0-8"
        );
        assert_eq!(full_name(b"Plain-4", &[&size]), "Plain-4");
    }
}
