//! The thread executor, in process: shapes, failure isolation, resources, parameters,
//! large artifacts, and what each run leaves in the datastore.

mod artifacts;
mod resources;
mod shapes;
