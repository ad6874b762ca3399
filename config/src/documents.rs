//! Splitting YAML text (one or many documents) into the ConfigMap and the
//! typed custom resources, by `apiVersion` and `kind`.
//!
//! Accepted documents: a ConfigMap manifest (`data.config`), the bare text of
//! key `config`, the six `metallb.io/v1beta1` kinds, and `kind: List` of
//! those (what `kubectl get -o yaml` prints). Anything else is an error
//! naming the document.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::configmap::{self, ConfigFile, ConfigMapSource};
use crate::crd::{self, Resources};
use crate::error::{ConfigError, ConfigErrors};

/// What a text holds, and the problems found while reading it.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    /// The ConfigMap config, if any (at most one per configuration).
    pub configmap: Option<ConfigMapSource>,
    /// The custom resources.
    pub resources: Resources,
    /// Documents that could not be read (they are left out of the above).
    pub errors: ConfigErrors,
    /// Where the ConfigMap came from (see [`Documents::within`]), for messages.
    pub configmap_source: Option<String>,
}

impl Documents {
    /// Add what another text holds; a second ConfigMap is an error.
    pub fn extend(&mut self, other: Documents) {
        self.errors.extend(other.errors);
        self.resources.extend(other.resources);
        if let Some(cm) = other.configmap {
            if self.configmap.is_some() {
                let first = self.configmap_source.as_deref().unwrap_or("the input");
                self.errors.push(
                    other.configmap_source.unwrap_or_default(),
                    format!("a second ConfigMap config (the first is in {first}); ferrolb reads exactly one"),
                );
            } else {
                self.configmap = Some(cm);
                self.configmap_source = other.configmap_source;
            }
        }
    }

    /// Whether the text held nothing at all: no ConfigMap, no object and no
    /// error (empty, or only comments and `---`).
    pub fn is_empty(&self) -> bool {
        self.configmap.is_none() && self.resources.is_empty() && self.errors.is_empty()
    }

    /// Put `prefix` (e.g. a file name) in front of every reading error and
    /// remember it as where the ConfigMap came from.
    pub fn within(mut self, prefix: &str) -> Self {
        self.errors = self.errors.within(prefix);
        if self.configmap.is_some() {
            self.configmap_source = Some(prefix.to_string());
        }
        self
    }
}

/// Read every document of `text`; never fails, problems go to `errors`.
pub fn read(text: &str) -> Documents {
    let mut out = Documents::default();
    if is_bare_config(text) {
        // One bare `config` text: read it once, straight into its types
        // (twice as fast on big configs, and errors keep their lines).
        match configmap::parse_config(text) {
            Ok(config) => {
                out.configmap = Some(ConfigMapSource {
                    config,
                    ..ConfigMapSource::default()
                })
            }
            Err(e) => out.errors.extend(e),
        }
        return out;
    }
    let values: Vec<Value> =
        match serde_saphyr::from_multiple_with_options(text, configmap::yaml_options()) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push("", configmap::yaml_error(&e));
                return out;
            }
        };
    let values: Vec<(usize, Value)> = values
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(i, v)| (i + 1, v))
        .collect();
    let only_one = values.len() == 1;
    for (n, value) in values {
        if value.get("apiVersion").is_none() && value.get("kind").is_none() {
            // The bare text of key `config`; read from the text itself when it
            // is the only document, so errors keep their line numbers.
            let parsed = if only_one {
                configmap::parse_config(text)
            } else {
                typed::<ConfigFile>(value, &format!("document {n} (ConfigMap config)"))
            };
            match parsed {
                Ok(config) => out.extend(Documents {
                    configmap: Some(ConfigMapSource {
                        config,
                        ..ConfigMapSource::default()
                    }),
                    ..Documents::default()
                }),
                Err(e) => out.errors.extend(e),
            }
            continue;
        }
        let block = config_block_start(text, n);
        object(value, &format!("document {n}"), block, &mut out);
    }
    out
}

/// The lines of document `n` (1-based) of `text`: documents are separated
/// by lines starting with `---`; one before any content only opens the first.
fn document_lines(text: &str, n: usize) -> Option<(u64, Vec<&str>)> {
    let mut docs: Vec<(u64, Vec<&str>)> = vec![(1, Vec::new())];
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let number = u64::try_from(i).ok()? + 1;
        if line.starts_with("---") {
            if content || docs.len() > 1 {
                docs.push((number + 1, Vec::new()));
            } else {
                docs[0] = (number + 1, Vec::new());
            }
            content = true;
            continue;
        }
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            content = true;
        }
        if let Some(last) = docs.last_mut() {
            last.1.push(line);
        }
    }
    docs.into_iter().nth(n.checked_sub(1)?)
}

/// Where the literal or folded block of `data.config` of document `n` starts
/// in the file, when it is written as one (`config: |`).
fn config_block_start(text: &str, n: usize) -> Option<configmap::BlockStart> {
    let (first, lines) = document_lines(text, n)?;
    let data = lines
        .iter()
        .position(|l| l.trim_end() == "data:" || l.trim_start().starts_with("data:"))?;
    let offset = lines[data..].iter().position(|l| {
        let t = l.trim_start();
        t.strip_prefix("config:")
            .map(str::trim_start)
            .is_some_and(|v| v.starts_with('|') || v.starts_with('>'))
    })?;
    let header = data + offset;
    let key_indent = lines[header].len() - lines[header].trim_start().len();
    let indicator = lines[header]
        .trim_start()
        .trim_start_matches("config:")
        .trim_start()
        .chars()
        .skip(1)
        .take_while(|c| !c.is_whitespace())
        .find_map(|c| c.to_digit(10));
    let indent = match indicator {
        Some(d) => key_indent + usize::try_from(d).ok()?,
        None => {
            let body = lines[header + 1..].iter().find(|l| !l.trim().is_empty())?;
            body.len() - body.trim_start().len()
        }
    };
    Some(configmap::BlockStart {
        line: first + u64::try_from(header).ok()? + 1,
        indent: u64::try_from(indent).ok()?,
    })
}

/// Whether `text` is a single document without `apiVersion`/`kind`: the
/// bare text of key `config`.
fn is_bare_config(text: &str) -> bool {
    let mut content = false;
    for line in text.lines() {
        if line.starts_with("apiVersion:") || line.starts_with("kind:") {
            return false;
        }
        if line.starts_with("---") || line.starts_with("...") {
            if content {
                return false;
            }
            continue;
        }
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            content = true;
        }
    }
    content
}

/// Read every document of `text`, or every error.
pub fn parse(text: &str) -> Result<Documents, ConfigErrors> {
    let docs = read(text);
    if docs.errors.is_empty() {
        Ok(docs)
    } else {
        Err(docs.errors)
    }
}

/// What `object` accepts, for the message about anything else.
const KNOWN: &str = "a ConfigMap or a metallb.io/v1beta1 IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, Community or BFDProfile";

/// One Kubernetes object (or a List of them) into `out`.
fn object(value: Value, doc: &str, block: Option<configmap::BlockStart>, out: &mut Documents) {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    let here = match value.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{doc} ({kind} {ns}/{name})"),
        None => format!("{doc} ({kind} {name})"),
    };
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            if let Some(Value::Array(items)) = value.get("items") {
                for (i, item) in items.iter().enumerate() {
                    object(item.clone(), &format!("{doc} items[{i}]"), block, out);
                }
            }
            return;
        }
        ("v1", "ConfigMap") => {
            match configmap::from_manifest_at(value, block) {
                Ok(cm) => out.extend(Documents {
                    configmap: Some(cm),
                    ..Documents::default()
                }),
                Err(e) => out.errors.extend(e.within(doc)),
            }
            return;
        }
        _ => {}
    }
    let (r, e) = (&mut out.resources, &mut out.errors);
    match (api_version.as_str(), kind.as_str()) {
        (crd::API_VERSION, "IPAddressPool") => push(value, &here, &mut r.ip_address_pools, e),
        (crd::API_VERSION, "L2Advertisement") => push(value, &here, &mut r.l2_advertisements, e),
        (crd::API_VERSION, "BGPAdvertisement") => push(value, &here, &mut r.bgp_advertisements, e),
        (crd::API_VERSION, "BGPPeer") => push(value, &here, &mut r.bgp_peers, e),
        (crd::API_VERSION, "Community") => push(value, &here, &mut r.communities, e),
        (crd::API_VERSION, "BFDProfile") => push(value, &here, &mut r.bfd_profiles, e),
        (version, _) if version.starts_with("metallb.io/") => e.push(
            here,
            format!(
                "apiVersion {version} is not supported (ferrolb reads {})",
                crd::API_VERSION
            ),
        ),
        (version, kind) => e.push(
            here,
            format!("unknown kind {kind:?} (apiVersion {version:?}): expected {KNOWN}"),
        ),
    }
}

/// Decode into `T`, naming the field that failed.
fn typed<T: DeserializeOwned>(value: Value, here: &str) -> Result<T, ConfigErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let error = if path == "." {
            ConfigError::new(here, message)
        } else {
            ConfigError::new(format!("{here}: {path}"), message)
        };
        error.into()
    })
}

/// Decode a metallb.io object into its list, giving it an empty `spec`
/// when it has none and its kind allows that (as the API server's
/// defaulting does).
fn push<T: DeserializeOwned>(
    mut value: Value,
    here: &str,
    list: &mut Vec<T>,
    errors: &mut ConfigErrors,
) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let spec_optional = crd::SPEC_OPTIONAL.contains(&kind);
    if spec_optional
        && let Some(map) = value.as_object_mut()
        && map.get("spec").is_none_or(Value::is_null)
    {
        map.insert("spec".into(), Value::Object(serde_json::Map::new()));
    }
    match typed(value, here) {
        Ok(obj) => list.push(obj),
        Err(e) => errors.extend(e),
    }
}
