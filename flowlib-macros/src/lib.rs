//! Procedural macros for [flowlib](https://docs.rs/flowlib). Use them through the
//! `flowlib` crate, which re-exports them; the generated code names only
//! `::flowlib::__private` items.
//!
//! Pipeline: `attr` parses the step attributes, `ast` builds the IR (keeping the original
//! syntax for spans), `check` validates the graph, `expand` generates code.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod state;

use proc_macro::TokenStream;
use quote::quote;

/// Derive the artifact plumbing for a flow's state struct.
///
/// Every named field is an artifact, stored per field in the content-addressed datastore.
/// `#[param(default = ..., help = "...", required, name = "...")]` makes a field a
/// command-line parameter of `run`.
#[proc_macro_derive(FlowState, attributes(param))]
pub fn derive_flow_state(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    state::derive(input).into()
}

/// Turn an impl block of `#[step]` methods into a flow graph checked at compile time.
#[proc_macro_attribute]
pub fn flow(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = syn::parse_macro_input!(input as syn::ItemImpl);
    let cx = ctxt::Ctxt::new();
    if !args.is_empty() {
        cx.error_spanned(
            &args,
            "`#[flow]` takes no arguments: remove them and write `#[flow]`",
        );
    }
    let ir = ast::parse_flow(&cx, &item);
    let analysis = check::check(&cx, &ir);
    // Without errors, the real `Flow` impl; with errors, a stub so that code using the flow
    // adds no "not a flow" error of its own. Nothing when the impl block itself is unfit.
    let generated = if ir.implementable {
        let analysis = analysis.as_ref().filter(|_| !cx.has_errors());
        expand::expand(&ir, analysis)
    } else {
        proc_macro2::TokenStream::new()
    };
    let errors = cx.into_compile_errors();
    // The user's items are always emitted, so one mistake does not cascade.
    let item = expand::strip_step_attrs(item);
    quote! {
        #item
        #generated
        #errors
    }
    .into()
}

fn outside_flow(name: &str, input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    let msg = format!("`#[{name}]` only works on a method inside an impl block marked `#[flow]`");
    let err = syn::Error::new(proc_macro2::Span::call_site(), msg).to_compile_error();
    quote!(#err #input).into()
}

/// Marks a step of a `#[flow]` impl block: `#[step(start, next = a)]`, `#[step(next = [a, b])]`,
/// `#[step(join, next = c)]`, `#[step(next = fit, foreach = field)]`, `#[step(end)]`.
#[proc_macro_attribute]
pub fn step(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("step", input)
}

/// Resources a step needs: `#[resources(cpu = 2, memory = "4GiB", gpu = 1)]`.
#[proc_macro_attribute]
pub fn resources(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("resources", input)
}

/// Retry a failing step: `#[retry(times = 3, delay = "2s")]` (exponential backoff).
#[proc_macro_attribute]
pub fn retry(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("retry", input)
}

/// How the step's tasks are submitted when the step runs on Slurm (`--with slurm`):
/// `#[slurm(partition = "gpu", account = "ml", qos = "high", constraint = "a100", time = "2h",
/// extra = ["--exclusive"], max_parallel = 8)]`. Without `--with slurm` the step runs where
/// the rest of the run does, unchanged.
#[proc_macro_attribute]
pub fn slurm(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("slurm", input)
}

/// Where the step's jobs go when it runs on AWS Batch (`--with batch`):
/// `#[batch(queue = "gpu-spot", job_definition = "flowlib", image = "<account>.dkr.ecr.<region>.amazonaws.com/flow:1")]`
/// (each also from `FLOWLIB_BATCH_QUEUE`, `FLOWLIB_BATCH_JOB_DEFINITION`, `FLOWLIB_BATCH_IMAGE`).
/// Without `--with batch` the step runs where the rest of the run does, unchanged.
#[proc_macro_attribute]
pub fn batch(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("batch", input)
}

/// How the step's tasks run when the step runs on Kubernetes (`--with kubernetes`):
/// `#[kubernetes(image = "ghcr.io/acme/flow:1", namespace = "ml", service_account = "runner",
/// node_selector = { "disktype": "ssd" }, tolerations = ["gpu=true:NoSchedule"],
/// gpu_vendor = "nvidia", secrets = ["aws-credentials"], max_parallel = 8)]`. Without
/// `--with kubernetes` the step runs where the rest of the run does, unchanged.
#[proc_macro_attribute]
pub fn kubernetes(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("kubernetes", input)
}

/// Fail an attempt that runs too long: `#[timeout("30m")]` or `#[timeout(minutes = 30)]`.
#[proc_macro_attribute]
pub fn timeout(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("timeout", input)
}

/// Record a step's failure and let the flow continue: `#[catch]` or `#[catch(field = error)]`.
#[proc_macro_attribute]
pub fn catch(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("catch", input)
}

/// The step saves in-step checkpoints with `ctx.checkpoint()`.
#[proc_macro_attribute]
pub fn checkpoint(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("checkpoint", input)
}

/// Reuse the step's tasks from any earlier run with the same inputs and code:
/// `#[cache]`, or `#[cache(version = "2")]` to invalidate after changing a helper function
/// (calls out of the step body are not hashed). See the README's "Caching across runs".
#[proc_macro_attribute]
pub fn cache(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_flow("cache", input)
}
