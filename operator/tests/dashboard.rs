//! The Grafana dashboard (`config/grafana/tessera-dashboard.json`) queries only what the operator
//! exports: every `tessera_*` name in a panel query or template variable is a metric family
//! registered by `Metrics::new()` (histograms through their `_bucket`/`_sum`/`_count` series),
//! every label it selects or groups by is a label of those metrics, every `$variable` exists,
//! every exported metric has a panel, and panel ids are unique.
//!
//! The checker is a deliberately small PromQL scanner (identifiers, `{…}` matchers, `by`/`without`
//! clauses, string literals); `the_checks_catch_mistakes` proves that it fails on the mistakes it
//! is meant to catch.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::core::Collector;
use prometheus::proto::MetricType;
use serde_json::{Value, json};
use tessera_operator::metrics::Metrics;

const DASHBOARD: &str = include_str!("../../config/grafana/tessera-dashboard.json");

/// Variables Grafana defines itself.
const GRAFANA_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range"];

/// A metric family as the registry gathers it.
#[derive(Debug)]
struct Family {
    kind: MetricType,
    labels: BTreeSet<String>,
}

/// The families `Metrics::new()` registers, with their label names.
fn registered_families() -> BTreeMap<String, Family> {
    let metrics = Metrics::new().expect("the metrics register");
    // `gather()` leaves out a Vec metric that has no child yet: give each one child, with as many
    // label values as its descriptor has variable labels.
    macro_rules! touch {
        ($($vec:expr),* $(,)?) => {$({
            let labels = $vec.desc().iter().map(|d| d.variable_labels.len()).max().unwrap_or(0);
            let _ = $vec.with_label_values(&vec!["x"; labels]);
        })*};
    }
    touch!(
        metrics.shards,
        metrics.queue_depth,
        metrics.shard_duration,
        metrics.gpu_seconds,
        metrics.shards_rendered,
        metrics.pool_usage_gpu_seconds,
        metrics.pool_usage_shards,
        metrics.pool_usage_cost,
        metrics.pool_period_gpu_seconds,
        metrics.reconcile_duration,
        metrics.reconcile_errors,
        metrics.pods_created,
        metrics.pool_ready_nodes,
        metrics.pool_gpus,
        metrics.pool_shard_capacity,
        metrics.pool_running_shards,
    );
    metrics
        .registry
        .gather()
        .iter()
        .map(|family| {
            let labels = family
                .get_metric()
                .iter()
                .flat_map(|m| m.get_label())
                .map(|l| l.name().to_string())
                .collect();
            (
                family.name().to_string(),
                Family {
                    kind: family.get_field_type(),
                    labels,
                },
            )
        })
        .collect()
}

/// What one query uses.
#[derive(Debug, Default)]
struct Scan {
    /// `(metric, labels in its {…} matchers)`.
    selectors: Vec<(String, Vec<String>)>,
    /// Labels in `by (…)` / `without (…)` clauses.
    grouping: Vec<String>,
    /// `$name` and `${name}` references.
    variables: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Scans a PromQL expression (or a `label_values(…)` variable query).
fn scan(expr: &str) -> Scan {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Scan::default();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let ident_at = |mut i: usize| {
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        (chars[start..i].iter().collect::<String>(), i)
    };
    // Skips a string literal starting at `i`; returns the index after its closing quote.
    let skip_string = |mut i: usize| {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            if chars[i] == '\\' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // Variables inside strings (`pool=~"$pool"`) count too.
            let end = skip_string(i).min(chars.len());
            let inner: String = chars[i + 1..end.saturating_sub(1)].iter().collect();
            out.variables.extend(scan(&inner).variables);
            i = end;
        } else if c == '$' {
            let braced = chars.get(i + 1) == Some(&'{');
            let (name, end) = ident_at(i + 1 + usize::from(braced));
            out.variables.push(name);
            i = end + usize::from(braced);
        } else if is_ident_start(c) && (i == 0 || !is_ident(chars[i - 1])) {
            let (word, end) = ident_at(i);
            i = end;
            if word.starts_with("tessera_") {
                let mut labels = Vec::new();
                let j = skip_space(i);
                if chars.get(j) == Some(&'{') {
                    i = j + 1;
                    let mut expect_label = true;
                    while i < chars.len() && chars[i] != '}' {
                        let c = chars[i];
                        if c == '"' || c == '\'' || c == '`' {
                            let end = skip_string(i).min(chars.len());
                            let inner: String =
                                chars[i + 1..end.saturating_sub(1)].iter().collect();
                            out.variables.extend(scan(&inner).variables);
                            i = end;
                        } else if expect_label && is_ident_start(c) {
                            let (label, end) = ident_at(i);
                            labels.push(label);
                            expect_label = false;
                            i = end;
                        } else {
                            if c == ',' {
                                expect_label = true;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                out.selectors.push((word, labels));
            } else if word == "by" || word == "without" {
                let j = skip_space(i);
                if chars.get(j) == Some(&'(') {
                    i = j + 1;
                    while i < chars.len() && chars[i] != ')' {
                        if is_ident_start(chars[i]) {
                            let (label, end) = ident_at(i);
                            out.grouping.push(label);
                            i = end;
                        } else {
                            i += 1;
                        }
                    }
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The family a series name belongs to, and the labels a selector on it may use.
fn resolve(name: &str, families: &BTreeMap<String, Family>) -> Result<BTreeSet<String>, String> {
    if let Some(family) = families.get(name) {
        if family.kind == MetricType::HISTOGRAM {
            return Err(format!(
                "{name} is a histogram: query {name}_bucket, {name}_sum or {name}_count"
            ));
        }
        return Ok(family.labels.clone());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        let Some(family) = families.get(base) else {
            continue;
        };
        if family.kind != MetricType::HISTOGRAM {
            return Err(format!("{name}: {base} is not a histogram"));
        }
        let mut labels = family.labels.clone();
        if suffix == "_bucket" {
            labels.insert("le".into());
        }
        return Ok(labels);
    }
    Err(format!(
        "{name} is not registered by Metrics::new() (registered: {})",
        families.keys().cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// Problems with one query; `used` collects the families it touches.
fn check_query(
    query: &str,
    families: &BTreeMap<String, Family>,
    variables: &BTreeSet<String>,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let scan = scan(query);
    let mut available = BTreeSet::new();
    for (metric, labels) in &scan.selectors {
        match resolve(metric, families) {
            Ok(known) => {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| metric.strip_suffix(s).filter(|b| families.contains_key(*b)))
                    .unwrap_or(metric);
                used.insert(family.to_string());
                for label in labels {
                    if !known.contains(label) {
                        problems.push(format!(
                            "{query:?}: {metric} has no label {label:?} (labels: {known:?})"
                        ));
                    }
                }
                available.extend(known);
            }
            Err(problem) => problems.push(format!("{query:?}: {problem}")),
        }
    }
    let mut grouping = scan.grouping.clone();
    // label_values(metric, label): the label must exist too.
    if let Some(args) = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        && let Some((_, label)) = args.rsplit_once(',')
    {
        grouping.push(label.trim().to_string());
    }
    for label in grouping {
        if !available.contains(&label) {
            problems.push(format!(
                "{query:?}: groups by {label:?}, which none of its metrics has (labels: {available:?})"
            ));
        }
    }
    if scan.selectors.iter().any(|(m, _)| m.ends_with("_bucket"))
        && query.contains("histogram_quantile")
        && !scan.grouping.iter().any(|l| l == "le")
    {
        problems.push(format!("{query:?}: histogram_quantile needs `by (…, le)`"));
    }
    for variable in scan.variables {
        if !variables.contains(&variable) && !GRAFANA_VARIABLES.contains(&variable.as_str()) {
            problems.push(format!("{query:?}: undefined variable ${variable}"));
        }
    }
    problems
}

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every problem with a dashboard, checked against `families`.
fn dashboard_problems(dashboard: &Value, families: &BTreeMap<String, Family>) -> Vec<String> {
    let mut problems = Vec::new();
    let templating: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let variables: BTreeSet<String> = templating
        .iter()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let mut used = BTreeSet::new();

    for variable in &templating {
        let query = match &variable["query"] {
            Value::String(q) => Some(q.as_str()),
            Value::Object(q) => q.get("query").and_then(Value::as_str),
            _ => None,
        };
        if variable["type"] == "query"
            && let Some(query) = query
        {
            problems.extend(check_query(query, families, &variables, &mut used));
        }
    }

    let mut ids = BTreeSet::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => {
                problems.push(format!("panel id {id} ({title:?}) is not unique"))
            }
            Some(_) => {}
            None => problems.push(format!("panel {title:?} has no numeric id")),
        }
        if panel["type"] == "row" || panel["type"] == "text" {
            continue;
        }
        if panel["datasource"]["uid"] != "${datasource}" {
            problems.push(format!(
                "panel {title:?} does not use the ${{datasource}} variable"
            ));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if targets.is_empty() {
            problems.push(format!("panel {title:?} has no queries"));
        }
        for target in targets {
            match target["expr"].as_str() {
                Some(expr) => problems.extend(check_query(expr, families, &variables, &mut used)),
                None => problems.push(format!("panel {title:?} has a target without expr")),
            }
        }
    }

    for family in families.keys() {
        if !used.contains(family) {
            problems.push(format!("no panel shows {family}"));
        }
    }
    problems
}

#[test]
fn the_dashboard_queries_only_registered_metrics_and_has_unique_panel_ids() {
    let dashboard: Value =
        serde_json::from_str(DASHBOARD).expect("tessera-dashboard.json is valid JSON");
    let families = registered_families();
    assert_eq!(
        families.len(),
        16,
        "the test touches every metric of Metrics; update it when Metrics changes: {:?}",
        families.keys()
    );
    let problems = dashboard_problems(&dashboard, &families);
    assert!(
        problems.is_empty(),
        "dashboard problems:\n  {}",
        problems.join("\n  ")
    );
    for name in ["datasource", "namespace", "pool"] {
        assert!(
            dashboard["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == name),
            "template variable {name} is missing"
        );
    }
}

#[test]
fn the_checks_catch_mistakes() {
    let families = registered_families();
    let panel = |id: u64, expr: &str| {
        json!({"id": id, "type": "timeseries", "title": expr,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "targets": [{"refId": "A", "expr": expr}]})
    };
    let dashboard_with = |panels: Vec<Value>| {
        json!({"templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "pool", "type": "query", "query": "label_values(tessera_queue_depth, pool)"},
        ]}, "panels": panels})
    };
    let problems_of = |expr: &str| {
        let dashboard = dashboard_with(vec![panel(1, expr)]);
        dashboard_problems(&dashboard, &families)
            .into_iter()
            .filter(|p| !p.starts_with("no panel shows"))
            .collect::<Vec<_>>()
    };

    assert_eq!(
        problems_of(r#"sum by (state) (tessera_shards{pool=~"$pool"})"#),
        Vec::<String>::new()
    );
    let bad = [
        ("misspelled metric", r#"sum(tessera_shard{pool="a"})"#),
        ("bare histogram name", "tessera_shard_duration_seconds"),
        (
            "suffix on a non-histogram",
            "rate(tessera_shards_bucket[5m])",
        ),
        (
            "label the metric lacks",
            r#"tessera_queue_depth{namespace="x"}"#,
        ),
        (
            "grouping label nobody has",
            "sum by (node) (tessera_shards)",
        ),
        (
            "quantile without le",
            "histogram_quantile(0.9, sum by (pool) (rate(tessera_shard_duration_seconds_bucket[5m])))",
        ),
        (
            "undefined variable",
            r#"tessera_queue_depth{pool=~"$pools"}"#,
        ),
    ];
    for (what, expr) in bad {
        assert!(
            !problems_of(expr).is_empty(),
            "{what} was not caught: {expr}"
        );
    }

    let duplicate = dashboard_with(vec![
        panel(7, "sum(tessera_queue_depth)"),
        json!({"id": 8, "type": "row", "title": "row", "panels": [panel(7, "sum(tessera_queue_depth)")]}),
    ]);
    assert!(
        dashboard_problems(&duplicate, &families)
            .iter()
            .any(|p| p.contains("panel id 7")),
        "a duplicate panel id (in a row) was not caught"
    );
    assert!(
        dashboard_problems(&dashboard_with(vec![]), &families)
            .iter()
            .any(|p| p == "no panel shows tessera_gpu_seconds_total"),
        "a metric without a panel was not caught"
    );
}
