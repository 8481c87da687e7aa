//! Prints every Tessera CRD as one multi-document YAML stream (`cargo run --bin crdgen`), or
//! with `--helm` as the Helm chart's `templates/crds.yaml`. `scripts/generate.sh` runs both.

fn main() -> Result<(), serde_yaml::Error> {
    let crds = tessera_operator::api::crds();
    match std::env::args().nth(1).as_deref() {
        Some("--helm") => print!("{}", tessera_operator::api::helm_crds_template(&crds)?),
        _ => print!("{}", tessera_operator::api::crds_yaml(&crds)?),
    }
    Ok(())
}
