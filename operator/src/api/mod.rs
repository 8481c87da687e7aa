//! The `tessera.dev/v1alpha1` API: `RenderPool` (cluster-scoped) and `RenderJob` (namespaced).
//!
//! Every field's doc comment becomes its `kubectl explain` text. The API server enforces the
//! bounds, patterns and CEL rules written here, so most bad manifests never reach the operator.

pub mod render_job;
pub mod render_pool;
pub mod validation;

pub use render_job::*;
pub use render_pool::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD this operator serves, in install order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![RenderPool::crd(), RenderJob::crd()]
}

/// Every CRD as one multi-document YAML stream: what `crds/` holds.
pub fn crds_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml::Error> {
    crds.iter()
        .map(|crd| Ok(format!("---\n{}", serde_yaml::to_string(crd)?)))
        .collect()
}

const KEEP_ANNOTATION: &str = "helm.sh/resource-policy";

/// The chart's `templates/crds.yaml`: the same CRDs as templates, so `helm upgrade` upgrades
/// them (Helm never upgrades its `crds/` directory), installed when `crds.install` is set and
/// kept on `helm uninstall` when `crds.keep` is set, so uninstalling never deletes RenderJobs.
pub fn helm_crds_template(crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml::Error> {
    let keep_line = format!("    {KEEP_ANNOTATION}: keep\n");
    let mut out = String::from(
        "{{- /* Generated from operator/src/api by scripts/generate.sh: do not edit. */}}\n\
         {{- if .Values.crds.install }}\n",
    );
    for crd in crds {
        let mut crd = crd.clone();
        crd.metadata
            .annotations
            .get_or_insert_default()
            .insert(KEEP_ANNOTATION.into(), "keep".into());
        let yaml = serde_yaml::to_string(&crd)?;
        // Descriptions are free text: nothing in them may read as a template action.
        assert!(
            !yaml.contains("{{"),
            "a CRD contains '{{{{', which Helm would evaluate"
        );
        let templated = yaml.replacen(
            &keep_line,
            &format!("{{{{- if .Values.crds.keep }}}}\n{keep_line}{{{{- end }}}}\n"),
            1,
        );
        out.push_str("---\n");
        out.push_str(&templated);
    }
    out.push_str("{{- end }}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helm_template_wraps_every_crd_and_makes_keeping_optional() {
        let template = helm_crds_template(&crds()).unwrap();
        assert!(template.contains("{{- if .Values.crds.install }}"));
        assert_eq!(
            template.matches("kind: CustomResourceDefinition").count(),
            2
        );
        assert_eq!(
            template
                .matches(
                    "{{- if .Values.crds.keep }}\n    helm.sh/resource-policy: keep\n{{- end }}"
                )
                .count(),
            2
        );
        assert!(template.trim_end().ends_with("{{- end }}"));
    }
}
