//! Prints every Tessera CRD as one multi-document YAML stream (`cargo run --bin crdgen`).

fn main() -> Result<(), serde_yaml::Error> {
    for crd in tessera_operator::api::crds() {
        print!("---\n{}", serde_yaml::to_string(&crd)?);
    }
    Ok(())
}
