//! Generates Rust code for the Cap'n Proto schemas with Debian's `capnp` compiler.

fn main() {
    for file in ["common", "agent", "scheduler"] {
        println!("cargo:rerun-if-changed=capnp/{file}.capnp");
    }
    let result = capnpc::CompilerCommand::new()
        .src_prefix("capnp")
        .file("capnp/common.capnp")
        .file("capnp/agent.capnp")
        .file("capnp/scheduler.capnp")
        .run();
    if let Err(err) = result {
        panic!(
            "failed to compile the Cap'n Proto schemas: {err}\n\
             (is Debian's `capnproto` package installed? `apt-get install capnproto`)"
        );
    }
}
