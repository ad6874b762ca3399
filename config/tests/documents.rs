//! Reading documents: empty input, the ConfigMap's name, and YAML positions
//! inside `data.config` given in the file's lines and columns.

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrolb_config::documents;

#[test]
fn nothing_but_comments_is_empty() {
    for text in ["", "\n\n", "# a\n---\n# b\n", "---\n---\n"] {
        assert!(documents::read(text).is_empty(), "{text:?}");
    }
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata: {config: ''}\n";
    assert!(!documents::read(cm).is_empty());
    assert!(!documents::read("address-pools: []\n").is_empty());
}

#[test]
fn a_manifest_keeps_its_name_and_namespace() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine, namespace: lb}\ndata: {config: ''}\n";
    let source = documents::read(cm).configmap.unwrap();
    assert_eq!(source.name.as_deref(), Some("mine"));
    assert_eq!(source.namespace.as_deref(), Some("lb"));
    assert_eq!(documents::read("peers: []\n").configmap.unwrap().name, None);
}

#[test]
fn yaml_errors_in_data_config_are_at_file_positions() {
    // Document 2 starts after line 3; `config: |2` is line 8 (content
    // indented 2 + 2 = 4), so the `[` of `      protocol: [` is at file
    // line 11, column 17 (block line 3, column 13).
    let text = "kind: List\napiVersion: v1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |2\n    address-pools:\n    - name: a\n      protocol: [\n    - name: b\n";
    let errors: Vec<String> = documents::read(text)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("document 2: ConfigMap config: config: ")
            && errors[0].ends_with("at line 11, column 17"),
        "{errors:?}"
    );
}
