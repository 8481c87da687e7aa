//! The operator's error type.

/// Everything that can go wrong at the edges. Pure steps do not fail: they decide.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
    #[error("the {crd} CRD is not installed: apply crds/ first ({source})")]
    CrdMissing {
        crd: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "RBAC does not allow what the operator needs; grant (see charts/tessera/templates/rbac.yaml): {}",
        .0.join(", ")
    )]
    Forbidden(Vec<String>),
    #[error("the object has no {0}")]
    MissingField(&'static str),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("leader election: {0}")]
    Lease(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Error::Kube(Box::new(error))
    }
}

impl Error {
    /// A short label for the `tessera_reconcile_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::CrdMissing { .. } => "crd_missing",
            Error::Forbidden(_) => "forbidden",
            Error::MissingField(_) => "missing_field",
            Error::Metrics(_) => "metrics",
            Error::Lease(_) => "lease",
            Error::Io(_) => "io",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
