//! ferrolb configuration: MetalLB's ConfigMap format and the metallb.io/v1beta1
//! CRDs, parsed strictly, merged and validated into one [`model::Config`].
//!
//! Pure: no Kubernetes client and no I/O; callers hand in the text.
//!
//! - [`load`]: the ConfigMap's `config` text and typed CRD lists (what the
//!   controller's watchers deliver) into the model.
//! - [`load_documents`]: YAML text of one or many documents (what the CLI reads).
//! - [`convert::convert`]: a ConfigMap into the equivalent CRD objects.

pub mod configmap;
pub mod convert;
pub mod crd;
pub mod documents;
pub mod duration;
pub mod error;
mod merge;
pub mod model;
pub mod overlap;
pub mod validate;

pub use error::{ConfigError, ConfigErrors};

/// Load the configuration from the ConfigMap's `config` text (or a whole
/// ConfigMap manifest), if there is one, and the custom resources.
///
/// Every problem of both sources is reported at once.
pub fn load(configmap: Option<&str>, crds: &crd::Resources) -> Result<model::Config, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let config = match configmap.map(configmap::parse) {
        Some(Ok(source)) => Some(source.config),
        Some(Err(e)) => {
            errors.extend(e);
            None
        }
        None => None,
    };
    load_parsed(config.as_ref(), crds, errors)
}

/// Load the configuration from YAML text holding a ConfigMap (manifest or
/// bare `config` text) and/or metallb.io/v1beta1 objects.
pub fn load_documents(text: &str) -> Result<model::Config, ConfigErrors> {
    documents::read(text).load()
}

impl documents::Documents {
    /// The configuration these documents describe, with the reading errors
    /// and every validation error together.
    pub fn load(&self) -> Result<model::Config, ConfigErrors> {
        load_parsed(
            self.configmap.as_ref().map(|c| &c.config),
            &self.resources,
            self.errors.clone(),
        )
    }
}

/// Validate and merge already parsed sources, adding to `errors`.
fn load_parsed(
    configmap: Option<&configmap::ConfigFile>,
    crds: &crd::Resources,
    mut errors: ConfigErrors,
) -> Result<model::Config, ConfigErrors> {
    let (mut draft, cm_errors) = configmap.map(validate::configmap).unwrap_or_default();
    errors.extend(cm_errors);
    let (crd_draft, crd_errors) = validate::resources(crds);
    errors.extend(crd_errors);
    draft.extend(crd_draft);
    merge::merge(draft, errors)
}
