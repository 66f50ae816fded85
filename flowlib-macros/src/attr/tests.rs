//! Unit tests of the step attributes: the unit rules, and the keys and values of each
//! attribute.

use super::*;

/// The grammar is `flowlib_units`'s (tested there); these are the step's own rules.
#[test]
fn step_unit_rules() {
    assert_eq!(parse_memory("1.5GiB"), Ok(3 << 29));
    assert!(parse_memory("4").unwrap_err().contains("has no unit"));
    assert!(parse_memory("0GiB")
        .unwrap_err()
        .contains("at least 1 byte"));
    assert!(parse_memory("4GB")
        .unwrap_err()
        .contains("did you mean \"4GiB\""));
    assert_eq!(parse_duration("1.5h"), Ok(5_400_000));
    assert_eq!(parse_duration("1.0006s"), Ok(1_001));
    assert!(parse_duration("100000000d")
        .unwrap_err()
        .contains("too large"));
}

fn messages(attr: Attribute) -> Vec<String> {
    let cx = Ctxt::new();
    let _ = parse_step_attrs(&cx, &[attr]);
    cx.messages()
}

#[test]
fn unknown_keys_list_the_valid_ones_and_suggest() {
    let cases: Vec<(Attribute, &str)> = vec![
        (
            syn::parse_quote!(#[step(nxt = a)]),
            "(did you mean `next`?); valid keys are: start, end, join, next, foreach",
        ),
        (
            syn::parse_quote!(#[resources(cpus = 2)]),
            "(did you mean `cpu`?); valid keys are: cpu, memory, gpu",
        ),
        (
            syn::parse_quote!(#[resources(ram = "1GiB")]),
            "(did you mean `memory`?)",
        ),
        (
            syn::parse_quote!(#[retry(attempts = 3)]),
            "(did you mean `times`?); valid keys are: times, delay",
        ),
        (
            syn::parse_quote!(#[timeout(mins = 3)]),
            "(did you mean `minutes`?); valid keys are: seconds, minutes, hours",
        ),
        (
            syn::parse_quote!(#[catch(var = e)]),
            "(did you mean `field`?); valid keys are: field",
        ),
    ];
    for (attr, expected) in cases {
        let msgs = messages(attr);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains(expected), "{} lacks {expected}", msgs[0]);
    }
}

#[test]
fn duplicates() {
    let cx = Ctxt::new();
    let attrs: Vec<Attribute> = vec![
        syn::parse_quote!(#[retry(times = 2)]),
        syn::parse_quote!(#[retry(times = 3)]),
    ];
    let _ = parse_step_attrs(&cx, &attrs);
    assert_eq!(
        cx.messages(),
        ["duplicate `#[retry]` attribute: a step takes it once, remove one of them"]
    );
    assert_eq!(
        messages(syn::parse_quote!(#[resources(cpu = 2, cpu = 4)])),
        ["duplicate key `cpu` in `#[resources]`: give each key once"]
    );
}

#[test]
fn values() {
    assert!(messages(syn::parse_quote!(#[resources(memory = 4096)]))[0]
        .contains("`memory` needs a unit: write `memory = \"4096MiB\"`"));
    assert!(messages(syn::parse_quote!(#[resources(memory = "4GB")]))[0]
        .contains("did you mean \"4GiB\"?"));
    assert!(messages(syn::parse_quote!(#[timeout("2 weeks")]))[0]
        .contains("invalid duration unit `weeks`"));
    assert!(
        messages(syn::parse_quote!(#[step(foreach = "xs")]))[0].contains("write `foreach = xs`")
    );
    assert!(messages(syn::parse_quote!(#[step(start, next = a)])).is_empty());
    assert!(messages(syn::parse_quote!(#[timeout(hours = 1, minutes = 30)])).is_empty());
}
