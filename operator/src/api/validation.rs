//! CEL rules shared by several fields (each field adds its own message naming itself).
//!
//! The API server evaluates them (CRD `x-kubernetes-validations`); the operator checks the same
//! and more in `storage_url` (docs/security.md, "What the API server refuses").

/// A URL whose path has no `.` or `..` segment, also percent-encoded (`%2e`, any case).
pub const NO_DOT_SEGMENTS: &str = r"!self.matches('(?i)/(\\.|%2e){1,2}(/|$)')";

/// A URL whose path (after `scheme://`) has no empty segment (`//`).
pub const NO_EMPTY_SEGMENTS: &str = r"!self.substring(self.indexOf('://') + 3).contains('//')";

/// [`NO_DOT_SEGMENTS`] for every item of a list of URLs.
pub const ALL_NO_DOT_SEGMENTS: &str = r"self.all(p, !p.matches('(?i)/(\\.|%2e){1,2}(/|$)'))";

/// [`NO_EMPTY_SEGMENTS`] for every item of a list of URLs.
pub const ALL_NO_EMPTY_SEGMENTS: &str =
    r"self.all(p, !p.substring(p.indexOf('://') + 3).contains('//'))";

/// A path without `.` or `..` segments.
pub const NO_DOT_PATH_SEGMENTS: &str = r"!self.matches('(^|/)\\.\\.?(/|$)')";

/// A positive Kubernetes quantity (an int-or-string field).
pub const POSITIVE_QUANTITY: &str =
    r"isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))";
