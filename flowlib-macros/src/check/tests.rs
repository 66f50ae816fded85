//! Unit tests of the graph rules: each flow is parsed and checked, and the messages are
//! matched.

use super::*;
use crate::ast::parse_flow;

/// Parse and check an impl block: the messages, and whether the flow is implementable.
fn run(item: syn::ItemImpl) -> (Vec<String>, Option<Analysis>, bool) {
    let cx = Ctxt::new();
    let ir = parse_flow(&cx, &item);
    let an = check(&cx, &ir);
    let failed = cx.has_errors();
    (cx.messages(), an, failed)
}

/// The single message of a flow with one mistake.
fn one_error(item: syn::ItemImpl) -> String {
    let (msgs, an, failed) = run(item);
    assert!(failed, "expected an error");
    assert!(an.is_none() || msgs.len() == 1);
    assert_eq!(msgs.len(), 1, "expected exactly one message, got {msgs:#?}");
    msgs.into_iter().next().unwrap()
}

#[test]
fn linear_flow_is_valid() {
    let (msgs, an, failed) = run(syn::parse_quote! {
        impl F {
            #[step(start, next = b)] fn a(&mut self) -> Result<()> { Ok(()) }
            #[step(next = c)] fn b(&mut self) {}
            #[step(end)] fn c(&mut self) -> Result<()> { Ok(()) }
        }
    });
    assert!(msgs.is_empty(), "{msgs:?}");
    assert!(!failed);
    let an = an.unwrap();
    assert_eq!(an.next, vec![vec![1], vec![2], vec![]]);
    assert_eq!(an.preds, vec![vec![], vec![0], vec![1]]);
    assert_eq!(an.depth, vec![0, 0, 0]);
}

#[test]
fn nested_foreach_and_branch_frames() {
    let (msgs, an, _) = run(syn::parse_quote! {
        impl F {
            #[step(start, next = outer, foreach = xs)] fn start(&mut self) {}
            #[step(next = inner, foreach = ys)] fn outer(&mut self, x: &u32) {}
            #[step(next = [l, r])] fn inner(&mut self, y: u32) {}
            #[step(next = merge)] fn l(&mut self) {}
            #[step(next = merge)] fn r(&mut self) {}
            #[step(join, next = join_inner)] fn merge(&mut self, inputs: Inputs<Self>) {}
            #[step(join, next = join_outer)] fn join_inner(&mut self, inputs: Inputs<Self>) {}
            #[step(join, next = end)] fn join_outer(&mut self, inputs: Inputs<Self>, ctx: &mut Ctx) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msgs.is_empty(), "{msgs:?}");
    let an = an.unwrap();
    assert_eq!(an.depth, vec![0, 1, 2, 2, 2, 2, 1, 0, 0]);
    assert_eq!(an.closed_by[0], Some(7));
    assert_eq!(an.closed_by[1], Some(6));
    assert_eq!(an.closed_by[2], Some(5));
    assert_eq!(
        an.closes[5],
        Some(Frame {
            split: 2,
            kind: FrameKind::Branch
        })
    );
    assert_eq!(
        an.closes[7],
        Some(Frame {
            split: 0,
            kind: FrameKind::Foreach
        })
    );
}

#[test]
fn unknown_next_target_suggests() {
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = fti)] fn start(&mut self) {}
            #[step(next = end)] fn fit(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("unknown step `fti`"), "{msg}");
    assert!(msg.contains("did you mean `fit`?"), "{msg}");
}

#[test]
fn start_and_end_counts() {
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(next = end)] fn a(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("no start step"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = end)] fn a(&mut self) {}
            #[step(start, next = end)] fn b(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("exactly one start step"), "{msg}");

    // No end step: the dangling step is named, once.
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = b)] fn a(&mut self) {}
            #[step] fn b(&mut self) {}
        }
    });
    assert!(
        msg.contains("step `b` has no `next` and the flow has no end step"),
        "{msg}"
    );

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = a)] fn start(&mut self) {}
            #[step(next = b)] fn a(&mut self) {}
            #[step(next = a)] fn b(&mut self) {}
        }
    });
    assert!(msg.contains("no end step"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = [a, b])] fn start(&mut self) {}
            #[step(end)] fn a(&mut self) {}
            #[step(end)] fn b(&mut self) {}
        }
    });
    assert!(msg.contains("exactly one end step"), "{msg}");
}

#[test]
fn next_rules() {
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = end)] fn start(&mut self) {}
            #[step(end, next = start)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("cannot have `next`"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = a)] fn start(&mut self) {}
            #[step] fn a(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("step `a` has no `next`"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = [a, b], foreach = xs)] fn start(&mut self) {}
            #[step(next = b)] fn a(&mut self, x: &u8) {}
            #[step(join, next = end)] fn b(&mut self, inputs: Inputs<Self>) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("exactly one `next`"), "{msg}");
}

#[test]
fn unreachable_and_cycles() {
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = end)] fn start(&mut self) {}
            #[step(next = end)] fn orphan(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("`orphan` is unreachable"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = a)] fn start(&mut self) {}
            #[step(next = b)] fn a(&mut self) {}
            #[step(next = [a, end])] fn b(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("creates a cycle (a -> b -> a)"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = a)] fn start(&mut self) {}
            #[step(next = start)] fn a(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("points back at the start step"), "{msg}");
}

#[test]
fn joins_close_exactly_their_split() {
    // A branch join reached by one arm only: the missing arm is named, and the step
    // where the arms meet is not reported as well.
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = [left, right])] fn start(&mut self) {}
            #[step(next = merge)] fn left(&mut self) {}
            #[step(next = end)] fn right(&mut self) {}
            #[step(join, next = end)] fn merge(&mut self, inputs: Inputs<Self>) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("its arm `right` never reaches it"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = merge)] fn start(&mut self) {}
            #[step(join, next = end)] fn merge(&mut self, inputs: Inputs<Self>) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("has no split to close"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = [fan, plain])] fn start(&mut self) {}
            #[step(next = fit, foreach = xs)] fn fan(&mut self) {}
            #[step(next = merge)] fn fit(&mut self, x: &f64) {}
            #[step(next = merge)] fn plain(&mut self) {}
            #[step(join, next = end)] fn merge(&mut self, inputs: Inputs<Self>) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("merges steps from different splits"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = [a, b])] fn start(&mut self) {}
            #[step(next = m)] fn a(&mut self) {}
            #[step(next = m)] fn b(&mut self) {}
            #[step(join, next = fit, foreach = xs)] fn m(&mut self, inputs: Inputs<Self>) {}
            #[step(next = j)] fn fit(&mut self, x: &f64) {}
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("both joins and splits"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = fit, foreach = xs)] fn start(&mut self) {}
            #[step(next = end)] fn fit(&mut self, x: &f64) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(
        msg.contains("reaches the end step inside the foreach opened at `start`"),
        "{msg}"
    );
}

#[test]
fn step_signatures() {
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = fit, foreach = xs)] fn start(&mut self) {}
            #[step(next = pick)] fn fit(&mut self, x: &f64) {}
            #[step(join, next = end)] fn pick(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(
        msg.contains("join step `pick` needs an inputs parameter"),
        "{msg}"
    );

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = end)] fn start(&mut self, inputs: Inputs<Self>) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("takes `Inputs` but is not a join"), "{msg}");

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = fit)] fn start(&mut self) {}
            #[step(next = end)] fn fit(&mut self, x: &f64) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("does not follow a `foreach`"), "{msg}");

    for receiver in [
        quote::quote!(&self),
        quote::quote!(self),
        quote::quote!(mut self),
    ] {
        let msg = one_error(syn::parse_quote! {
            impl F {
                #[step(start, next = end)] fn start(#receiver) {}
                #[step(end)] fn end(&mut self) {}
            }
        });
        assert!(msg.contains("a step takes `&mut self`"), "{msg}");
    }
    let (msgs, _, _) = run(syn::parse_quote! {
        impl F {
            #[step(start, next = end)] fn start(self: &mut Self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msgs.is_empty(), "{msgs:?}");
}

#[test]
fn names() {
    // rustc reports duplicate methods itself: no message, but no `Flow` impl either.
    let (msgs, _, failed) = run(syn::parse_quote! {
        impl F {
            #[step(start, next = end)] fn start(&mut self) {}
            #[step(next = end)] fn start(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msgs.is_empty(), "{msgs:?}");
    assert!(failed);

    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = run)] fn start(&mut self) {}
            #[step(next = end)] fn run(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(msg.contains("`run` is a reserved name"), "{msg}");
}

#[test]
fn a_bad_step_attribute_does_not_cascade() {
    // `nxt` loses the `next`: neither "no next" nor "`end` is unreachable" follows.
    let msg = one_error(syn::parse_quote! {
        impl F {
            #[step(start, next = fit)] fn start(&mut self) {}
            #[step(nxt = end)] fn fit(&mut self) {}
            #[step(end)] fn end(&mut self) {}
        }
    });
    assert!(
        msg.contains("unknown `#[step]` key `nxt` (did you mean `next`?)"),
        "{msg}"
    );
}

#[test]
fn every_mistake_is_collected() {
    let (msgs, an, _) = run(syn::parse_quote! {
        impl F {
            #[step(start, next = fit, foreach = xs)] fn start(&mut self) {}
            #[step(next = pik)]
            #[resources(cpu = 2, memory = "4GB")]
            #[retry(times = 3, dealy = "1s")]
            fn fit(&mut self, x: &f64) {}
            #[step(join, next = end)] fn pick(&mut self) {}
            #[step(end)] #[timeout("1 fortnight")] fn end(&mut self) {}
        }
    });
    assert!(an.is_none());
    let all = msgs.join("\n");
    for needle in [
        "did you mean \"4GiB\"",
        "unknown `#[retry]` key `dealy` (did you mean `delay`?)",
        "invalid duration unit `fortnight`",
        "unknown step `pik` in `next` (did you mean `pick`?)",
        "join step `pick` needs an inputs parameter",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
    assert_eq!(msgs.len(), 5, "{all}");
}
